import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/** Malformed packets, protocol errors and limits: clear reason codes, never a crash (§4.13). */
describe('broker core: malformed packets, protocol errors and limits', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startCore({ limits: { maxPacketBytes: 1024, maxConnectBytes: 512 } });
  });
  afterAll(async () => h?.close());

  it('§4.13 a PUBLISH announcing more than the limit: DISCONNECT 0x95 on MQTT 5 before the body is sent', async () => {
    const c = await RawClient.connected(h.port, 'big-5', { version: 5 });
    c.send(Buffer.from([0x30, ...varint(10_000_000)])); // the fixed header only: 10 MB announced
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x95 });
    await c.whenClosed();
    expect(h.core.stats().packetsTooLarge).toBeGreaterThanOrEqual(1);
  });

  it('a PUBLISH over the limit closes a 3.1.1 connection; a CONNECT over its own limit too', async () => {
    const c = await RawClient.connected(h.port, 'big-3', { version: 4 });
    c.send(Buffer.from([0x30, ...varint(2000)]));
    await c.whenClosed();
    const d = await RawClient.open(h.port, 4);
    d.send(Buffer.from([0x10, ...varint(600)]));
    await d.whenClosed();
    expect(d.packets).toHaveLength(0);
  });

  it('§1.5.5, §2.1.4 a remaining length longer than 4 bytes is malformed: DISCONNECT 0x81', async () => {
    const c = await RawClient.connected(h.port, 'varint', { version: 5 });
    c.send(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]));
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x81 });
    await c.whenClosed();
  });

  it('[MQTT-2.1.3-1] (3.1.1: 2.2.2-1, 2.2.2-2) reserved flag bits set: malformed, DISCONNECT 0x81 on MQTT 5, close on 3.1.1', async () => {
    const c = await RawClient.connected(h.port, 'flags-5', { version: 5 });
    c.send(Buffer.from([0x83, 0x02, 0x00, 0x01])); // SUBSCRIBE must have flags 0010
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x81 });
    const d = await RawClient.connected(h.port, 'flags-3', { version: 4 });
    d.send(Buffer.from([0xc3, 0x00])); // PINGREQ with flags
    await d.whenClosed();
    expect(h.errors.some((e) => e.startsWith('malformed'))).toBe(true);
  });

  it('§2.2.2.2 a property included twice is a protocol error: DISCONNECT 0x82', async () => {
    const c = await RawClient.connected(h.port, 'dup-prop', { version: 5 });
    // PUBLISH QoS 0, topic "t", properties: payload format indicator (0x01) twice, payload "x".
    c.send(Buffer.from([0x30, 0x09, 0x00, 0x01, 0x74, 0x04, 0x01, 0x01, 0x01, 0x01, 0x78]));
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    await c.whenClosed();
  });

  it('[MQTT-3.3.2-2] a topic name with a wildcard: DISCONNECT 0x90; [MQTT-2.2.1-3] QoS 1 without id: 0x82', async () => {
    const c = await RawClient.connected(h.port, 'wild-pub', { version: 5 });
    c.send({ cmd: 'publish', topic: 'a/+', payload: 'x', qos: 0, retain: false, dup: false });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x90 });
    const d = await RawClient.connected(h.port, 'no-id', { version: 5 });
    d.send(Buffer.from([0x32, 0x07, 0x00, 0x01, 0x74, 0x00, 0x00, 0x00, 0x78])); // QoS 1, packet id 0
    expect(await d.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
  });

  it('[MQTT-3.3.4-6] a client PUBLISH with a subscription identifier is a protocol error', async () => {
    const c = await RawClient.connected(h.port, 'sid-pub', { version: 5 });
    c.send({
      cmd: 'publish',
      topic: 't',
      payload: 'x',
      qos: 0,
      retain: false,
      dup: false,
      properties: { subscriptionIdentifier: 4 },
    });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
  });

  it('§3.14.2.2.2 a DISCONNECT raising a session expiry that was 0 is a protocol error', async () => {
    const c = await RawClient.connected(h.port, 'exp-raise', { version: 5 });
    c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
  });

  it('a server packet sent by a client (SUBACK) is a protocol error; garbage never crashes the core', async () => {
    const c = await RawClient.connected(h.port, 'wrong-way', { version: 5 });
    c.send({ cmd: 'suback', messageId: 1, granted: [0] });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    for (let i = 0; i < 20; i++) {
      const g = await RawClient.connected(h.port, `garbage-${i}`, { version: i % 2 ? 5 : 4 });
      const bytes = Buffer.from(Array.from({ length: 40 }, (_, k) => (k * 37 + i * 101) % 256));
      bytes[0] = 0x30 | (i % 16); // a PUBLISH header with arbitrary flags, then noise
      bytes[1] = 38;
      g.send(bytes);
      await g.whenClosed().catch(() => g.destroy());
    }
    const ok = await RawClient.connected(h.port, 'still-fine', { version: 5 });
    await ok.ping();
    ok.destroy();
  });

  it('close(conn, 0x97) sends DISCONNECT quota exceeded; shutdown sends 0x8B', async () => {
    const c = await RawClient.connected(h.port, 'quota', { version: 5 });
    const session = h.sessions.get('quota');
    if (!session) throw new Error('no session');
    h.core.close(session.conn, 0x97);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x97 });
    expect(() => h.core.close({ ...session.conn }, 0x97)).toThrow(/conn/);
  });
});

