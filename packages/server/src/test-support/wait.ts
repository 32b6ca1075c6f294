export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** How long before the test fails (default 30 s): it only bounds a test that would otherwise hang. */
  timeoutMs?: number;
  /** Polling interval (default 25 ms: a probe is cheap, and each wait costs half an interval on average). */
  intervalMs?: number;
  /** A throwing probe counts as "not yet" (a server that is restarting); the last error is the cause. */
  retryErrors?: boolean;
}

/**
 * Polls `read` until it gives a value other than undefined or false: an outcome with a generous deadline,
 * never a timing assertion.
 */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions | number = {},
): Promise<T> {
  const {
    timeoutMs = 30_000,
    intervalMs = 25,
    retryErrors = false,
  } = typeof options === 'number' ? { timeoutMs: options } : options;
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await read();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (!retryErrors) throw err;
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`, { cause: last });
    await sleep(intervalMs);
  }
}
