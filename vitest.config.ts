import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Builds the command bundles first when a source changed: e2e tests spawn the real CLI.
    globalSetup: ['scripts/test-build.js'],
    benchmark: { include: ['packages/*/src/**/*.bench.ts'] },
  },
});
