/**
 * For the core's fuzz tests only (issue 19): fast-check arbitraries of well-formed MQTT 3.1.1 and 5.0 packets
 * of every type (as mqtt-packet generates them), the run parameters, and an in-memory duplex pair to connect
 * clients to a core.
 */
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';

export type Version = 4 | 5;

/** What the tests read of their environment (they pass `process.env`: only config/ and tests may read it). */
type Env = Record<string, string | undefined>;

const longRuns = (env: Env): number | undefined => {
  const runs = Number(env.BULWARK_FUZZ_RUNS ?? '');
  return Number.isInteger(runs) && runs > 0 ? runs : undefined;
};

/**
 * The parameters of one property: a fixed seed and a modest number of runs by default, so CI is deterministic
 * and bounded; `BULWARK_FUZZ_RUNS=5000` runs each property that many times, with a random seed unless
 * `BULWARK_FUZZ_SEED` is set (fast-check prints the seed and the shrunk counterexample of a failure).
 */
export function fuzzParams(env: Env, runs: number, seed: number): fc.Parameters<unknown> {
  const many = longRuns(env);
  const fixed = env.BULWARK_FUZZ_SEED !== undefined ? Number(env.BULWARK_FUZZ_SEED) : undefined;
  return {
    numRuns: many ?? runs,
    seed: fixed !== undefined && Number.isInteger(fixed) ? fixed : many ? Date.now() : seed,
    verbose: 1,
  };
}

/** A test's time-out: its CI bound, or an hour for a long local run. */
export const fuzzTimeout = (env: Env, ms: number): number => (longRuns(env) ? 3_600_000 : ms);

// ---- values -------------------------------------------------------------------------------------------------

/** Short strings of any Unicode (well-formed: mqtt-packet writes a lone surrogate as U+FFFD). */
const text = (maxLength = 12) => fc.string({ unit: 'grapheme', maxLength });
const topicLevel = fc.oneof(
  fc.constantFrom('a', 'b', 'sensors', 'temp', '$SYS', 'ü', '東京', ''),
  fc
    .string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 6 })
    .filter((s) => !s.includes('+') && !s.includes('#') && !s.includes('\u0000')),
);
/** A topic name: no wildcards, no U+0000, not empty [MQTT-4.7.3-1, 4.7.3-2]. */
export const topicName = fc
  .array(topicLevel, { minLength: 1, maxLength: 4 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0);
/** A topic filter, wildcards where the spec allows them [MQTT-4.7.1-1, 4.7.1-2]. */
export const topicFilter = fc
  .tuple(
    fc.array(fc.oneof({ weight: 3, arbitrary: topicLevel }, fc.constant('+')), {
      minLength: 1,
      maxLength: 4,
    }),
    fc.boolean(),
  )
  .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'))
  .filter((t) => t.length > 0);
const bytes = (maxLength = 16) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
const uint16 = fc.integer({ min: 0, max: 0xffff });
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
const packetId = fc.integer({ min: 1, max: 0xffff });
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
/**
 * User properties: names may repeat [MQTT-3.3.2-17] (mqtt-packet: a repeated name is an array). At least one:
 * mqtt-packet cannot write an empty map (it generates no bytes at all).
 */
const userProperties = fc.dictionary(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 5 }),
  fc.oneof(text(6), fc.array(text(6), { minLength: 2, maxLength: 3 })),
  { minKeys: 1, maxKeys: 3, noNullPrototype: true },
);
/** Optional properties: `undefined` fields are left out (mqtt-packet would write some of them). */
function props<T extends Record<string, fc.Arbitrary<unknown>>>(shape: T) {
  return fc.record(shape, { requiredKeys: [] }).map((p) => {
    const out = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
    return Object.keys(out).length > 0 ? out : undefined;
  });
}
const withProps = <P extends object>(packet: P, properties: object | undefined): P =>
  properties ? { ...packet, properties } : packet;

// ---- packets ------------------------------------------------------------------------------------------------

const will = (v: Version) =>
  fc
    .record({
      topic: topicName,
      payload: bytes(),
      qos,
      retain: fc.boolean(),
      properties:
        v === 5
          ? props({
              willDelayInterval: uint32,
              payloadFormatIndicator: fc.boolean(),
              messageExpiryInterval: uint32,
              contentType: text(),
              responseTopic: topicName,
              correlationData: bytes(),
              userProperties,
            })
          : fc.constant(undefined),
    })
    .map(({ properties, ...w }) => withProps(w, properties));

