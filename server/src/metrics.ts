import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { defaults } from './defaults.js';
import type { BrokerStats } from './broker/broker.js';
import type { PoolStats } from './store/store.js';

/** Figures read from the broker and the store when /metrics is scraped. */
export interface MetricSources {
  broker?: () => BrokerStats | undefined;
  pool?: () => PoolStats | undefined;
  /** WebSocket handshakes in flight under admission control (admission.ts). */
  handshakes?: () => number | undefined;
}

/** Prometheus metrics, on a registry of their own so several servers can live in one process (tests). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_', eventLoopMonitoringPrecision: defaults.eventLoopSampleMs });
  const sources: MetricSources = {};
  new Counter({
    name: 'herald_broker_messages_total',
    help: 'User messages this node handed to the broker (published), got from it (received), or lost (dropped)',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const stats = sources.broker?.();
      if (!stats) return;
      this.reset();
      for (const kind of ['published', 'received', 'dropped'] as const) this.inc({ kind }, stats[kind]);
    },
  });
  new Counter({
    name: 'herald_broker_resubscribes_total',
    help: 'Broker reconnects after which every subscription was restored',
    registers: [registry],
    collect() {
      const stats = sources.broker?.();
      if (!stats) return;
      this.reset();
      this.inc(stats.resubscribes);
    },
  });
  new Gauge({
    name: 'herald_store_pool_connections',
    help: 'Store connection pool: connections open (total), idle, and callers waiting for one',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const stats = sources.pool?.();
      if (!stats) return;
      for (const state of ['total', 'idle', 'waiting'] as const) this.set({ state }, stats[state]);
    },
  });
  new Gauge({
    name: 'herald_handshakes_pending',
    help: 'WebSocket handshakes in flight under admission control: admitted, not yet synced or closed',
    registers: [registry],
    collect() {
      const pending = sources.handshakes?.();
      if (pending !== undefined) this.set(pending);
    },
  });
  const refused = new Counter({
    name: 'herald_connections_refused_total',
    help: 'WebSocket upgrades refused to protect the server: per-address rate limits (rate_limited), server-wide admission control (overloaded)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Both series exist from the start, so rate() and alerts see a 0 rather than nothing.
  for (const reason of ['rate_limited', 'overloaded'] as const) refused.inc({ reason }, 0);
  return {
    registry,
    sources,
    refused,
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
    brokerLag: new Histogram({
      name: 'herald_broker_lag_seconds',
      help: 'Time from a publish to its arrival through the broker (Redis, or the primary of --workers)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    rejected: new Counter({ name: 'herald_rejected_total', help: 'WebSocket upgrades refused before a session started', labelNames: ['code'] as const, registers: [registry] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
