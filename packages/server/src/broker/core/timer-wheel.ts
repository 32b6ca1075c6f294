/**
 * One shared timer for every deadline of the core (CONNECT deadlines, keep alive, will delays, session
 * expiry) instead of a timer per connection. Deadlines fall into slots of `tickMs`; a slot is checked when
 * its time has come, and an entry whose deadline moved on (a keep alive refreshed by traffic) is put back
 * into a later slot then, so refreshing a deadline costs one assignment (`entry.deadline = …`).
 */
export interface WheelEntry {
  /** Epoch ms; Infinity or NaN: never. */
  deadline: number;
  /** Called once the deadline has passed; the entry is out of the wheel then (schedule it again to keep it). */
  fire(now: number): void;
  /** Internal: the slot it sits in (-1: none). */
  slot?: number;
}

export class TimerWheel {
  private readonly slots = new Map<number, Set<WheelEntry>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tickMs: number,
    private readonly now: () => number = Date.now,
    /** Called when an entry's `fire` throws; the other entries still fire. */
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  schedule(entry: WheelEntry): void {
    this.cancel(entry);
    if (!Number.isFinite(entry.deadline)) return;
    const slot = Math.ceil(entry.deadline / this.tickMs);
    let set = this.slots.get(slot);
    if (!set) {
      set = new Set();
      this.slots.set(slot, set);
    }
    set.add(entry);
    entry.slot = slot;
    this.timer ??= setInterval(() => this.tick(), this.tickMs).unref();
  }

  cancel(entry: WheelEntry): void {
    if (entry.slot === undefined || entry.slot < 0) return;
    const set = this.slots.get(entry.slot);
    set?.delete(entry);
    if (set?.size === 0) this.slots.delete(entry.slot);
    entry.slot = -1;
  }

  get size(): number {
    let n = 0;
    for (const set of this.slots.values()) n += set.size;
    return n;
  }

  /** Fires what is due; exposed for tests with a controlled clock. */
  tick(): void {
    const now = this.now();
    // The slot holding `now` is looked at too; entries in it whose deadline is still ahead wait there.
    const due = Math.ceil(now / this.tickMs);
    const fired: WheelEntry[] = [];
    for (const [slot, set] of this.slots) {
      if (slot > due) continue;
      this.slots.delete(slot);
      for (const entry of set) {
        entry.slot = -1;
        fired.push(entry);
      }
    }
    for (const entry of fired) {
      if (entry.deadline > now) {
        this.schedule(entry); // refreshed meanwhile
        continue;
      }
      try {
        entry.fire(now);
      } catch (err) {
        this.onError(err);
      }
    }
    if (this.slots.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.slots.clear();
  }
}
