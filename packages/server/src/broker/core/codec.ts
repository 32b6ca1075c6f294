/**
 * The codec seam: mqtt-packet parses one whole packet (the framer found its end) and generates packets. Only
 * this file knows mqtt-packet; a faster codec replaces it and keeps the core.
 */
import { isUtf8 } from 'node:buffer';
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
  const malformed = notWellFormed(packet, bytes, version);
  if (malformed) return { ok: false, reason: malformed };
  if (version === 5) noteRepeated(packet, bytes, bodyStart(bytes));
  return { ok: true, packet };
}

/**
 * mqtt-packet keeps only the last of a repeated property whose first value is falsy (a payload format
 * indicator of 0, an expiry of 0, an empty string): the repetition is read from the bytes instead and kept
 * here for duplicateProperty (fuzzer-found).
 */
const repeatedProperties = new WeakMap<object, string>();

/** The size of each property's value after its id (§2.2.2.2): bytes, or 'var' / 'string' / 'pair'. */
const PROPERTY_SIZE = new Map<number, number | 'var' | 'string' | 'pair'>([
  ...[0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a].map((id) => [id, 1] as const),
  ...[0x13, 0x21, 0x22, 0x23].map((id) => [id, 2] as const),
  ...[0x02, 0x11, 0x18, 0x27].map((id) => [id, 4] as const),
  [0x0b, 'var'],
  ...[0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1a, 0x1c, 0x1f].map((id) => [id, 'string'] as const),
  [0x26, 'pair'],
]);

/** A variable byte integer at `at`: its value and where it ends. */
function varIntAt(bytes: Buffer, at: number): { value: number; end: number } {
  let value = 0;
  let multiplier = 1;
  let i = at;
  for (let k = 0; k < 4 && i < bytes.length; k++) {
    const byte = bytes[i] ?? 0;
    i += 1;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) break;
    multiplier *= 128;
  }
  return { value, end: i };
}

/** The id of a property other than a user property repeated in the property block at `at`. */
function repeatedPropertyAt(bytes: Buffer, at: number): number | undefined {
  const { value: length, end: first } = varIntAt(bytes, at);
  const seen = new Set<number>();
  let i = first;
  while (i < first + length && i < bytes.length) {
    const id = bytes[i] ?? 0;
    const size = PROPERTY_SIZE.get(id);
    if (size === undefined) return undefined; // unknown: mqtt-packet refused it already
    if (seen.has(id) && id !== 0x26) return id;
    seen.add(id);
    i += 1;
    if (typeof size === 'number') i += size;
    else if (size === 'var') i = varIntAt(bytes, i).end;
    else if (size === 'string') i += 2 + bytes.readUInt16BE(i);
    else i += 4 + bytes.readUInt16BE(i) + bytes.readUInt16BE(i + 2 + bytes.readUInt16BE(i));
  }
  return undefined;
}

/** Notes a repetition mqtt-packet hid in the properties of a CONNECT, PUBLISH or SUBSCRIBE (not a will's). */
function noteRepeated(packet: Packet, bytes: Buffer, start: number): void {
  const props = (packet as { properties?: object }).properties;
  if (!props) return;
  let at: number;
  if (packet.cmd === 'publish') at = start + 2 + bytes.readUInt16BE(start) + (packet.qos > 0 ? 2 : 0);
  else if (packet.cmd === 'subscribe') at = start + 2;
  else if (packet.cmd === 'connect')
    at = start + 2 + bytes.readUInt16BE(start) + 4; // name, level, flags, keep alive
  else return;
  try {
    const id = repeatedPropertyAt(bytes, at);
    if (id !== undefined) repeatedProperties.set(props, `property 0x${id.toString(16)}`);
  } catch {
    // Cut short: mqtt-packet would have refused it; nothing to note.
  }
}

/** Where the body starts: after the type byte and the remaining length. */
function bodyStart(bytes: Buffer): number {
  let i = 1;
  while ((bytes[i] ?? 0) & 0x80) i += 1;
  return i + 1;
}

