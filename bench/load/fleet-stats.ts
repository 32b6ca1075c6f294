import { readJsonPayload, readPayload } from './payload.ts';

/**
 * What one phase sent and what came back, checked message by message: a payload must be intact, reach
 * the device it was meant for, and arrive once and in order (per publisher).
 */
export class FleetTally {
  sent = 0;
  delivered = 0;
  acked = 0;
  corrupt = 0;
  misrouted = 0;
  /** Duplicates or reordering (sequence not above the last one delivered for that device). */
  outOfOrder = 0;
  /** Deliveries of messages sent before this phase began (late arrivals from the previous one). */
  stale = 0;
  readonly inflight: Int32Array;
  private readonly lastSeq: Float64Array;
  private readonly firstSeq: Float64Array;
  /** Payloads are JSON (the privacy scenario: transformed on the way, so read by their fields). */
  json = false;

  constructor(
    /** Fixture index of the first device of this load generator. */
    readonly base: number,
    seqs: Float64Array,
    readonly payloadSize: number,
  ) {
    this.inflight = new Int32Array(seqs.length);
    this.lastSeq = Float64Array.from(seqs);
    this.firstSeq = Float64Array.from(seqs);
  }

  /** The device slot (0-based) of a verified delivery, or -1 when it does not count. */
  accept(payload: Buffer, expectedDevice: number | undefined): number {
    const header = this.json ? readJsonPayload(payload) : readPayload(payload, this.payloadSize);
    if (!header) {
      this.corrupt++;
      return -1;
    }
    const slot = header.device - this.base;
    if ((expectedDevice !== undefined && header.device !== expectedDevice) || slot < 0) {
      this.misrouted++;
      return -1;
    }
    const first = this.firstSeq[slot];
    if (first === undefined) {
      this.misrouted++;
      return -1;
    }
    if (header.seq <= first) {
      this.stale++;
      return -1;
    }
    if (header.seq <= (this.lastSeq[slot] as number)) {
      this.outOfOrder++;
      return -1;
    }
    this.lastSeq[slot] = header.seq;
    this.delivered++;
    this.inflight[slot] = (this.inflight[slot] as number) - 1;
    return slot;
  }

  totalInflight(): number {
    let total = 0;
    for (const n of this.inflight) total += n;
    return total;
  }

  summary() {
    return {
      sent: this.sent,
      delivered: this.delivered,
      acked: this.acked,
      lost: Math.max(0, this.sent - this.delivered),
      corrupt: this.corrupt,
      misrouted: this.misrouted,
      outOfOrder: this.outOfOrder,
      stale: this.stale,
    };
  }
}

export type TallySummary = ReturnType<FleetTally['summary']>;
