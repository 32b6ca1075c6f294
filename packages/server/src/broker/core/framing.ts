/**
 * Splits a byte stream into whole MQTT packets, reading each fixed header itself (§2.1.1, §2.1.4) so that a
 * packet's size is checked before its body is buffered (DESIGN "Everything bounded before it is allocated"):
 * the codec (mqtt-packet) only ever sees one complete packet. The remaining length is a variable byte
 * integer of at most four bytes (§1.5.5, §2.1.4); a fifth continuation byte makes the packet malformed.
 */

export const PACKET_TYPE_CONNECT = 1;

/** One step of the framer: a whole packet, more bytes needed, or why the stream cannot go on. */
export type Frame =
  | { kind: 'packet'; type: number; bytes: Buffer }
  | { kind: 'too-large'; type: number; length: number; limit: number }
  | { kind: 'malformed'; reason: string };

export interface FrameLimits {
  /** Largest remaining length of any packet but CONNECT. */
  maxPacketBytes: number;
  /** Largest remaining length of a CONNECT. */
  maxConnectBytes: number;
}

export class Framer {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly limits: FrameLimits) {}

  /** Bytes received and not yet handed out as packets. */
  get length(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole packet, or undefined while more bytes are needed. */
  next(): Frame | undefined {
    if (this.buffered < 2) return undefined;
    const first = this.byteAt(0);
    const type = first >> 4;
    let length = 0;
    let multiplier = 1;
    let header = 1;
    for (;;) {
      if (header >= this.buffered) return undefined;
      const byte = this.byteAt(header);
      header += 1;
      length += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        // [MQTT-1.5.5-1]: the fewest bytes; a last byte of 0 after a continuation adds nothing (fuzzer-found).
        if (byte === 0 && header > 2) return { kind: 'malformed', reason: 'remaining length not minimal' };
        break;
      }
      // §1.5.5: at most four bytes; a continuation bit on the fourth is malformed.
      if (header === 5) return { kind: 'malformed', reason: 'remaining length longer than 4 bytes' };
      multiplier *= 128;
    }
    const limit = type === PACKET_TYPE_CONNECT ? this.limits.maxConnectBytes : this.limits.maxPacketBytes;
    if (length > limit) return { kind: 'too-large', type, length, limit };
    const total = header + length;
    if (this.buffered < total) return undefined;
    return { kind: 'packet', type, bytes: this.take(total) };
  }

  private byteAt(index: number): number {
    let i = index;
    for (const chunk of this.chunks) {
      if (i < chunk.length) return chunk[i] ?? 0;
      i -= chunk.length;
    }
    return 0;
  }

  /** The first `n` buffered bytes as one buffer: a view when they sit in one chunk (the common case). */
  private take(n: number): Buffer {
    const head = this.chunks[0];
    this.buffered -= n;
    if (head && head.length >= n) {
      if (head.length === n) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
      return head.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      if (!chunk) break;
      const want = n - filled;
      if (chunk.length <= want) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, filled, 0, want);
        this.chunks[0] = chunk.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}
