/**
 * The reading side of the `loopback` scenario (bench/loopback.ts):
 * `node --import tsx bench/loopback-reader.ts <port> <sockets> <expected bytes>`. Opens `sockets` connections to the
 * runner's listener from 127.0.0.2–5, a few at a time so that none overflows its accept queue, reports `opened`, and
 * after `start` reports the CPU it took to read every expected byte.
 */
import { connect, type Socket } from 'node:net';
import { serveParent, tellParent } from './child.js';

const [port, sockets, expected] = process.argv.slice(2, 5).map(Number) as [number, number, number];
const connectsInFlight = 50;

const opened: Socket[] = [];
let received = 0;
let cpu: NodeJS.CpuUsage | undefined;

serveParent(
  () => {
    for (const socket of opened) socket.destroy();
    return Promise.resolve();
  },
  (message) => {
    if (message.type === 'start') cpu = process.cpuUsage();
  },
);

let started = 0;
const next = (): void => {
  if (started === sockets) return;
  const i = started++;
  const socket = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 4)}` }, () => {
    opened.push(socket);
    if (opened.length === sockets) tellParent({ type: 'opened', sockets });
    next();
  });
  socket.on('data', (chunk) => {
    received += chunk.length;
    if (received !== expected) return;
    const used = process.cpuUsage(cpu);
    tellParent({ type: 'read', cpuUs: used.user + used.system });
  });
};
for (let i = 0; i < connectsInFlight; i++) next();
