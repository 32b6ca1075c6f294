/**
 * The hot MQTT 3.1.1 packets, encoded and decoded by hand so the load generator spends its CPU on load,
 * not on packet objects. CONNECT, SUBSCRIBE and DISCONNECT (cold) go through mqtt-packet.
 */

export const packetTypes = {
  connack: 2,
  publish: 3,
  puback: 4,
  suback: 9,
  unsuback: 11,
  pingresp: 13,
} as const;

/** Bytes the remaining-length field takes (§2.2.3: 1-4 bytes, 7 bits each). */
function lengthBytes(length: number): number {
  if (length < 128) return 1;
  if (length < 16_384) return 2;
  if (length < 2_097_152) return 3;
  return 4;
}

function writeLength(buf: Buffer, offset: number, length: number): number {
  let rest = length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 128;
    buf[offset++] = byte;
  } while (rest > 0);
  return offset;
}

/**
 * Allocates a PUBLISH for `topic` with a `payloadSize`-byte payload left for the caller to fill at
 * `payloadOffset` (so the payload is written once, in place).
 */
export function allocPublish(
  topic: Buffer,
  payloadSize: number,
  qos: 0 | 1,
  messageId: number,
): { packet: Buffer; payloadOffset: number } {
  const remaining = 2 + topic.length + (qos > 0 ? 2 : 0) + payloadSize;
  const packet = Buffer.allocUnsafe(1 + lengthBytes(remaining) + remaining);
  packet[0] = 0x30 | (qos << 1);
  let offset = writeLength(packet, 1, remaining);
  packet.writeUInt16BE(topic.length, offset);
  offset += 2;
  offset += topic.copy(packet, offset);
  if (qos > 0) {
    packet.writeUInt16BE(messageId, offset);
    offset += 2;
  }
  return { packet, payloadOffset: offset };
}

export function encodePuback(messageId: number): Buffer {
  const packet = Buffer.allocUnsafe(4);
  packet[0] = 0x40;
  packet[1] = 2;
  packet.writeUInt16BE(messageId, 2);
  return packet;
}

export interface PublishView {
  qos: number;
  messageId: number;
  topic: Buffer;
  payload: Buffer;
}

/** Splits a PUBLISH body (after the fixed header) into its parts; views, no copies. */
export function readPublish(firstByte: number, body: Buffer): PublishView {
  const qos = (firstByte >> 1) & 3;
  const topicLength = body.readUInt16BE(0);
  const topic = body.subarray(2, 2 + topicLength);
  let offset = 2 + topicLength;
  let messageId = 0;
  if (qos > 0) {
    messageId = body.readUInt16BE(offset);
    offset += 2;
  }
  return { qos, messageId, topic, payload: body.subarray(offset) };
}

/** Streaming decoder: feeds whole packets (first byte, body) to `onPacket`, keeps partial ones. */
export class PacketReader {
  private pending: Buffer | undefined;

  constructor(private readonly onPacket: (firstByte: number, body: Buffer) => void) {}

  push(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const end = buf.length;
    let offset = 0;
    while (end - offset >= 2) {
      let length = 0;
      let multiplier = 1;
      let cursor = offset + 1;
      let complete = false;
      for (let i = 0; i < 4 && cursor < end; i++) {
        const byte = buf[cursor++] as number;
        length += (byte & 127) * multiplier;
        multiplier *= 128;
        if ((byte & 128) === 0) {
          complete = true;
          break;
        }
        if (i === 3) throw new Error('malformed remaining length from the broker');
      }
      if (!complete || end - cursor < length) break;
      this.onPacket(buf[offset] as number, buf.subarray(cursor, cursor + length));
      offset = cursor + length;
    }
    if (offset < end) this.pending = Buffer.from(buf.subarray(offset));
  }
}
