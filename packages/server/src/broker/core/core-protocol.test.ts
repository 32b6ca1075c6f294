import { connect as tcpConnect } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Framer } from './framing.ts';
import { RawClient, startCore, type Harness } from './test-harness.ts';
import type { CoreDelivery } from './types.ts';

/** A packet's bytes with the first occurrence of an ASCII marker replaced by bytes of the same length. */
function withBytes(bytes: Buffer, marker: string, replacement: number[]): Buffer {
  const at = bytes.indexOf(marker);
  if (at < 0 || replacement.length !== marker.length) throw new Error(`no marker ${marker}`);
  const out = Buffer.from(bytes);
  Buffer.from(replacement).copy(out, at);
  return out;
}
const gen = (packet: Packet, version: 4 | 5) => mqttPacket.generate(packet, { protocolVersion: version });
/** Two bytes that are not UTF-8 [MQTT-1.5.4-1] (a lead byte without its continuation), and U+0000 [MQTT-1.5.4-2]. */
const NOT_UTF8 = [0xc3, 0x28];
const NUL = [0x61, 0x00];

/** A connection whose bytes are kept as they came (RawClient parses them with mqtt-packet, which regroups). */
async function rawTap(port: number, clientId: string, opened: RawClient[]) {
  const socket = tcpConnect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const framer = new Framer({ maxPacketBytes: 1 << 20, maxConnectBytes: 1 << 20 });
  const publishes: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => {
    framer.push(chunk);
    for (let f = framer.next(); f?.kind === 'packet'; f = framer.next())
      if (f.type === 3) publishes.push(Buffer.from(f.bytes));
  });
  const client = await RawClient.open(socket, 5);
  opened.push(client);
  client.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clientId,
    clean: true,
    keepalive: 60,
  });
  await client.next('connack');
  return { client, publishes };
}

