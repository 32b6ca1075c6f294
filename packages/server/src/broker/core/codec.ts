/**
 * The codec seam: mqtt-packet parses one whole packet (the framer found its end) and generates packets. Only
 * this file knows mqtt-packet; a faster codec replaces it and keeps the core.
 */
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';

export type { Packet };
export type ProtocolVersion = 4 | 5;

const settings = { 4: { protocolVersion: 4 }, 5: { protocolVersion: 5 } } as const;

/**
 * One parser for every connection: the framer hands it exactly one whole packet, which it parses
 * synchronously into one 'packet' or one 'error' event, so no state is left between calls (a parser left
 * in error resets itself on the next call). mqtt-packet sets its settings from a CONNECT it parses; they are
 * set again before each call.
 */
const parser = mqttPacket.parser(settings[4]);
let parsed: Packet | undefined;
let failure: Error | undefined;
parser.on('packet', (packet: Packet) => {
  parsed = packet;
});
parser.on('error', (err: Error) => {
  failure ??= err;
});

export type Parsed = { ok: true; packet: Packet } | { ok: false; reason: string };

/** Parses one whole packet; a CONNECT is parsed whatever the version (it carries the version). */
export function parsePacket(bytes: Buffer, version: ProtocolVersion): Parsed {
  parsed = undefined;
  failure = undefined;
  (parser as unknown as { settings: object }).settings = settings[version];
  try {
    parser.parse(bytes);
  } catch (err) {
    // mqtt-packet throws on some malformed input (a property of an unexpected type): never a crash.
    failure = err instanceof Error ? err : new Error(String(err));
  }
  const packet = parsed;
  const err = failure;
  parsed = undefined;
  failure = undefined;
  if (err) {
    // mqtt-packet's reset leaves the read position of the failed packet, which its length parsing uses.
    const internals = parser as unknown as { _resetState(): void; _pos: number };
    internals._resetState();
    internals._pos = 0;
    return { ok: false, reason: err.message };
  }
  if (!packet) return { ok: false, reason: 'incomplete packet' };
  return { ok: true, packet };
}

/**
 * The name of a property that appears more than once where the spec allows it once (mqtt-packet turns a
 * repeated property into an array), or undefined. User properties may repeat [MQTT-3.1.2.3], and a
 * PUBLISH to a client may carry several subscription identifiers; everything else is a protocol error.
 */
export function duplicateProperty(properties: object | undefined): string | undefined {
  if (!properties) return undefined;
  for (const [name, value] of Object.entries(properties)) {
    if (name === 'userProperties') continue;
    if (Array.isArray(value)) return name;
  }
  return undefined;
}

export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  return mqttPacket.generate(packet, settings[version]);
}

/**
 * A PUBLISH encoded once for every subscriber that receives the same variant: for QoS 1 and 2 the bytes up
 * to the packet identifier are copied per subscriber (a few bytes) and the rest, properties and payload, is
 * shared (see writePublish).
 */
export interface EncodedPublish {
  readonly bytes: Buffer;
  /** Where the packet identifier ends (0 for QoS 0: the bytes are written as they are). */
  readonly idEnd: number;
}

export function encodePublish(packet: Omit<IPublishPacket, 'cmd' | 'dup'>, version: ProtocolVersion) {
  const bytes = mqttPacket.generate(
    { cmd: 'publish', dup: false, ...packet, ...(packet.qos > 0 ? { messageId: 1 } : {}) },
    settings[version],
  );
  if (packet.qos === 0) return { bytes, idEnd: 0 };
  let header = 1;
  while ((bytes[header] ?? 0) & 0x80) header += 1;
  header += 1;
  const topicLength = bytes.readUInt16BE(header);
  return { bytes, idEnd: header + 2 + topicLength + 2 };
}

/** The buffers that put one encoded PUBLISH on the wire with this subscriber's packet id and DUP flag. */
export function publishFrames(encoded: EncodedPublish, packetId: number, dup: boolean): Buffer[] {
  if (encoded.idEnd === 0) return [encoded.bytes];
  const head = Buffer.allocUnsafe(encoded.idEnd);
  encoded.bytes.copy(head, 0, 0, encoded.idEnd);
  head.writeUInt16BE(packetId, encoded.idEnd - 2);
  if (dup) head[0] = (head[0] ?? 0) | 0x08; // [MQTT-3.3.1-1]
  return [head, encoded.bytes.subarray(encoded.idEnd)];
}
