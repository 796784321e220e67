import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics, on a registry of their own so several servers can live in one process (tests). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  return {
    registry,
    connections: new Gauge({ name: 'herald_connections', help: 'Open authenticated WebSocket connections', registers: [registry] }),
    publishes: new Counter({
      name: 'herald_publishes_total',
      help: 'Accepted publishes',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    fanouts: new Counter({ name: 'herald_fanout_messages_total', help: 'Per-user notification messages handed to the broker', registers: [registry] }),
    deliveries: new Counter({ name: 'herald_deliveries_total', help: 'Notification frames queued to sockets, live and replayed', registers: [registry] }),
    replaySize: new Histogram({
      name: 'herald_replay_notifications',
      help: 'Notifications sent per replay',
      buckets: [0, 1, 10, 100, 1000, 10_000],
      registers: [registry],
    }),
    storeLatency: new Histogram({
      name: 'herald_store_seconds',
      help: 'Store operation latency',
      labelNames: ['op'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    closes: new Counter({ name: 'herald_closes_total', help: 'Connections closed by the server', labelNames: ['code'] as const, registers: [registry] }),
    rejected: new Counter({ name: 'herald_rejected_total', help: 'WebSocket upgrades refused before a session started', labelNames: ['code'] as const, registers: [registry] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