/** The user properties of PUBLISH bytes in wire order, read straight from the bytes (§3.3.2.3, §2.2.2.2). */
function wireUserProperties(bytes: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let i = 1;
  while ((bytes[i] ?? 0) & 0x80) i++;
  i += 1;
  const qos = ((bytes[0] ?? 0) >> 1) & 3;
  i += 2 + bytes.readUInt16BE(i) + (qos > 0 ? 2 : 0);
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[i++] ?? 0;
    length += (b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  const sizes: Record<number, number> = { 0x01: 1, 0x02: 4, 0x23: 2 };
  for (const end = i + length; i < end;) {
    const id = bytes[i++] ?? 0;
    const str = () => {
      const n = bytes.readUInt16BE(i);
      const s = bytes.toString('utf8', i + 2, i + 2 + n);
      i += 2 + n;
      return s;
    };
    if (id === 0x26) out.push([str(), str()]);
    else if (id === 0x0b) while ((bytes[i++] ?? 0) & 0x80);
    else if (sizes[id] !== undefined) i += sizes[id];
    else str(); // string and binary properties
  }
  return out;
}

/** What a topic alias did to one PUBLISH a client received: its topic field and its alias. */
const aliasOf = (p: Packet) => ({
  topic: (p as IPublishPacket).topic,
  alias: (p as IPublishPacket).properties?.topicAlias,
});

describe('broker core: MQTT 5 protocol details (issue 19)', () => {
  let h: Harness;
  const clients: MqttClient[] = [];
  const raws: RawClient[] = [];
  const connect = async (clientId: string, extra: mqtt.IClientOptions = {}) => {
    const client = await mqtt.connectAsync(h.url, {
      clientId,
      protocolVersion: 5,
      reconnectPeriod: 0,
      ...extra,
    });
    clients.push(client);
    return client;
  };
  const raw = async (clientId: string, options: Parameters<typeof RawClient.connected>[2] = {}) => {
    const c = await RawClient.connected(h.port, clientId, { version: 5, ...options });
    raws.push(c);
    return c;
  };
  /** A mqtt.js v5 client and the CONNACK it got. */
  const connectFor = (clientId: string, extra: mqtt.IClientOptions = {}) =>
    new Promise<{ client: MqttClient; connack: mqtt.IConnackPacket }>((resolve, reject) => {
      const client = mqtt.connect(h.url, { clientId, protocolVersion: 5, reconnectPeriod: 0, ...extra });
      clients.push(client);
      client.once('connect', (connack) => resolve({ client, connack }));
      client.once('error', reject);
    });
  beforeAll(async () => {
    h = await startCore({
      hooks: {
        deliver: (_session, packet) => {
          if (packet.topic.startsWith('withheld/')) return null;
          // A copy with other user properties: sent in its own order.
          if (packet.topic.startsWith('relabel/'))
            return {
              ...packet,
              properties: { ...packet.properties, userProperties: { z: 'last', a: ['1', '3'] } },
            } satisfies CoreDelivery;
          return packet;
        },
        responseInformation: (session) =>
          session.clientId.startsWith('noinfo') ? undefined : `replies/${session.clientId}`,
      },
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    for (const c of raws.splice(0)) c.destroy();
    // Every connection gone before the next test, and before shutdown (core.shutdown's wait for a socket's
    // close rejects when a reset socket reports an error first).
    for (let i = 0; i < 200 && h.core.stats().connections > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(h.core.stats().connections).toBe(0);
  });
  afterAll(async () => h?.close());

  // ---- user properties in order ------------------------------------------------------------------------------

  /** a=1, b=2, a=3 on the wire: mqtt-packet cannot write that order, the core's own encoder can. */
  const interleaved = (topic: string, qos: 0 | 1) => {
    const marker = gen(
      {
        cmd: 'publish',
        topic,
        payload: 'body',
        qos,
        dup: false,
        retain: topic.startsWith('kept/'),
        ...(qos > 0 ? { messageId: 9 } : {}),
        properties: { userProperties: { a: ['1', 'X'], b: '2' } },
      },
      5,
    );
    // mqtt-packet writes a=1, a=X, b=2: the bytes of a=X and b=2 swapped give a=1, b=2, a=3.
    const ax = Buffer.from([0x26, 0, 1, 0x61, 0, 1, 0x58]);
    const b2 = Buffer.from([0x26, 0, 1, 0x62, 0, 1, 0x32]);
    const at = marker.indexOf(ax);
    const out = Buffer.from(marker);
    b2.copy(out, at);
    Buffer.from([0x26, 0, 1, 0x61, 0, 1, 0x33]).copy(out, at + 7);
    return out;
  };

  it('[MQTT-3.3.2-17, 3.3.2-18] user properties are forwarded in the order they were sent (a=1, b=2, a=3)', async () => {
    const sub = await rawTap(h.port, 'order-sub', raws);
    sub.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'order/#', qos: 1 }] });
    await sub.client.next('suback');
    const js = await connect('order-js');
    await js.subscribeAsync('order/#', { qos: 1 });
    const got = new Promise<IPublishPacket>((resolve) =>
      js.once('message', (_t, _p, packet) => resolve(packet)),
    );
    const pub = await raw('order-pub');
    for (const qos of [0, 1] as const) pub.send(interleaved(`order/${qos}`, qos));
    await pub.next('puback');
    await sub.client.ping();
    expect(sub.publishes.map(wireUserProperties)).toEqual([
      [
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ],
      [
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ],
    ]);
    // What a client (mqtt.js) and the hooks see by name is unchanged: a repeated name is an array, in order.
    expect((await got).properties?.userProperties).toEqual({ a: ['1', '3'], b: '2' });
  });

  it('[MQTT-3.3.2-18] the order survives a retained message; a deliver hook that changes the user properties sends its own order', async () => {
    const pub = await raw('order-pub2');
    pub.send(interleaved('kept/order', 1));
    pub.send(interleaved('relabel/order', 1));
    await pub.next('puback');
    await pub.next('puback');
    const sub = await rawTap(h.port, 'order-sub2', raws);
    sub.client.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: 'kept/order', qos: 1 },
        { topic: 'relabel/order', qos: 1 },
      ],
    });
    await sub.client.next('suback');
    pub.send(interleaved('relabel/order', 0));
    await sub.client.next('publish');
    await sub.client.next('publish');
    expect(sub.publishes.map(wireUserProperties)).toEqual([
      [
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ],
      [
        ['z', 'last'],
        ['a', '1'],
        ['a', '3'],
      ],
    ]);
  });

  // ---- malformed strings --------------------------------------------------------------------------------------

  it('[MQTT-1.5.4-2] a topic name or filter with U+0000 is malformed: DISCONNECT 0x81 (no longer 0x90 / 0x8F), a close on 3.1.1', async () => {
    const packets = (v: 4 | 5) => [
      withBytes(
        gen({ cmd: 'publish', topic: 'nul/XX', payload: 'x', qos: 0, dup: false, retain: false }, v),
        'XX',
        NUL,
      ),
      withBytes(
        gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'nul/XX', qos: 0 }] }, v),
        'XX',
        NUL,
      ),
      withBytes(gen({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: ['nul/XX'] }, v), 'XX', NUL),
    ];
    for (const version of [5, 4] as const)
      for (const bytes of packets(version)) {
        const c = await raw(`nul-${version}`, { version });
        c.send(bytes);
        if (version === 5) expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x81 });
        await c.whenClosed();
        expect(c.packets.filter((p) => p.cmd === 'suback' || p.cmd === 'unsuback')).toEqual([]);
        if (version === 4) expect(c.packets).toEqual([]);
      }
    expect(h.errors).toContain('malformed packet: topic name contains U+0000');
    expect(h.errors).toContain('malformed packet: topic filter contains U+0000');
  });

  it('[MQTT-1.5.4-1, 1.5.4-2] ill-formed UTF-8 or U+0000 in any string of a PUBLISH, SUBSCRIBE, UNSUBSCRIBE, acknowledgement or AUTH: DISCONNECT 0x81', async () => {
    const user = { userProperties: { KK: 'VV' } };
    const cases: [string, Packet, string][] = [
      [
        'topic',
        { cmd: 'publish', topic: 'bad/XX', payload: 'x', qos: 1, messageId: 1, dup: false, retain: false },
        'XX',
      ],
      ...(['contentType', 'responseTopic'] as const).map((name): [string, Packet, string] => [
        name,
        {
          cmd: 'publish',
          topic: 'bad/t',
          payload: 'x',
          qos: 0,
          dup: false,
          retain: false,
          properties: { [name]: 'p/XX' },
        },
        'XX',
      ]),
      ...(['KK', 'VV'] as const).map((marker): [string, Packet, string] => [
        `user property ${marker === 'KK' ? 'name' : 'value'}`,
        { cmd: 'publish', topic: 'bad/t', payload: 'x', qos: 0, dup: false, retain: false, properties: user },
        marker,
      ]),
      [
        'SUBSCRIBE user property',
        { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'ok/t', qos: 0 }], properties: user },
        'VV',
      ],
      [
        'UNSUBSCRIBE user property',
        { cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['ok/t'], properties: user },
        'KK',
      ],
      [
        'PUBACK reason string',
        { cmd: 'puback', messageId: 5, reasonCode: 0x10, properties: { reasonString: 'XX' } },
        'XX',
      ],
      ['PUBREC user property', { cmd: 'pubrec', messageId: 5, reasonCode: 0x10, properties: user }, 'VV'],
    ];
    for (const [what, packet, marker] of cases)
      for (const bad of [NOT_UTF8, NUL]) {
        const c = await raw('strings');
        c.send(withBytes(gen(packet, 5), marker, bad));
        const disconnect = await c.next('disconnect');
        expect(disconnect.reasonCode, what).toBe(0x81);
        expect(disconnect.properties?.reasonString, what).toMatch(
          bad === NUL ? /contains U\+0000$/ : /is not UTF-8$/,
        );
        await c.whenClosed();
      }
    // AUTH: its authentication method (which must equal the CONNECT's) is checked as a string first.
    const c = await raw('strings-auth');
    c.send(
      withBytes(
        gen({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'XX' } }, 5),
        'XX',
        NOT_UTF8,
      ),
    );
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x81 });
  });

  it('§2.2.2.2 a PUBLISH with a property of another packet (session expiry interval) is malformed: 0x81, not forwarded', async () => {
    const c = await raw('foreign');
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'foreign/#', qos: 0 }] });
    await c.next('suback');
    const bytes = gen(
      { cmd: 'publish', topic: 'foreign/t', payload: 'x', qos: 0, dup: false, retain: false },
      5,
    );
    // The empty property block (its length 0 after the topic) becomes one with Session Expiry Interval 5.
    const at = 2 + 2 + 'foreign/t'.length;
    const forged = Buffer.concat([
      Buffer.from([0x30, bytes.length - 2 + 5, ...bytes.subarray(2, at)]),
      Buffer.from([5, 0x11, 0, 0, 0, 5]),
      bytes.subarray(at + 1),
    ]);
    c.send(forged);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x81 });
    expect(c.packets.filter((p) => p.cmd === 'publish')).toEqual([]);
  });

  it('[MQTT-1.5.4-1] a malformed DISCONNECT (reason string not UTF-8) is not a normal one: the will is published', async () => {
    const watcher = await raw('will-watch');
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wills/#', qos: 0 }] });
    await watcher.next('suback');
    const c = await raw('will-bad', {
      will: { topic: 'wills/bad', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    c.send(
      withBytes(
        gen({ cmd: 'disconnect', reasonCode: 0, properties: { reasonString: 'XX' } }, 5),
        'XX',
        NOT_UTF8,
      ),
    );
    await c.whenClosed();
    expect((await watcher.next('publish')).payload.toString()).toBe('gone');
  });

  const connectWith = (version: 4 | 5, fields: Record<string, unknown>): Packet => ({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: version,
    clientId: 'cid-ok',
    clean: true,
    keepalive: 30,
    ...fields,
  });

  it('[MQTT-1.5.4-1, 1.5.4-2] [MQTT-3.1.4-1] a CONNECT with a malformed string is refused: CONNACK 0x81 on MQTT 5, a close on 3.1.1 (0x02 first for the client id)', async () => {
    const will = (properties?: object) => ({
      will: {
        topic: 'will/WW',
        payload: Buffer.from('w'),
        qos: 0,
        retain: false,
        ...(properties ? { properties } : {}),
      },
    });
    const cases: [string, Record<string, unknown>, string, (4 | 5)[]][] = [
      ['client identifier', { clientId: 'cid-XX' }, 'XX', [4, 5]],
      ['user name', { username: 'user-XX', password: Buffer.from('pw') }, 'XX', [4, 5]],
      ['will topic', will(), 'WW', [4, 5]],
      ['user property', { properties: { userProperties: { KK: 'v' } } }, 'KK', [5]],
      ['authentication method', { properties: { authenticationMethod: 'AM-XX' } }, 'XX', [5]],
      ['will content type', will({ contentType: 'CT' }), 'CT', [5]],
      ['will response topic', will({ responseTopic: 'RT' }), 'RT', [5]],
      ['will user property', will({ userProperties: { a: 'UV' } }), 'UV', [5]],
    ];
    for (const [what, fields, marker, versions] of cases)
      for (const version of versions)
        for (const bad of [NOT_UTF8, NUL]) {
          const before = h.rejections.length;
          const c = await RawClient.open(h.port, version);
          c.send(withBytes(gen(connectWith(version, fields), version), marker, bad));
          await c.whenClosed();
          if (version === 5) expect(c.packets, what).toMatchObject([{ cmd: 'connack', reasonCode: 0x81 }]);
          // 3.1.1: closed; a client id it cannot take is answered with 0x02 first [MQTT-3.1.3-9 (3.1.1)].
          else if (what === 'client identifier')
            expect(c.packets, what).toMatchObject([{ cmd: 'connack', returnCode: 2 }]);
          else expect(c.packets, what).toEqual([]);
          // Recorded as a refusal before any session (the adapter records it as `malformed: …`).
          expect(h.rejections.slice(before), what).toEqual([
            { reason: expect.stringMatching(/^malformed CONNECT: /) as string, reasonCode: 0x81 },
          ]);
        }
    expect(h.sessions.has('cid-ok')).toBe(false);
  });

  // ---- outbound topic aliases ---------------------------------------------------------------------------------

  it('§3.3.2.3.4 [MQTT-3.3.2-8, 3.3.2-11] topic aliases towards a client: a new topic gets one while its maximum allows, repeats go without the topic; beyond, full topics', async () => {
    const c = await raw('alias-raw', { properties: { topicAliasMaximum: 2 } });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alias/#', qos: 1 }] });
    await c.next('suback');
    const topics = [
      'alias/one',
      'alias/one',
      'alias/two',
      'alias/one',
      'alias/two',
      'alias/three',
      'alias/three',
    ];
    for (const [i, topic] of topics.entries())
      await h.core.publish({ topic, payload: String(i), qos: i % 2 ? 1 : 0 });
    const got: IPublishPacket[] = [];
    for (const _ of topics) got.push(await c.next('publish'));
    expect(got.map(aliasOf)).toEqual([
      { topic: 'alias/one', alias: 1 },
      { topic: '', alias: 1 },
      { topic: 'alias/two', alias: 2 },
      { topic: '', alias: 1 },
      { topic: '', alias: 2 },
      { topic: 'alias/three', alias: undefined },
      { topic: 'alias/three', alias: undefined },
    ]);
    expect(got.map((p) => p.payload.toString())).toEqual(topics.map((_, i) => String(i)));
    // QoS 1 ones carry their own packet ids and are acknowledged as usual.
    for (const p of got.filter((x) => x.qos === 1)) c.send({ cmd: 'puback', messageId: p.messageId ?? 0 });
    await c.ping();
  });

  it('§3.3.2.3.4 mqtt.js with a Topic Alias Maximum gets the right topics; clients without one, 3.1.1 clients and `topicAliasesOut: false` get none', async () => {
    const js = await connect('alias-js', { properties: { topicAliasMaximum: 10 } });
    const seen: ReturnType<typeof aliasOf>[] = [];
    js.on('packetreceive', (p) => {
      if (p.cmd === 'publish') seen.push(aliasOf(p));
    });
    const plain = await raw('alias-none');
    const v4 = await raw('alias-v4', { version: 4 });
    await js.subscribeAsync('aliasjs/#', { qos: 1 });
    for (const c of [plain, v4]) {
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'aliasjs/#', qos: 0 }] });
      await c.next('suback');
    }
    const messages: string[] = [];
    js.on('message', (topic, payload) => messages.push(`${topic}=${payload.toString()}`));
    for (let i = 0; i < 4; i++) await h.core.publish({ topic: `aliasjs/${i % 2}`, payload: String(i) });
    await plain.ping();
    await v4.ping();
    await new Promise<void>((resolve) => {
      const wait = () => (messages.length >= 4 ? resolve() : setTimeout(wait, 10));
      wait();
    });
    expect(messages).toEqual(['aliasjs/0=0', 'aliasjs/1=1', 'aliasjs/0=2', 'aliasjs/1=3']);
    expect(seen).toEqual([
      { topic: 'aliasjs/0', alias: 1 },
      { topic: 'aliasjs/1', alias: 2 },
      { topic: '', alias: 1 },
      { topic: '', alias: 2 },
    ]);
    for (const c of [plain, v4])
      expect(c.packets.filter((p) => p.cmd === 'publish').map(aliasOf)).toEqual(
        [0, 1, 0, 1].map((k) => ({ topic: `aliasjs/${k}`, alias: undefined })),
      );
    const off = await startCore({ limits: { topicAliasesOut: false } });
    try {
      const c = await RawClient.connected(off.port, 'alias-off', {
        version: 5,
        properties: { topicAliasMaximum: 5 },
      });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'off/#', qos: 0 }] });
      await c.next('suback');
      for (let i = 0; i < 2; i++) await off.core.publish({ topic: 'off/topic', payload: 'x', qos: 0 });
      expect([aliasOf(await c.next('publish')), aliasOf(await c.next('publish'))]).toEqual([
        { topic: 'off/topic', alias: undefined },
        { topic: 'off/topic', alias: undefined },
      ]);
      c.destroy();
    } finally {
      await off.close();
    }
  });

  it('§3.3.2.3.4 outbound topic aliases are per connection: a reconnect (and the resend of an unacknowledged message) starts afresh', async () => {
    const props = { topicAliasMaximum: 4, sessionExpiryInterval: 60 };
    const first = await raw('alias-again', { properties: props, clean: true });
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'again/#', qos: 1 }] });
    await first.next('suback');
    await h.core.publish({ topic: 'again/topic', payload: 'a', qos: 1 });
    await h.core.publish({ topic: 'again/topic', payload: 'b', qos: 1 });
    const [a, b] = [await first.next('publish'), await first.next('publish')];
    expect([aliasOf(a), aliasOf(b)]).toEqual([
      { topic: 'again/topic', alias: 1 },
      { topic: '', alias: 1 },
    ]);
    first.send({ cmd: 'puback', messageId: a.messageId ?? 0 }); // b stays unacknowledged
    await first.ping();
    first.destroy();
    await first.whenClosed();
    const second = await raw('alias-again', { properties: props, clean: false });
    const resent = await second.next('publish');
    expect(resent).toMatchObject({ dup: true, messageId: b.messageId, topic: 'again/topic' });
    expect(aliasOf(resent)).toEqual({ topic: 'again/topic', alias: 1 });
    await h.core.publish({ topic: 'again/topic', payload: 'c', qos: 0 });
    expect(aliasOf(await second.next('publish'))).toEqual({ topic: '', alias: 1 });
  });

  it("[MQTT-3.1.2-24] an alias is set only by a PUBLISH that fits the client's Maximum Packet Size", async () => {
    const topic = 'fits/just/so';
    // The plain PUBLISH (QoS 0, no properties) takes exactly the client's maximum; with an alias it would not.
    const size = 2 + 2 + topic.length + 1 + 4;
    const c = await raw('alias-fit', { properties: { topicAliasMaximum: 3, maximumPacketSize: size } });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fits/#', qos: 0 }] });
    await c.next('suback');
    await h.core.publish({ topic, payload: 'full', qos: 0 });
    await h.core.publish({ topic, payload: 'more', qos: 0 });
    await h.core.publish({ topic: 'fits/x/y/z', payload: 'a', qos: 0 });
    await h.core.publish({ topic: 'fits/x/y/z', payload: 'b', qos: 0 });
    const got = [];
    for (let i = 0; i < 4; i++) got.push(aliasOf(await c.next('publish')));
    expect(got).toEqual([
      { topic, alias: undefined },
      { topic, alias: undefined },
      { topic: 'fits/x/y/z', alias: 1 },
      { topic: '', alias: 1 },
    ]);
  });

  // ---- Response Information, request / response ---------------------------------------------------------------

  it('§3.1.2.11.7, §3.2.2.3.15 Response Information in CONNACK only when asked for (1) and the embedder has one', async () => {
    const info = async (clientId: string, properties?: mqtt.IClientOptions['properties']) =>
      (await connectFor(clientId, properties ? { properties } : {})).connack.properties?.responseInformation;
    expect(await info('info-asked', { requestResponseInformation: true })).toBe('replies/info-asked');
    // [MQTT-3.1.2-28]: 0 (or absent, its default) means none.
    expect(await info('info-not-asked', { requestResponseInformation: false })).toBeUndefined();
    expect(await info('info-default')).toBeUndefined();
    // The embedder has none for this session.
    expect(await info('noinfo-asked', { requestResponseInformation: true })).toBeUndefined();
    const bare = await startCore({ hooks: { responseInformation: undefined } });
    try {
      const c = await RawClient.open(bare.port, 5);
      c.send(connectWith(5, { clientId: 'no-hook', properties: { requestResponseInformation: true } }));
      expect((await c.next('connack')).properties?.responseInformation).toBeUndefined();
      c.destroy();
    } finally {
      await bare.close();
    }
  });

  it('§4.10 request / response: Response Topic and Correlation Data go from requester to responder unaltered, and back', async () => {
    const { client: requester, connack } = await connectFor('requester', {
      properties: { requestResponseInformation: true },
    });
    const base = connack.properties?.responseInformation ?? '';
    await requester.subscribeAsync(`${base}/#`, { qos: 1 });
    const responder = await connect('responder');
    await responder.subscribeAsync('service/echo', { qos: 1 });
    responder.on('message', (_topic, payload, packet) => {
      const { responseTopic, correlationData } = packet.properties ?? {};
      if (responseTopic)
        responder.publish(responseTopic, `echo:${payload.toString()}`, {
          qos: 1,
          properties: { correlationData },
        });
    });
    const answer = new Promise<IPublishPacket>((resolve) =>
      requester.once('message', (_t, _p, packet) => resolve(packet)),
    );
    const correlationData = Buffer.from([0, 1, 2, 0xff]);
    await requester.publishAsync('service/echo', 'ping', {
      qos: 1,
      properties: { responseTopic: `${base}/echo`, correlationData },
    });
    const reply = await answer;
    expect(reply.topic).toBe('replies/requester/echo');
    expect(reply.payload.toString()).toBe('echo:ping');
    expect(reply.properties?.correlationData).toEqual(correlationData);
  });
});