describe('broker core: enhanced authentication (§4.12)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startCore({
      hooks: {
        auth: ({ clientId }, step) => {
          if (step.method !== 'echo') return Promise.resolve({ fail: 0x8c });
          if (step.phase === 'connect' || step.phase === 'reauth')
            return Promise.resolve({ continue: Buffer.from(`challenge:${clientId ?? ''}`) });
          return Promise.resolve(
            step.data?.toString() === `answer:${clientId ?? ''}` ? { done: true } : { fail: 0x87 },
          );
        },
      },
    });
  });
  afterAll(async () => h?.close());

  const start = async (clientId: string, method = 'echo') => {
    const c = await RawClient.open(h.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId,
      clean: true,
      keepalive: 30,
      properties: { authenticationMethod: method },
    });
    return c;
  };

  it('[MQTT-4.12.0-2, 4.12.0-3, 4.12.0-5] a challenge and answer, then CONNACK with the method; re-authentication', async () => {
    const c = await start('auth-ok');
    const challenge = await c.next('auth');
    expect(challenge).toMatchObject({ reasonCode: 0x18, properties: { authenticationMethod: 'echo' } });
    expect(challenge.properties?.authenticationData?.toString()).toBe('challenge:auth-ok');
    c.send({
      cmd: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'echo', authenticationData: Buffer.from('answer:auth-ok') },
    });
    const connack = await c.next('connack');
    expect(connack).toMatchObject({ reasonCode: 0, properties: { authenticationMethod: 'echo' } });
    // [MQTT-4.12.1-1] re-authentication: AUTH 0x19, challenge, answer, AUTH 0x00.
    c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'echo' } });
    expect(await c.next('auth')).toMatchObject({ reasonCode: 0x18 });
    c.send({
      cmd: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'echo', authenticationData: Buffer.from('answer:auth-ok') },
    });
    expect(await c.next('auth')).toMatchObject({ reasonCode: 0x00 });
    await c.ping();
    c.destroy();
  });

  it('[MQTT-4.12.0-4] a wrong answer: CONNACK with the hook reason code, closed', async () => {
    const c = await start('auth-bad');
    await c.next('auth');
    c.send({
      cmd: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'echo', authenticationData: Buffer.from('nope') },
    });
    expect(await c.next('connack')).toMatchObject({ reasonCode: 0x87 });
    await c.whenClosed();
  });

  it('[MQTT-4.12.0-1] an unknown method: CONNACK 0x8C; [MQTT-4.12.0-7] AUTH without a method: 0x82', async () => {
    const c = await start('auth-method', 'other');
    expect(await c.next('connack')).toMatchObject({ reasonCode: 0x8c });
    await c.whenClosed();
    const d = await RawClient.connected(h.port, 'no-method', { version: 5 });
    d.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'echo' } });
    expect(await d.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
  });

  it('without an auth hook, a CONNECT with an authentication method is refused with 0x8C', async () => {
    const plain = await startCore();
    const c = await RawClient.open(plain.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'x',
      clean: true,
      keepalive: 30,
      properties: { authenticationMethod: 'echo' },
    });
    expect(await c.next('connack')).toMatchObject({ reasonCode: 0x8c });
    await plain.close();
  });
});