export const connectPacket = (v: Version) =>
  fc
    .record({
      clientId: fc.string({ unit: 'grapheme-ascii', maxLength: 12 }),
      clean: fc.boolean(),
      keepalive: uint16,
      credentials: fc.option(fc.tuple(text(), fc.option(bytes(), { nil: undefined })), { nil: undefined }),
      will: fc.option(will(v), { nil: undefined }),
      properties:
        v === 5
          ? props({
              sessionExpiryInterval: uint32,
              receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
              maximumPacketSize: fc.integer({ min: 1, max: 0xffffffff }),
              topicAliasMaximum: uint16,
              requestResponseInformation: fc.boolean(),
              requestProblemInformation: fc.boolean(),
              userProperties,
            })
          : fc.constant(undefined),
    })
    .map(
      ({ credentials, will: w, properties, ...c }) =>
        withProps(
          {
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: v,
            ...c,
            // mqtt-packet writes no empty client id with clean 0 (refused by 3.1.1 [MQTT-3.1.3-8] anyway).
            clean: c.clean || c.clientId === '',
            // 3.1.1 [MQTT-3.1.2-22]: no password without a user name.
            ...(credentials ? { username: credentials[0] } : {}),
            ...(credentials?.[1] ? { password: credentials[1] } : {}),
            ...(w ? { will: w } : {}),
          },
          properties,
        ) as Packet,
    );

export const publishPacket = (v: Version) =>
  fc
    .record({
      topic: topicName,
      payload: bytes(32),
      qos,
      retain: fc.boolean(),
      dup: fc.boolean(),
      messageId: packetId,
      properties:
        v === 5
          ? props({
              payloadFormatIndicator: fc.boolean(),
              messageExpiryInterval: uint32,
              topicAlias: fc.integer({ min: 1, max: 0xffff }),
              responseTopic: topicName,
              correlationData: bytes(),
              userProperties,
              subscriptionIdentifier: fc.integer({ min: 1, max: 268_435_455 }),
              contentType: text(),
            })
          : fc.constant(undefined),
    })
    .map(({ properties, messageId, dup, ...p }) =>
      withProps(
        {
          cmd: 'publish',
          ...p,
          // [MQTT-3.3.1-2]: DUP 0 and no packet id for QoS 0.
          dup: p.qos > 0 && dup,
          ...(p.qos > 0 ? { messageId } : {}),
        },
        properties,
      ),
    ) as fc.Arbitrary<Packet & { cmd: 'publish' }>;

