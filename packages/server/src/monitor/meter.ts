/** Indexes of the counters the broker bumps on every message (hot path: typed-array slots, no allocation). */
export const HOT = { messagesSent: 0, bytesSent: 1, messagesReceived: 2, bytesReceived: 3 } as const;
export const hotMetrics = ['messages_sent', 'bytes_sent', 'messages_received', 'bytes_received'] as const;

/** The number at `i` of a typed array (0 past its end): typed arrays are zero-filled, never sparse. */
export const slot = (a: ArrayLike<number>, i: number): number => a[i] ?? 0;

/** Adds to the number at `i` of a typed array. */
const bump = (a: Float64Array | Uint32Array, i: number, by: number) => {
  a[i] = slot(a, i) + by;
};

/** Message sizes in buckets of a quarter octave (2^(k/4) bytes): p50/p90/p99 within ~19 %. */
export const SIZE_BUCKETS = 120;
export function sizeBucket(bytes: number): number {
  if (bytes <= 1) return 0;
  const b = Math.floor(Math.log2(bytes) * 4);
  return b >= SIZE_BUCKETS ? SIZE_BUCKETS - 1 : b;
}
/** The geometric middle of a bucket: a percentile read from it is within ~9 % either way. */
export const bucketMiddleBytes = (bucket: number): number => Math.round(2 ** ((bucket + 0.5) / 4));

/** Up to this many distinct topics per device are remembered between two ticks. */
const TOPICS_PER_TICK = 256;

/**
 * What the broker records for one device on its hot path. Cumulative totals only; the monitor reads and
 * folds them into windows on its tick. `trip` is called (rarely) when a counter passes a threshold a rule
 * set, so a breach is seen on the offending message, not at the end of the window.
 */
export class DeviceMeter {
  readonly totals = new Float64Array(4);
  /** Absolute totals at which some rule breaches (Infinity when none). */
  readonly triggers = new Float64Array(4).fill(Infinity);
  /**
   * Largest and smallest message since the last tick, and the last one (the `max`, `min` and `latest`
   * statistics of message_size; `avg` comes from the totals), and the size at which some rule breaches.
   */
  maxSize = 0;
  minSize = Infinity;
  lastSize = 0;
  sizeTrigger = Infinity;
  /** Message sizes since the last tick, when some rule asks for percentiles. */
  sizes: Uint32Array | undefined;
  /** Topics published to since the last tick (bounded). */
  readonly topics = new Set<string>();
  /** Subscriptions the session holds now (set by the broker when it grants one). */
  subscriptions = 0;

  constructor(
    readonly deviceId: string,
    private readonly trip: (meter: DeviceMeter) => void,
  ) {}

  /** A publish the broker accepted from this device. */
  published(topic: string, bytes: number): void {
    const t = this.totals;
    bump(t, 0, 1);
    bump(t, 1, bytes);
    if (bytes > this.maxSize) this.maxSize = bytes;
    if (bytes < this.minSize) this.minSize = bytes;
    this.lastSize = bytes;
    if (this.sizes) bump(this.sizes, sizeBucket(bytes), 1);
    if (this.topics.size < TOPICS_PER_TICK) this.topics.add(topic);
    if (this.over(0) || this.over(1) || bytes > this.sizeTrigger) this.trip(this);
  }

  /** A message delivered to this device. */
  received(bytes: number): void {
    const t = this.totals;
    bump(t, 2, 1);
    bump(t, 3, bytes);
    if (this.over(2) || this.over(3)) this.trip(this);
  }

  /** Has total `i` passed the level at which some rule breaches? */
  private over(i: number): boolean {
    return slot(this.totals, i) > slot(this.triggers, i);
  }
}
