import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers and real processes; give them room on a 2-core box.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The JSON report lets .ci/run refuse skips other than the Electron-binary ones.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
