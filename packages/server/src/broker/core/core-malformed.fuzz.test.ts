import fc from 'fast-check';
import type { Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chunked,
  connectPacket,
  fuzzParams,
  fuzzTimeout,
  generate,
  memoryPair,
  settle,
  type Version,
} from './fuzz-harness.ts';
import { RawClient, startCore, type Harness } from './test-harness.ts';

/** The remaining length as a variable byte integer (§1.5.5). */
function varint(n: number): number[] {
  const out: number[] = [];
  let x = n;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    out.push(byte);
  } while (x > 0);
  return out;
}
const str = (b: Buffer | string): Buffer => {
  const body = Buffer.isBuffer(b) ? b : Buffer.from(b);
  return Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]);
};
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
/** A packet from its first byte and its body (the remaining length computed). */
const packet = (first: number, ...body: Buffer[]): Buffer => {
  const b = Buffer.concat(body);
  return Buffer.concat([Buffer.from([first, ...varint(b.length)]), b]);
};
/** The first byte and the body of an encoded packet. */
function split(bytes: Buffer): { first: number; body: Buffer } {
  let i = 1;
  while ((bytes[i] ?? 0) & 0x80) i += 1;
  return { first: bytes[0] ?? 0, body: bytes.subarray(i + 1) };
}
/** An empty property block (v5) or nothing (3.1.1). */
const noProps = (v: Version): Buffer => Buffer.from(v === 5 ? [0] : []);

const LIMIT = 1024;
const topic = fc.constantFrom('fuzz/a', 'fuzz/b/c', 'fuzz/ü', 'fuzz');
const id = fc.integer({ min: 1, max: 0xffff });
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);

/** Packets a well-behaved client sends once connected (none of them is refused by the test hooks). */
const validPacket: fc.Arbitrary<Packet> = fc.oneof(
  fc
    .record({ topic, qos, id, retain: fc.boolean(), payload: fc.uint8Array({ maxLength: 16 }) })
    .map(({ topic: t, qos: q, id: i, retain, payload }) => ({
      cmd: 'publish',
      topic: t,
      qos: q,
      retain,
      dup: false,
      payload: Buffer.from(payload),
      ...(q > 0 ? { messageId: i } : {}),
    })),
  fc.record({ id, qos }).map(({ id: i, qos: q }) => ({
    cmd: 'subscribe',
    messageId: i,
    subscriptions: [{ topic: 'fuzz/#', qos: q }],
  })),
  id.map((i) => ({ cmd: 'unsubscribe', messageId: i, unsubscriptions: ['fuzz/#'] })),
  fc.constant({ cmd: 'pingreq' }),
) as fc.Arbitrary<Packet>;

/** Invalid UTF-8 [MQTT-1.5.4-1]: a stray byte, a cut sequence, a surrogate, an overlong form. */
const badUtf8 = fc
  .tuple(
    fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xf8, 0x88, 0x80]),
    fc.constantFrom('', 'fuzz/', 'a'),
  )
  .map(([bad, prefix]) => Buffer.concat([Buffer.from(prefix), Buffer.from(bad)]));

/** A property that may appear once (§2.2.2.2), encoded: id and value. */
const singleProperty = fc.constantFrom(
  [0x01, 0x00], // payload format indicator
  [0x02, 0, 0, 0, 60], // message expiry interval
  [0x03, 0, 1, 0x74], // content type
  [0x08, 0, 1, 0x72], // response topic
  [0x09, 0, 1, 0x00], // correlation data
  [0x23, 0, 1], // topic alias
);

/**
 * A mutation and what MQTT 5 §4.13 determines of it: `code` is the reason code of the DISCONNECT a v5 client gets
 * (a 3.1.1 client's connection is just closed); `silent`: closed without anything sent (before CONNACK);
 * undefined: not determined (the packet may still be well-formed): the core must only survive it.
 */
interface Mutation {
  kind: string;
  bytes: Buffer;
  code?: number;
  silent?: boolean;
  v5only?: boolean;
  v4only?: boolean;
}

