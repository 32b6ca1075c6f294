import { readJsonPayload, readPayload } from './payload.ts';

/**
 * What one phase sent and what came back, checked message by message: a payload must be intact, reach
 * the device it was meant for, and arrive once and in order (per publisher, and per receiver when every
 * message has several: the fan-out scenario's subscribers). `sent` counts messages published, `delivered`
 * and `inflight` count deliveries, so each message sent is owed once to each of the `receivers`.
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
    /** Deliveries each message sent is owed (subscribers of every publisher's topic); 1 by default. */
    readonly receivers = 1,
  ) {
    this.inflight = new Int32Array(seqs.length);
    // Per receiver, the last sequence it was delivered from each device.
    this.lastSeq = new Float64Array(seqs.length * receivers);
    for (let r = 0; r < receivers; r++) this.lastSeq.set(seqs, r * seqs.length);
    this.firstSeq = Float64Array.from(seqs);
  }

  /**
   * The device slot (0-based) of a verified delivery, or -1 when it does not count; `receiver` (0-based,
   * below `receivers`) is who got it.
   */
  accept(payload: Buffer, expectedDevice: number | undefined, receiver = 0): number {
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
    const last = receiver * this.firstSeq.length + slot;
    if (header.seq <= (this.lastSeq[last] as number)) {
      this.outOfOrder++;
      return -1;
    }
    this.lastSeq[last] = header.seq;
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
      lost: Math.max(0, this.sent * this.receivers - this.delivered),
      corrupt: this.corrupt,
      misrouted: this.misrouted,
      outOfOrder: this.outOfOrder,
      stale: this.stale,
    };
  }
}

export type TallySummary = ReturnType<FleetTally['summary']>;
