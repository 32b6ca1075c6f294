/**
 * Every payload carries who sent it, its sequence number and when it was (meant to be) sent, sealed by
 * a checksum, so the receiver can tell delivered from lost, misrouted, reordered or corrupted.
 *
 * Layout: u32 device index | u32 sequence | f64 send time (ms, loadgen clock) | filler | u32 FNV-1a.
 */
export const PAYLOAD_HEADER = 16;
export const PAYLOAD_MIN = PAYLOAD_HEADER + 4;

function fnv1a(buf: Buffer, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    hash ^= buf[i] as number;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function writePayload(
  buf: Buffer,
  offset: number,
  size: number,
  device: number,
  seq: number,
  sentAt: number,
): void {
  buf.writeUInt32BE(device, offset);
  buf.writeUInt32BE(seq, offset + 4);
  buf.writeDoubleBE(sentAt, offset + 8);
  const end = offset + size - 4;
  for (let i = offset + PAYLOAD_HEADER, k = seq + device; i < end; i++, k++) buf[i] = k & 0xff;
  buf.writeUInt32BE(fnv1a(buf, offset, end), end);
}

export interface PayloadHeader {
  device: number;
  seq: number;
  sentAt: number;
}

/** The header, or undefined when the payload is not one we sent intact. */
export function readPayload(payload: Buffer, expectedSize: number): PayloadHeader | undefined {
  if (payload.length !== expectedSize || expectedSize < PAYLOAD_MIN) return undefined;
  const end = expectedSize - 4;
  if (fnv1a(payload, 0, end) !== payload.readUInt32BE(end)) return undefined;
  return {
    device: payload.readUInt32BE(0),
    seq: payload.readUInt32BE(4),
    sentAt: payload.readDoubleBE(8),
  };
}

/**
 * A JSON payload for the privacy scenario: the reading (a user id, a precise location, a
 * temperature) with the device index, sequence and send time as fields of their own, padded with a `pad`
 * string to `size` bytes when it is shorter. A data schema transforms it on the way, so the receiver reads
 * it back by its fields (see {@link readJsonPayload}), not by its bytes.
 */
export function jsonPayload(size: number, device: number, seq: number, sentAt: number): Buffer {
  const reading = `{"user_id":"u-${device % 100}","lat":48.137154,"lon":11.576124,"temp":21.5,"d":${device},"s":${seq},"t":${sentAt}`;
  const pad = Math.max(0, size - reading.length - ',"pad":""}'.length);
  return Buffer.from(`${reading},"pad":"${'x'.repeat(pad)}"}`);
}

/** The header of a JSON payload, or undefined when it is not one. */
export function readJsonPayload(payload: Buffer): PayloadHeader | undefined {
  try {
    const v = JSON.parse(payload.toString()) as { d?: unknown; s?: unknown; t?: unknown };
    if (typeof v.d !== 'number' || typeof v.s !== 'number' || typeof v.t !== 'number') return undefined;
    return { device: v.d, seq: v.s, sentAt: v.t };
  } catch {
    return undefined;
  }
}
