import { configDefaults, defineConfig } from 'vitest/config';

/** What both projects share. */
const common = {
  // Integration tests start real servers and real processes; give them room on a 2-core box.
  testTimeout: 60_000,
  hookTimeout: 60_000,
  pool: 'forks',
} as const;

export default defineConfig({
  test: {
    // A private D-Bus session with gnome-keyring on Linux, so the vault tests use a real Secret Service;
    // and, at the end, the PostgreSQL schemas the scale-out run made are dropped.
    globalSetup: ['./test/keychain-setup.ts', './test/scale-out-setup.ts'],
    // The JSON report lets .ci/run refuse skips other than the Electron-binary ones.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    projects: [
      { test: { ...common, name: 'embedded', include: ['test/**/*.test.ts'] } },
      {
        // The server's tests once more, on PostgreSQL and Redis (see test/helpers.ts). Left out: tests of one
        // store, and those that start the CLI process, which runs the embedded default on its own.
        test: {
          ...common,
          name: 'scale-out',
          include: ['test/server/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/server/store-*.test.ts', 'test/server/crash.test.ts', 'test/server/npm-start.test.ts', 'test/server/scale-out.test.ts', 'test/server/postgres-outage.test.ts', 'test/server/nginx-failover.test.ts', 'test/server/workers.test.ts', 'test/server/amqp-crash.test.ts'],
          env: { HERALD_TEST_BACKEND: 'scale-out' },
        },
      },
    ],
  },
});