const mutation = (v: Version): fc.Arbitrary<Mutation> =>
  fc.oneof(
    // [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-1, 2.2.2-2]) reserved flags other than the table's.
    fc
      .tuple(
        fc.constantFrom(
          { type: 8, flags: 2, body: Buffer.concat([u16(1), noProps(v), str('fuzz/#'), Buffer.from([1])]) },
          { type: 10, flags: 2, body: Buffer.concat([u16(1), noProps(v), str('fuzz/#')]) },
          { type: 12, flags: 0, body: Buffer.alloc(0) },
          { type: 4, flags: 0, body: u16(7) },
          { type: 5, flags: 0, body: u16(7) },
          { type: 6, flags: 2, body: u16(7) },
          { type: 7, flags: 0, body: u16(7) },
          { type: 14, flags: 0, body: Buffer.alloc(0) },
        ),
        fc.integer({ min: 1, max: 15 }),
      )
      .map(([p, x]) => ({
        kind: 'reserved flags',
        bytes: packet((p.type << 4) | (p.flags ^ x), p.body),
        code: 0x81,
      })),
    // [MQTT-3.3.1-4] QoS 3.
    topic.map((t) => ({
      kind: 'QoS 3',
      bytes: packet(0x36, str(t), u16(1), noProps(v), Buffer.from('x')),
      code: 0x81,
    })),
    // [MQTT-1.5.4-1] invalid UTF-8 in a topic name or a filter.
    fc.tuple(badUtf8, fc.constantFrom('publish', 'subscribe', 'unsubscribe')).map(([bad, where]) => ({
      kind: `invalid UTF-8 in ${where}`,
      bytes:
        where === 'publish'
          ? packet(0x32, str(bad), u16(1), noProps(v), Buffer.from('x'))
          : where === 'subscribe'
            ? packet(0x82, u16(1), noProps(v), str(bad), Buffer.from([0]))
            : packet(0xa2, u16(1), noProps(v), str(bad)),
      code: 0x81,
    })),
    // [MQTT-1.5.4-2] U+0000 in a topic name or filter (malformed, not 0x90 / 0x8F); [MQTT-1.5.4-1, 1.5.4-2] in a
    // user property of a PUBLISH or SUBSCRIBE; §2.2.2.2 a property of another packet type in a PUBLISH.
    fc
      .tuple(fc.constantFrom([0x00], [0xff], [0xc3, 0x28]), fc.constantFrom('publish', 'subscribe'))
      .map(([bad, where]) => {
        const nul = Buffer.from(bad);
        const pair = Buffer.concat([
          Buffer.from([0x26]),
          str(Buffer.concat([Buffer.from('k'), nul])),
          str('v'),
        ]);
        const props = Buffer.from([pair.length]);
        return {
          kind: `malformed string in ${where} (user property)`,
          bytes:
            where === 'publish'
              ? packet(0x30, str('fuzz/a'), props, pair, Buffer.from('x'))
              : packet(0x82, u16(1), props, pair, str('fuzz/#'), Buffer.from([0])),
          code: 0x81,
          v5only: true,
        };
      }),
    fc.constantFrom(0x30, 0x82, 0xa2).map((first) => ({
      kind: 'U+0000 in a topic name or filter',
      bytes:
        first === 0x30
          ? packet(first, str('fuzz/\u0000'), Buffer.from([0]), Buffer.from('x'))
          : packet(
              first,
              u16(1),
              Buffer.from([0]),
              str('fuzz/\u0000'),
              Buffer.from(first === 0x82 ? [0] : []),
            ),
      code: 0x81,
      v5only: true,
    })),
    fc.constant({
      kind: 'session expiry interval in a PUBLISH',
      bytes: packet(0x30, str('fuzz/a'), Buffer.from([5, 0x11, 0, 0, 0, 5]), Buffer.from('x')),
      code: 0x81,
      v5only: true,
    }),
    // §2.2.2.2 a property that may appear once, twice.
    fc.tuple(singleProperty, topic).map(([prop, t]) => ({
      kind: 'duplicate property',
      bytes: packet(0x32, str(t), u16(1), Buffer.from([prop.length * 2, ...prop, ...prop]), Buffer.from('x')),
      code: 0x82,
      v5only: true,
    })),
    fc.integer({ min: 1, max: 1000 }).map((sid) => ({
      kind: 'duplicate subscription identifier',
      bytes: packet(
        0x82,
        u16(1),
        Buffer.from([2 * (1 + varint(sid).length), 0x0b, ...varint(sid), 0x0b, ...varint(sid)]),
        str('fuzz/#'),
        Buffer.from([1]),
      ),
      code: 0x82,
      v5only: true,
    })),
    // [MQTT-2.2.1-3] packet identifier 0.
    fc.tuple(fc.constantFrom(0x32, 0x34, 0x82, 0xa2), topic).map(([first, t]) => ({
      kind: 'packet id 0',
      bytes:
        first === 0x82
          ? packet(first, u16(0), noProps(v), str('fuzz/#'), Buffer.from([1]))
          : first === 0xa2
            ? packet(first, u16(0), noProps(v), str('fuzz/#'))
            : packet(first, str(t), u16(0), noProps(v), Buffer.from('x')),
      code: 0x82,
    })),
    // [MQTT-3.3.2-2] a wildcard in a topic name: the more specific 0x90 (§4.13.1, §3.14.2.1).
    fc.constantFrom('fuzz/+', 'fuzz/#', '#', '+/x', 'a+b').map((t) => ({
      kind: 'wildcard in PUBLISH topic',
      bytes: packet(0x30, str(t), noProps(v), Buffer.from('x')),
      code: 0x90,
    })),
    // §1.5.5 a remaining length of five bytes; [MQTT-1.5.5-1] one not in the fewest bytes.
    fc.constant({
      kind: 'remaining length of 5 bytes',
      bytes: Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]),
      code: 0x81,
    }),
    fc.constantFrom(0x30, 0x82, 0xc0).map((first) => ({
      kind: 'remaining length not minimal',
      bytes: Buffer.from([first, 0x80, 0x00]),
      code: 0x81,
    })),
    // §4.13, DESIGN principle 8: announced above the limit, refused at the fixed header.
    fc.integer({ min: LIMIT + 1, max: 268_435_455 }).map((n) => ({
      kind: 'remaining length above the limit',
      bytes: Buffer.from([0x30, ...varint(n)]),
      code: 0x95,
    })),
    // A PUBLISH cut inside its topic or packet id, the remaining length telling the truth.
    fc.tuple(topic, fc.nat()).map(([t, n]) => {
      const whole = Buffer.concat([str(t), u16(1)]);
      return {
        kind: 'PUBLISH cut before its packet id ends',
        bytes: packet(0x32, whole.subarray(0, n % whole.length)),
        code: 0x81,
      };
    }),
    // Acknowledgements without their packet id.
    fc.constantFrom(0x40, 0x50, 0x62, 0x70).map((first) => ({
      kind: 'acknowledgement without packet id',
      bytes: Buffer.from([first, 0x01, 0x00]),
      code: 0x81,
    })),
    // [MQTT-3.8.3-2, 3.10.3-2] (3.1.1: 3.8.3-3, 3.10.3-2) no topic filter at all: a protocol error.
    fc.constantFrom(0x82, 0xa2).map((first) => ({
      kind: 'no topic filter',
      bytes: packet(first, u16(1), noProps(v)),
      code: 0x82,
    })),
    // Bytes where a packet has none (§3.12.1, 3.1.1 §3.14.1), or more than a 3.1.1 acknowledgement's two.
    fc.uint8Array({ minLength: 1, maxLength: 4 }).map((extra) => ({
      kind: 'PINGREQ with a body',
      bytes: packet(0xc0, Buffer.from(extra)),
      code: 0x81,
    })),
    fc.constant({
      kind: '3.1.1 PUBACK of 3 bytes',
      bytes: Buffer.from([0x40, 0x03, 0x00, 0x07, 0x00]),
      code: 0x81,
      v4only: true,
    }),
    // Packet type 0 is reserved (§2.1.2).
    fc
      .integer({ min: 0, max: 15 })
      .map((flags) => ({ kind: 'reserved packet type', bytes: Buffer.from([flags, 0]), code: 0x81 })),
    // [MQTT-3.1.0-2] a second CONNECT.
    connectPacket(v).map((c) => ({ kind: 'second CONNECT', bytes: generate(c, v), code: 0x82 })),
    // What only a server sends.
    fc
      .constantFrom<Packet>(
        { cmd: 'pingresp' },
        { cmd: 'suback', messageId: 1, granted: [0] },
        v === 5
          ? { cmd: 'connack', sessionPresent: false, reasonCode: 0 }
          : { cmd: 'connack', sessionPresent: false, returnCode: 0 },
      )
      .map((p) => ({ kind: `client sends ${p.cmd}`, bytes: generate(p, v), code: 0x82 })),
    // AUTH: not a 3.1.1 packet (malformed); on MQTT 5 without an authentication method at CONNECT [MQTT-4.12.0-7].
    fc.constant({
      kind: 'AUTH',
      bytes:
        v === 5
          ? generate({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm' } }, 5)
          : Buffer.from([0xf0, 0x00]),
      code: v === 5 ? 0x82 : 0x81,
    }),
    // Undetermined: the core only has to survive them.
    fc.uint8Array({ minLength: 1, maxLength: 12 }).map((b) => ({ kind: 'garbage', bytes: Buffer.from(b) })),
  );

/** How the victim's bytes are changed: one mutated packet between valid ones, or raw changes to the stream. */
type Change =
  | { how: 'insert packet'; mutation: Mutation }
  | { how: 'bit flips'; at: number[] }
  | { how: 'inserted bytes'; at: number; bytes: number[] }
  | { how: 'truncated'; at: number }
  | { how: 'remaining length changed'; packet: number; length: number }
  | { how: 'before CONNECT' };

const change = (v: Version): fc.Arbitrary<Change> =>
  fc.oneof(
    { weight: 6, arbitrary: mutation(v).map((m) => ({ how: 'insert packet' as const, mutation: m })) },
    fc.array(fc.nat(), { minLength: 1, maxLength: 3 }).map((at) => ({ how: 'bit flips' as const, at })),
    fc
      .tuple(fc.nat(), fc.array(fc.nat(255), { minLength: 1, maxLength: 8 }))
      .map(([at, bytes]) => ({ how: 'inserted bytes' as const, at, bytes })),
    fc.nat().map((at) => ({ how: 'truncated' as const, at })),
    fc
      .tuple(fc.nat(), fc.nat(300))
      .map(([p, length]) => ({ how: 'remaining length changed' as const, packet: p, length })),
    fc.constant({ how: 'before CONNECT' as const }),
  );

const scenario = fc.constantFrom<Version>(4, 5).chain((version) =>
  fc.record({
    version: fc.constant(version),
    before: fc.array(validPacket, { maxLength: 4 }),
    after: fc.array(validPacket, { maxLength: 3 }),
    change: change(version),
    cuts: fc.array(fc.nat(400), { maxLength: 6 }),
  }),
);

/** Reason codes a server may end a connection with for something the client sent (§3.14.2.1); never 0x83. */
const CLIENT_FAULTS = new Set([0x81, 0x82, 0x87, 0x90, 0x93, 0x94, 0x95, 0x97, 0x99]);

/**
 * Issue 19, malformed input: valid streams with a malformed packet or raw byte mutations. The core never crashes,
 * closes the connection, and tells a v5 client why (DISCONNECT 0x81 malformed, 0x82 protocol error, or the more
 * specific code §4.13.1 allows) once connected; a 3.1.1 client's connection is just closed. A bystander keeps
 * publishing and receiving throughout.
 */
describe('fuzz: malformed input', () => {
  let h: Harness;
  let bystander: RawClient;
  let n = 0;
  beforeAll(async () => {
    h = await startCore({ limits: { maxPacketBytes: LIMIT, maxConnectBytes: LIMIT } });
    const [server, client] = memoryPair();
    h.core.accept(server, { remoteAddress: 'memory' });
    bystander = await RawClient.connected(client, 'bystander', { version: 5 });
    bystander.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bystander/#', qos: 1 }] });
    await bystander.next('suback');
  });
  afterAll(async () => {
    bystander?.destroy();
    await h?.close();
  });

  /** The bystander publishes QoS 1 and gets its PUBACK and its own message back. */
  async function bystanderStillServed(): Promise<void> {
    n += 1;
    bystander.send({
      cmd: 'publish',
      topic: `bystander/${n}`,
      payload: `m${n}`,
      qos: 1,
      messageId: (n % 60000) + 1,
      retain: false,
      dup: false,
    });
    await bystander.next('puback', 2000);
    const echo = await bystander.next('publish', 2000);
    expect(echo.payload.toString()).toBe(`m${n}`);
  }

  it(
    'never crashes, closes the connection with the reason code §4.13 gives, and the bystander is unaffected',
    async () => {
      const seen = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(scenario, async ({ version, before, after, change: ch, cuts }) => {
          const connect = generate(
            {
              cmd: 'connect',
              protocolId: 'MQTT',
              protocolVersion: version,
              clientId: `victim-${n}`,
              clean: true,
              keepalive: 0,
            },
            version,
          );
          const valid = (ps: Packet[]) => ps.map((p) => generate(p, version));
          let parts: Buffer[] = [connect, ...valid(before)];
          let expected: Mutation | undefined;
          let silent = false;
          switch (ch.how) {
            case 'insert packet':
              if (!(ch.mutation.v5only && version === 4) && !(ch.mutation.v4only && version === 5))
                expected = ch.mutation;
              parts.push(ch.mutation.bytes);
              break;
            case 'before CONNECT':
              parts = [...valid(before.length > 0 ? before : [{ cmd: 'pingreq' }]), connect];
              silent = true;
              break;
            case 'remaining length changed': {
              const k = 1 + (ch.packet % Math.max(1, parts.length - 1));
              const target = parts[k];
              if (target) {
                const { first, body } = split(target);
                parts[k] = Buffer.concat([Buffer.from([first, ...varint(ch.length)]), body]);
              }
              break;
            }
            default:
              break;
          }
          parts.push(...valid(after));
          let stream = Buffer.concat(parts);
          // Raw changes after the CONNECT (a changed CONNECT may change the version the client reads with).
          const start = connect.length;
          const span = Math.max(1, stream.length - start);
          if (ch.how === 'bit flips') {
            stream = Buffer.from(stream);
            for (const bit of ch.at) {
              const i = start + (Math.floor(bit / 8) % span);
              if (i < stream.length) stream[i] = (stream[i] ?? 0) ^ (1 << (bit % 8));
            }
          } else if (ch.how === 'inserted bytes') {
            const i = start + (ch.at % span);
            stream = Buffer.concat([stream.subarray(0, i), Buffer.from(ch.bytes), stream.subarray(i)]);
          } else if (ch.how === 'truncated') stream = stream.subarray(0, start + (ch.at % span));

          const kind = expected?.kind ?? ch.how;
          seen.set(kind, (seen.get(kind) ?? 0) + 1);
          const marks = [h.disconnects.length, h.rejections.length, h.errors.length] as const;
          const [server, client] = memoryPair();
          h.core.accept(server, { remoteAddress: 'memory' });
          const victim = await RawClient.open(client, version);
          for (const chunk of chunked(stream, cuts)) victim.send(chunk);
          await settle();
          // Determined: the core closes it. Otherwise the client ends its stream, and the core closes it then.
          if (expected?.code === undefined && !silent) victim.end();
          await victim.whenClosed(2000);
          const disconnects = victim.packets.filter((p) => p.cmd === 'disconnect') as (Packet & {
            reasonCode?: number;
          })[];
          if (silent) expect(victim.packets, kind).toEqual([]);
          else if (version === 4) expect(disconnects, `${kind}: no DISCONNECT on 3.1.1`).toEqual([]);
          else if (expected?.code !== undefined) {
            expect(
              disconnects.map((d) => d.reasonCode),
              kind,
            ).toEqual([expected.code]);
            expect(victim.packets.at(-1)?.cmd, `${kind}: DISCONNECT is the last packet`).toBe('disconnect');
          } else
            for (const d of disconnects)
              expect(CLIENT_FAULTS.has(d.reasonCode ?? 0), `${kind}: ${d.reasonCode}`).toBe(true);
          // Nothing in the core broke (0x83 is a bug in a handler), and it holds nothing of the victim.
          const codes = [
            ...h.disconnects.slice(marks[0]).map((d) => d.info.reasonCode),
            ...h.rejections.slice(marks[1]).map((r) => r.reasonCode),
          ];
          expect(
            codes.filter((c) => c === 0x83),
            `${kind}: ${h.errors.slice(marks[2]).join('; ')}`,
          ).toEqual([]);
          await settle();
          expect(h.core.stats().connections, kind).toBe(1);
          expect(h.core.stats().sessions, kind).toBe(1);
          await bystanderStillServed();
        }),
        fuzzParams(process.env, 400, 0x19_03),
      );
      // Every kind was tried (the run counts are in the test output on failure).
      expect([...seen.keys()].length).toBeGreaterThan(20);
    },
    fuzzTimeout(process.env, 60_000),
  );
});
