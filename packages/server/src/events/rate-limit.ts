/**
 * Caps how many events of one kind a single source address can write per window (failed TLS handshakes,
 * refused enrollments), so an unauthenticated peer cannot flood the audit log. The first event after a
 * window carries how many were suppressed, so nothing is silently lost from the count.
 */
export function createEventRateLimit(options: { max: number; windowMs: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const windows = new Map<string, { start: number; count: number; suppressed: number }>();
  return {
    /** Whether to record this event, and how many were suppressed before it. */
    admit(key: string): { record: boolean; suppressed: number } {
      const t = now();
      let w = windows.get(key);
      if (!w || t - w.start >= options.windowMs) {
        const suppressed = w?.suppressed ?? 0;
        w = { start: t, count: 0, suppressed: 0 };
        windows.set(key, w);
        if (windows.size > 50_000)
          for (const [k, v] of windows) if (t - v.start >= options.windowMs) windows.delete(k);
        w.count = 1;
        return { record: true, suppressed };
      }
      w.count += 1;
      if (w.count <= options.max) return { record: true, suppressed: 0 };
      w.suppressed += 1;
      return { record: false, suppressed: 0 };
    },
  };
}

export type EventRateLimit = ReturnType<typeof createEventRateLimit>;
