import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default on a 2-core machine is one worker; most files wait on servers, child processes and
    // PostgreSQL rather than the CPU, so two run side by side (the suite is written to hold under load).
    maxWorkers: 2,
    // Builds the command bundles first when a source changed: e2e tests spawn the real CLI.
    globalSetup: ['scripts/test-build.js'],
    benchmark: { include: ['packages/*/src/**/*.bench.ts'] },
  },
});