describe('broker core: hooks that throw', () => {
  it('a throwing hook refuses or withholds for that client only; the core and other clients go on', async () => {
    const h = await startCore({
      hooks: {
        subscribe: (_session, { filter }) => {
          if (filter.startsWith('boom/')) throw new Error('subscribe hook bug');
          return undefined;
        },
        publish: (_session, packet, done) => {
          if (packet.topic.startsWith('crash/')) throw new Error('publish hook bug');
          done(null);
        },
        deliver: (session, packet) => {
          if (session.clientId === 'bad-sub') throw new Error('deliver hook bug');
          return packet;
        },
      },
    });
    const bad = await RawClient.connected(h.port, 'bad-sub', { version: 5 });
    const good = await RawClient.connected(h.port, 'good-sub', { version: 5 });
    for (const c of [bad, good]) {
      c.send({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: [
          { topic: 'dx/#', qos: 1 },
          { topic: 'boom/x', qos: 0 },
        ],
      });
      expect((await c.next('suback')).granted).toEqual([1, 0x87]);
    }
    good.send({
      cmd: 'publish',
      topic: 'crash/x',
      payload: 'x',
      qos: 1,
      messageId: 4,
      retain: false,
      dup: false,
    });
    expect(await good.next('puback')).toMatchObject({ messageId: 4, reasonCode: 0x87 });
    await h.core.publish({ topic: 'dx/y', payload: 'hello' });
    expect((await good.next('publish')).payload.toString()).toBe('hello');
    await bad.ping();
    expect(bad.packets.filter((p) => p.cmd === 'publish')).toHaveLength(0);
    expect(h.errors).toEqual(
      expect.arrayContaining(['subscribe hook bug', 'publish hook bug', 'deliver hook bug']),
    );
    await h.close();
  });
});

describe('broker core: share group scopes', () => {
  it('§4.8.2 groups of the same name in different scopes (shareScope) each get every message once', async () => {
    const h = await startCore({ hooks: { shareScope: (session) => session.clientId.slice(0, 1) } });
    const clients = await Promise.all(
      ['a1', 'a2', 'b1'].map((id) => RawClient.connected(h.port, id, { version: 5 })),
    );
    for (const c of clients) {
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/sc/t', qos: 0 }] });
      await c.next('suback');
    }
    await h.core.publish({ topic: 'sc/t', payload: 'one', qos: 0 });
    await h.core.publish({ topic: 'sc/t', payload: 'two', qos: 0 });
    await Promise.all(clients.map((c) => c.ping()));
    const counts = clients.map((c) => c.packets.filter((p) => p.cmd === 'publish').length);
    expect(counts).toEqual([1, 1, 2]);
    await h.close();
  });
});

describe('broker core: shutdown', () => {
  it('§3.14.2.1 shutdown sends DISCONNECT 0x8B to MQTT 5 clients and closes 3.1.1 ones', async () => {
    const h = await startCore();
    const v5 = await RawClient.connected(h.port, 'bye-5', { version: 5 });
    const v3 = await RawClient.connected(h.port, 'bye-3', { version: 4 });
    await h.close();
    expect(await v5.next('disconnect')).toMatchObject({ reasonCode: 0x8b });
    await v5.whenClosed();
    await v3.whenClosed();
    expect(h.core.stats().connections).toBe(0);
  });
});