export const subscribePacket = (v: Version) =>
  fc
    .record({
      messageId: packetId,
      subscriptions: fc.array(
        fc.record({
          topic: fc.oneof(
            topicFilter,
            topicFilter.map((f) => `$share/g/${f}`),
          ),
          qos,
          nl: fc.boolean(),
          rap: fc.boolean(),
          rh: fc.constantFrom(0, 1, 2),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      properties:
        v === 5
          ? props({ subscriptionIdentifier: fc.integer({ min: 1, max: 268_435_455 }), userProperties })
          : fc.constant(undefined),
    })
    .map(({ properties, subscriptions, ...s }) =>
      withProps(
        {
          cmd: 'subscribe',
          ...s,
          subscriptions:
            v === 5 ? subscriptions : subscriptions.map(({ topic, qos: q }) => ({ topic, qos: q })),
        },
        properties,
      ),
    ) as fc.Arbitrary<Packet>;

export const unsubscribePacket = (v: Version) =>
  fc
    .record({
      messageId: packetId,
      unsubscriptions: fc.array(topicFilter, { minLength: 1, maxLength: 3 }),
      properties: v === 5 ? props({ userProperties }) : fc.constant(undefined),
    })
    .map(({ properties, ...u }) =>
      withProps({ cmd: 'unsubscribe', ...u }, properties),
    ) as fc.Arbitrary<Packet>;

/** PUBACK, PUBREC, PUBREL, PUBCOMP with the reason codes each allows (§3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1). */
export const ackPacket = (v: Version) =>
  fc
    .record({
      cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'),
      messageId: packetId,
      code: fc.nat(8),
      properties: v === 5 ? props({ reasonString: text(), userProperties }) : fc.constant(undefined),
    })
    .map(({ cmd, messageId, code, properties }) => {
      if (v === 4) return { cmd, messageId };
      const codes =
        cmd === 'puback' || cmd === 'pubrec'
          ? [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
          : [0x00, 0x92];
      return withProps({ cmd, messageId, reasonCode: codes[code % codes.length] }, properties);
    }) as fc.Arbitrary<Packet>;

export const disconnectPacket = (v: Version) =>
  v === 4
    ? fc.constant({ cmd: 'disconnect' })
    : (fc
        .record({
          reasonCode: fc.constantFrom(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x90, 0x93, 0x95, 0x98, 0x99),
          properties: props({ sessionExpiryInterval: uint32, reasonString: text(), userProperties }),
        })
        .map(({ reasonCode, properties }) =>
          withProps({ cmd: 'disconnect', reasonCode }, properties),
        ) as fc.Arbitrary<Packet>);

export const authPacket = fc
  .record({
    reasonCode: fc.constantFrom(0x00, 0x18, 0x19),
    method: text(),
    properties: props({ authenticationData: bytes(), reasonString: text(), userProperties }),
  })
  .map(({ reasonCode, method, properties }) => ({
    cmd: 'auth',
    reasonCode,
    properties: { authenticationMethod: method, ...properties },
  })) as fc.Arbitrary<Packet>;

/** What a server sends: the framer does not care about direction, so these are framed too. */
const serverPacket = (v: Version) =>
  fc.oneof(
    fc
      .record({ sessionPresent: fc.boolean(), code: fc.nat(5) })
      .map(({ sessionPresent, code }) =>
        v === 4
          ? { cmd: 'connack', sessionPresent, returnCode: code }
          : { cmd: 'connack', sessionPresent, reasonCode: [0x00, 0x80, 0x84, 0x86, 0x87, 0x97][code] },
      ),
    fc
      .record({
        messageId: packetId,
        granted: fc.array(fc.constantFrom(0, 1, 2, 0x80), { minLength: 1, maxLength: 4 }),
      })
      .map((s) => ({ cmd: 'suback', ...s })),
    fc
      .record({
        messageId: packetId,
        granted: fc.array(fc.constantFrom(0x00, 0x11, 0x80), { minLength: 1, maxLength: 3 }),
      })
      .map(({ messageId, granted }) =>
        v === 4 ? { cmd: 'unsuback', messageId } : { cmd: 'unsuback', messageId, granted },
      ),
    fc.constant({ cmd: 'pingresp' }),
  ) as fc.Arbitrary<Packet>;

/** Any packet after CONNECT, of every type the version has. */
export const anyPacket = (v: Version): fc.Arbitrary<Packet> =>
  fc.oneof(
    { weight: 3, arbitrary: publishPacket(v) },
    subscribePacket(v),
    unsubscribePacket(v),
    ackPacket(v),
    fc.constant({ cmd: 'pingreq' }),
    disconnectPacket(v),
    ...(v === 5 ? [authPacket] : []),
    serverPacket(v),
  );

/** One connection's bytes: an optional CONNECT, then packets of its version. */
export const packetStream = fc.constantFrom<Version>(4, 5).chain((version) =>
  fc.record({
    version: fc.constant(version),
    packets: fc
      .tuple(
        fc.option(connectPacket(version), { nil: undefined }),
        fc.array(anyPacket(version), { maxLength: 8 }),
      )
      .map(([connect, rest]) => (connect ? [connect, ...rest] : rest)),
  }),
);

export const generate = (packet: Packet, version: Version): Buffer =>
  mqttPacket.generate(packet, { protocolVersion: version });

/** Splits bytes into chunks at the given cut points (any order, repeats allowed). */
export function chunked(all: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    if (p > at) out.push(all.subarray(at, p));
    at = Math.max(at, p);
  }
  if (at < all.length) out.push(all.subarray(at));
  return out;
}

// ---- an in-memory link into the core ------------------------------------------------------------------------

/** One end of an in-memory stream pair: what one end writes the other reads; a destroy reaches both ends. */
class MemoryEnd extends Duplex {
  peer: MemoryEnd | undefined;

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.peer && !this.peer.destroyed) this.peer.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.peer && !this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // An abrupt close (a reset connection): the other end is closed too, without an end of stream.
    const peer = this.peer;
    this.peer = undefined;
    if (peer && !peer.destroyed) peer.destroy();
    callback(err);
  }
}

/** A pair of connected in-memory streams: `[server end, client end]`. */
export function memoryPair(): [Duplex, Duplex] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** Turns of the event loop until what was written has been handled and answered (the core flushes on setImmediate). */
export async function settle(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
