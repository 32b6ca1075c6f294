/** One attempt: what was tried (an identity, a topic) and when. */
export interface Attempt {
  what: string;
  at: number;
}

/** How attempts are judged: the sliding window and the distinct count that makes an episode. */
export interface AttemptLimits {
  windowMs: number;
  threshold: number;
}

/** A sliding record of who tried what from where, for the guessing and scanning detectors. */
export class Attempts {
  private readonly byKey = new Map<string, { list: Attempt[]; over: boolean }>();
  /**
   * Records an attempt. `crossed` is set on the attempt that brings the distinct count in the window to
   * `threshold`: one finding per episode, which lasts until the count falls below it again (before, every
   * further attempt of a run raised again: a database write per attempt of an attack).
   */
  add(
    key: string,
    attempt: Attempt,
    limits: AttemptLimits,
  ): { distinct: string[]; total: number; crossed: boolean } {
    const { at } = attempt;
    let record = this.byKey.get(key);
    if (!record) {
      record = { list: [], over: false };
      this.byKey.set(key, record);
      if (this.byKey.size > 50_000) this.prune(at, limits.windowMs);
    }
    const { list } = record;
    list.push(attempt);
    while ((list[0]?.at ?? at) < at - limits.windowMs) list.shift();
    if (list.length > 1000) list.splice(0, list.length - 1000);
    const distinct = [...new Set(list.map((a) => a.what))];
    const over = distinct.length >= limits.threshold;
    const crossed = over && !record.over;
    record.over = over;
    return { distinct, total: list.length, crossed };
  }
  prune(now: number, windowMs: number) {
    for (const [key, { list }] of this.byKey)
      if ((list.at(-1)?.at ?? 0) < now - windowMs) this.byKey.delete(key);
  }
}
