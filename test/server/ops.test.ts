import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { pino } from 'pino';
import { createServer, resolveConfig, type ConfigInput } from '../../server/src/index.js';
import { hashToken } from '../../server/src/auth.js';
import { defaults } from '../../server/src/defaults.js';
import { TestClient, deviceFor, publish, startServer, tempDir, type TestServer } from '../helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});
async function server(overrides: ConfigInput = {}): Promise<TestServer> {
  const t = await startServer(overrides);
  cleanups.push(() => t.close());
  return t;
}

describe('operations', () => {
  it('reports liveness, readiness and Prometheus metrics', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const client = await TestClient.open(t.wsUrl, token);
    client.send({ type: 'hello', v: 1 });
    await client.next('synced');
    await publish(t, { to: { users: ['alice'] }, title: 'x' });
    await client.next('notification');
    expect(await t.api('GET', '/healthz', { token: '' })).toEqual({ status: 200, body: { status: 'ok', service: 'herald' } });
    expect(await t.api('GET', '/readyz', { token: '' })).toEqual({ status: 200, body: { status: 'ready', store: true, broker: true } });
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^herald_connections 1$/m);
    expect(metrics).toMatch(/^herald_publishes_total\{result="delivered"\} 1$/m);
    expect(metrics).toMatch(/^herald_deliveries_total 1$/m);
    expect(metrics).toMatch(/^herald_store_seconds_count\{op="publish"\} 1$/m);
    expect(metrics).toMatch(/^herald_nodejs_eventloop_lag_seconds /m);
    await client.close();
  });

  it('puts /metrics behind the admin token when configured', async () => {
    const t = await server({ metricsAuth: true });
    expect((await t.api('GET', '/metrics', { token: '' })).status).toBe(401);
    expect((await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.adminToken}` } })).status).toBe(200);
  });

  it('shuts down gracefully: sockets close with 4000 and accepted data survives', async () => {
    const data = tempDir();
    const t = await startServer({ data });
    const { token } = await deviceFor(t, 'alice');
    const clients = await Promise.all(Array.from({ length: 5 }, () => TestClient.open(t.wsUrl, token)));
    clients.forEach((c) => c.send({ type: 'hello', v: 1 }));
    await Promise.all(clients.map((c) => c.next('synced')));
    const accepted = await publish(t, { to: { users: ['alice'] }, title: 'kept' });
    await t.server.close();
    for (const client of clients) expect((await client.closed).code).toBe(4000);

    const again = await startServer({ data });
    cleanups.push(() => again.close());
    const inbox = await again.api<{ items: { id: string }[] }>('GET', '/v1/inbox', { token });
    expect(inbox.body.items.map((i) => i.id)).toEqual([accepted.body.id]);
  });

  it('cuts each socket once its 4000 close frame is out, without waiting for the client to answer', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    // A client that completes the upgrade and then never sends a byte, not even its own close frame.
    const socket = connect({ host: '127.0.0.1', port: Number(new URL(t.url).port) });
    cleanups.push(() => Promise.resolve(socket.destroy()));
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    const ended = once(socket, 'end');
    await once(socket, 'connect');
    socket.write(
      `GET /v1/stream HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    while (!received.includes('\r\n\r\n')) await once(socket, 'data');
    expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
    const headerEnd = received.indexOf('\r\n\r\n') + 4;

    // A grace far beyond the test's timeout: close() can only finish because the socket is cut at once.
    const grace = defaults.shutdownCloseGraceMs;
    (defaults as { shutdownCloseGraceMs: number }).shutdownCloseGraceMs = 3_600_000;
    try {
      await t.server.close();
    } finally {
      (defaults as { shutdownCloseGraceMs: number }).shutdownCloseGraceMs = grace;
    }
    await ended;
    const frame = received.subarray(headerEnd);
    // FIN + close opcode, an unmasked payload of the code and the reason, and nothing after it.
    expect(frame[0]).toBe(0x88);
    expect(frame[1]).toBe(2 + 'server restarting'.length);
    expect(frame.readUInt16BE(2)).toBe(4000);
    expect(frame.subarray(4).toString()).toBe('server restarting');
  });

  it('writes a 0600 admin token on first start when none is configured', async () => {
    const data = tempDir();
    const config = resolveConfig({ port: 0, data, logLevel: 'silent' });
    const first = await createServer(config, { logger: pino({ level: 'silent' }) });
    const file = join(data, 'admin.token');
    expect(first.adminTokenFile).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { url } = await first.listen();
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^hrld_[A-Za-z0-9_-]{43}$/);
    expect((await fetch(`${url}/v1/tokens`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await first.close();
    const second = await createServer(config, { logger: pino({ level: 'silent' }) });
    expect(second.adminTokenFile).toBeUndefined();
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    await second.close();

    writeFileSync(file, 'edited by hand\n');
    const third = await createServer(config, { logger: pino({ level: 'silent' }) });
    expect(third.adminTokenFile).toBe(file);
    const fresh = readFileSync(file, 'utf8').trim();
    expect(fresh).not.toBe(token);
    expect(await third.store.tokenByHash(hashToken(token))).toBeUndefined();
    expect(await third.store.tokenByHash(hashToken(fresh))).toMatchObject({ kind: 'admin' });
    await third.close();
  });

  it('serves HTTPS and WSS with a configured certificate', async () => {
    const dir = tempDir();
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    expect(existsSync(cert)).toBe(true);
    const t = await startServer({ tlsCert: cert, tlsKey: key });
    cleanups.push(() => t.close());
    expect(t.url).toMatch(/^https:/);
    const ws = new WebSocket(t.wsUrl, { ca: readFileSync(cert), headers: { authorization: 'Bearer nope' } });
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(4501);
  });

  it('negotiates permessage-deflate only when enabled', async () => {
    for (const [overrides, expected] of [
      [{}, ''],
      [{ perMessageDeflate: { threshold: 256 } }, 'permessage-deflate'],
    ] as const) {
      const t = await server(overrides);
      const { token } = await deviceFor(t, 'alice');
      const client = await TestClient.open(t.wsUrl, token, { perMessageDeflate: true });
      expect(client.ws.extensions).toContain(expected);
      client.send({ type: 'hello', v: 1 });
      await client.next('synced');
      await publish(t, { to: { users: ['alice'] }, title: 'compressible', body: 'a'.repeat(2000) });
      expect((await client.next('notification')).body).toBe('a'.repeat(2000));
      await client.close();
    }
  });
});

describe('limits', () => {
  it('refuses connects past the per-IP rate with 429', async () => {
    const t = await server({ rateLimits: { connect: { perSecond: 0.001, burst: 2 } } });
    const { token } = await deviceFor(t, 'alice');
    const ok = await Promise.all([TestClient.open(t.wsUrl, token), TestClient.open(t.wsUrl, token)]);
    const ws = new WebSocket(t.wsUrl, { headers: { authorization: `Bearer ${token}` } });
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number; headers: Record<string, string> }];
    expect(response.statusCode).toBe(429);
    expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    ws.on('error', () => undefined); // terminating a refused handshake reports an error by design
    ws.terminate();
    await Promise.all(ok.map((c) => c.close()));
  });

  it('throttles an address after repeated failed authentication', async () => {
    const t = await server({ rateLimits: { authFailure: { perSecond: 0.001, burst: 3 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await t.api('GET', '/v1/me', { token: `hrld_wrong${i}` })).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });

  it('limits publishes per token', async () => {
    const t = await server({ rateLimits: { publish: { perSecond: 0.001, burst: 3 } } });
    await deviceFor(t, 'alice');
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await publish(t, { to: { users: ['alice'] }, title: `n${i}` })).status);
    expect(codes).toEqual([202, 202, 202, 429]);
  });
});
