import { randomFillSync } from 'node:crypto';

/** Random bytes drawn in bulk: one call into the CSPRNG per 512 ids. */
const pool = Buffer.alloc(8 * 512);
let poolOffset = pool.length;
const bytes = Buffer.alloc(16);
let lastMs = 0;
let counter = 0;

/**
 * A notification id: a UUIDv7 (RFC 9562), that is a 48-bit Unix millisecond timestamp, a 12-bit counter
 * that keeps ids made in the same millisecond in order (RFC 9562 §6.2, method 1), and 62 random bits.
 * Ids made by one process sort in the order they were made, so each insert lands at the right edge of the
 * store's `id` index: a group commit rewrites one index page instead of one random page per notification.
 */
export function notificationId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else if (++counter > 0xfff) {
    // 4,096 ids in one millisecond: borrow the next one, as §6.2 allows, rather than go out of order.
    lastMs++;
    counter = 0;
  }
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  bytes.writeUIntBE(lastMs, 0, 6);
  bytes[6] = 0x70 | (counter >>> 8);
  bytes[7] = counter & 0xff;
  pool.copy(bytes, 8, poolOffset, poolOffset + 8);
  poolOffset += 8;
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
