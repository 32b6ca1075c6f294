/**
 * A bench command's process: a log with seconds since start, cleanups run in reverse on any way out, a
 * deadline past which everything started is stopped (exit 3), SIGINT/SIGTERM (exit 130) and a failure
 * (exit 1) doing the same. `npm run bench` and `npm run soak` both run this way.
 */
export function boundedRun(name: string) {
  const started = Date.now();
  const cleanups: (() => Promise<void>)[] = [];
  const log = (line: string) => {
    const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
    process.stderr.write(`[${name} ${s}s] ${line}\n`);
  };
  async function cleanup(): Promise<void> {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
  }
  return {
    log,
    cleanup,
    /** Something to stop on the way out (stopped last-added first). */
    onCleanup: (fn: () => Promise<void>) => void cleanups.push(fn),
    /** Runs `main` within `deadlineMs`; its resolved value is the exit code. */
    run: (main: () => Promise<number>, deadlineMs: number): void => {
      const deadline = setTimeout(() => {
        log(`over the ${deadlineMs / 60_000} min limit: stopping`);
        void cleanup().finally(() => process.exit(3));
      }, deadlineMs);
      deadline.unref();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => {
          log(`${signal}: stopping`);
          void cleanup().finally(() => process.exit(130));
        });
      }
      main().then(
        (code) => {
          clearTimeout(deadline);
          process.exitCode = code;
        },
        async (err: unknown) => {
          log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          await cleanup();
          process.exit(1);
        },
      );
    },
  };
}
