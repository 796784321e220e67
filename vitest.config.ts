import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers and real processes; give them room on a 2-core box.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // A private D-Bus session with gnome-keyring on Linux, so the vault tests use a real Secret Service.
    globalSetup: ['./test/keychain-setup.ts'],
    // The JSON report lets .ci/run refuse skips other than the Electron-binary ones.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