/** Whether the length-prefixed strings from `at` on (`stride` option bytes after each) are UTF-8 [MQTT-1.5.4-1]. */
function stringsAreUtf8(bytes: Buffer, at: number, stride: number): boolean {
  let i = at;
  while (i + 2 <= bytes.length) {
    const end = i + 2 + bytes.readUInt16BE(i);
    if (!isUtf8(bytes.subarray(i + 2, Math.min(end, bytes.length)))) return false;
    i = end + stride;
  }
  return true;
}

/**
 * What mqtt-packet lets through and the spec calls malformed (found by the fuzzer, core-malformed.fuzz.test.ts):
 * a packet identifier cut short (it parses as -1), bytes after a packet that has none [MQTT-3.12.1, 3.14.1
 * (3.1.1)], a 3.1.1 acknowledgement longer than its 2 bytes, and invalid UTF-8 in topic names and filters
 * [MQTT-1.5.4-1] (mqtt-packet decodes it into U+FFFD).
 */
function notWellFormed(packet: Packet, bytes: Buffer, version: ProtocolVersion): string | undefined {
  const id = (packet as { messageId?: number }).messageId;
  if (id !== undefined && !(id >= 0 && id <= 0xffff)) return 'packet identifier missing';
  const start = bodyStart(bytes);
  const length = bytes.length - start;
  switch (packet.cmd) {
    case 'pingreq':
    case 'pingresp':
      return length === 0 ? undefined : `${packet.cmd} with a body`;
    case 'disconnect':
      return version === 4 && length > 0 ? 'disconnect with a body' : undefined;
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return version === 4 && length !== 2 ? `${packet.cmd} of ${length} bytes` : undefined;
    case 'publish':
      return stringsAreUtf8(bytes.subarray(0, start + 2 + bytes.readUInt16BE(start)), start, 0)
        ? undefined
        : 'topic name is not UTF-8';
    case 'subscribe':
    case 'unsubscribe': {
      // After the packet id (and the properties on MQTT 5): each filter (and its options byte).
      const props = varIntAt(bytes, start + 2);
      const at = version === 5 ? props.end + props.value : start + 2;
      return stringsAreUtf8(bytes, at, packet.cmd === 'subscribe' ? 1 : 0)
        ? undefined
        : 'topic filter is not UTF-8';
    }
    default:
      return undefined;
  }
}

/**
 * The name of a property that appears more than once where the spec allows it once (mqtt-packet turns a
 * repeated property into an array), or undefined. User properties may repeat [MQTT-3.1.2.3], and a
 * PUBLISH to a client may carry several subscription identifiers; everything else is a protocol error.
 */
export function duplicateProperty(properties: object | undefined): string | undefined {
  if (!properties) return undefined;
  const repeated = repeatedProperties.get(properties);
  if (repeated !== undefined) return repeated;
  for (const [name, value] of Object.entries(properties)) {
    if (name === 'userProperties') continue;
    if (Array.isArray(value)) return name;
  }
  return undefined;
}

/** mqtt-packet generates no bytes at all for a packet it cannot write (it reports nothing): never sent silently. */
function generate(packet: Packet, version: ProtocolVersion): Buffer {
  const bytes = mqttPacket.generate(packet, settings[version]);
  if (bytes.length === 0) throw new Error(`cannot encode this ${packet.cmd} packet`);
  return bytes;
}

export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  return generate(packet, version);
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
  // No user properties is what an empty map means (a deliver hook may strip them); mqtt-packet cannot write one.
  const user = packet.properties?.userProperties;
  const properties =
    user && Object.keys(user).length === 0
      ? { ...packet.properties, userProperties: undefined }
      : packet.properties;
  const bytes = generate(
    { cmd: 'publish', dup: false, ...packet, properties, ...(packet.qos > 0 ? { messageId: 1 } : {}) },
    version,
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
