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
    // A worker runs its test files one after another in one process and imports the platform once, not once per
    // file. 23 unit files back to back on this machine (loaded): 346 s isolated, 229 s shared, all 277 tests pass.
    // Test files keep no state in modules; each closes what it started.
    isolate: false,
    // Builds the command bundles first when a source changed: e2e tests spawn the real CLI.
    globalSetup: ['scripts/test-build.js'],
    benchmark: { include: ['packages/*/src/**/*.bench.ts'] },
  },
});
