import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { RawClient, startCore, type Harness } from './test-harness.ts';

const publishes = (c: RawClient) => c.packets.filter((p): p is IPublishPacket => p.cmd === 'publish');
const payloads = (c: RawClient) => publishes(c).map((p) => p.payload.toString());

/** Flow control, queues, expiry, topic aliases and DUP resends (§4.9, §3.3.2.3.3, §3.3.2.3.4, §4.4). */
describe('broker core: flow control and queues', () => {
  let h: Harness;
  let clock = Date.now();
  beforeAll(async () => {
    h = await startCore({ limits: { maxQueuedMessages: 3 }, now: () => clock });
  });
  afterAll(async () => h?.close());

  it('[MQTT-3.3.4-7] §3.3.4 more QoS 2 PUBLISHes unacknowledged than Receive Maximum: DISCONNECT 0x93', async () => {
    const c = await RawClient.connected(h.port, 'flood-2', { version: 5 });
    for (let id = 1; id <= 10; id++)
      c.send({
        cmd: 'publish',
        topic: 'rm/t',
        payload: 'x',
        qos: 2,
        messageId: id,
        retain: false,
        dup: false,
      });
    for (let i = 0; i < 10; i++) await c.next('pubrec');
    c.send({ cmd: 'publish', topic: 'rm/t', payload: 'x', qos: 2, messageId: 11, retain: false, dup: false });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x93 });
    await c.whenClosed();
  });

  it('[MQTT-4.3.3-9] a QoS 2 PUBLISH sent again before PUBREL is acknowledged, not delivered twice; §4.3.3 PUBREL', async () => {
    const sub = await RawClient.connected(h.port, 'q2-sub', { version: 4 });
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/t', qos: 0 }] });
    await sub.next('suback');
    const c = await RawClient.connected(h.port, 'q2-pub', { version: 5 });
    const publish = {
      cmd: 'publish',
      topic: 'q2/t',
      payload: 'once',
      qos: 2,
      messageId: 5,
      retain: false,
    } as const;
    c.send({ ...publish, dup: false });
    expect(await c.next('pubrec')).toMatchObject({ messageId: 5 });
    c.send({ ...publish, dup: true });
    expect(await c.next('pubrec')).toMatchObject({ messageId: 5 });
    c.send({ cmd: 'pubrel', messageId: 5 });
    expect(await c.next('pubcomp')).toMatchObject({ messageId: 5 });
    c.send({ cmd: 'pubrel', messageId: 5 });
    expect(await c.next('pubcomp')).toMatchObject({ messageId: 5, reasonCode: 0x92 });
    await sub.ping();
    expect(payloads(sub)).toEqual(['once']);
    c.destroy();
    sub.destroy();
  });

  it('[MQTT-3.3.4-9] never more unacknowledged QoS 1 messages to a client than its Receive Maximum', async () => {
    const c = await RawClient.connected(h.port, 'window', { version: 5, properties: { receiveMaximum: 2 } });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'w/t', qos: 1 }] });
    await c.next('suback');
    for (let i = 0; i < 3; i++) await h.core.publish({ topic: 'w/t', payload: String(i) });
    await c.ping();
    expect(payloads(c)).toEqual(['0', '1']);
    const first = publishes(c)[0];
    c.send({ cmd: 'puback', messageId: first?.messageId ?? 0 });
    await c.ping();
    expect(payloads(c)).toEqual(['0', '1', '2']);
    c.destroy();
  });

  it('a full queue drops QoS 0 first, a QoS 1 message takes the place of the oldest QoS 0; drops counted', async () => {
    const c = await RawClient.connected(h.port, 'bounded', { version: 5, properties: { receiveMaximum: 1 } });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'qb/#', qos: 1 }] });
    await c.next('suback');
    const send = (payload: string, qos: 0 | 1) => h.core.publish({ topic: 'qb/t', payload, qos });
    await send('m1', 1); // in flight
    await send('m2', 1); // queued: [m2]
    await send('m3', 1); // [m2, m3]
    await send('z1', 0); // [m2, m3, z1]
    await send('z2', 0); // full: dropped
    await send('m4', 1); // full: z1 gives way: [m2, m3, m4]
    await send('m5', 1); // full of QoS 1: dropped
    await c.ping();
    expect(payloads(c)).toEqual(['m1']);
    expect(h.core.queuedBytes(h.sessions.get('bounded')?.conn as never)).toBe(6);
    for (let i = 0; i < 4; i++) {
      const last = publishes(c).at(-1);
      c.send({ cmd: 'puback', messageId: last?.messageId ?? 0 });
      await c.ping();
    }
    expect(payloads(c)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(h.core.stats().dropsByClient.bounded).toBe(3);
    expect(h.core.stats().droppedQueueFull).toBeGreaterThanOrEqual(3);
    c.destroy();
  });

  it('[MQTT-3.1.2-24, 3.1.2-25] a message larger than the client Maximum Packet Size is dropped for it', async () => {
    const c = await RawClient.connected(h.port, 'small', {
      version: 5,
      properties: { maximumPacketSize: 100 },
    });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mp/t', qos: 1 }] });
    await c.next('suback');
    const before = h.core.stats().droppedTooLarge;
    await h.core.publish({ topic: 'mp/t', payload: Buffer.alloc(200, 1) });
    await h.core.publish({ topic: 'mp/t', payload: 'fits' });
    await c.ping();
    expect(payloads(c)).toEqual(['fits']);
    expect(h.core.stats().droppedTooLarge).toBe(before + 1);
    c.destroy();
  });

  it('[MQTT-4.4.0-1] unacknowledged messages are sent again with DUP and the same packet id on reconnect', async () => {
    const opts = { version: 5 as const, clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await RawClient.connected(h.port, 'resend', opts);
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rs/t', qos: 2 }] });
    await first.next('suback');
    await h.core.publish({ topic: 'rs/t', payload: 'p1', qos: 1 });
    const sent = await first.next('publish');
    expect(sent.dup).toBe(false);
    first.destroy();
    await first.whenClosed();
    const again = await RawClient.connected(h.port, 'resend', opts);
    const resent = await again.next('publish');
    expect(resent).toMatchObject({ dup: true, messageId: sent.messageId, topic: 'rs/t' });
    again.send({ cmd: 'puback', messageId: resent.messageId });
    await again.ping();
    again.destroy();
  });

  it('[MQTT-3.3.2-5, 3.3.2-6] message expiry: the interval sent is what remains; an expired message is dropped', async () => {
    const opts = { version: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await RawClient.connected(h.port, 'expiry', opts);
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ex/#', qos: 1 }] });
    await first.next('suback');
    first.send({ cmd: 'disconnect', reasonCode: 0 });
    await first.whenClosed();
    await h.core.publish({ topic: 'ex/long', payload: 'long', properties: { messageExpiryInterval: 30 } });
    await h.core.publish({ topic: 'ex/short', payload: 'short', properties: { messageExpiryInterval: 2 } });
    const before = h.core.stats().droppedExpired;
    clock += 10_000;
    const again = await RawClient.connected(h.port, 'expiry', opts);
    const got = await again.next('publish');
    expect(got.topic).toBe('ex/long');
    expect(got.properties?.messageExpiryInterval).toBe(20);
    await again.ping();
    expect(publishes(again)).toHaveLength(0);
    expect(h.core.stats().droppedExpired).toBe(before + 1);
    again.destroy();
  });

  it('§3.3.2.3.4 topic aliases inbound; [MQTT-3.3.2-9] beyond the maximum: DISCONNECT 0x94', async () => {
    const sub = await RawClient.connected(h.port, 'alias-sub', { version: 4 });
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ta/#', qos: 0 }] });
    await sub.next('suback');
    const c = await RawClient.connected(h.port, 'alias', { version: 5 });
    const base = { cmd: 'publish', qos: 0, retain: false, dup: false } as const;
    c.send({ ...base, topic: 'ta/long/name', payload: 'a', properties: { topicAlias: 1 } });
    c.send({ ...base, topic: '', payload: 'b', properties: { topicAlias: 1 } });
    await c.ping();
    await sub.ping();
    expect(publishes(sub).map((p) => `${p.topic}=${p.payload.toString()}`)).toEqual([
      'ta/long/name=a',
      'ta/long/name=b',
    ]);
    c.send({ ...base, topic: '', payload: 'c', properties: { topicAlias: 3 } });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 }); // an alias never set
    const d = await RawClient.connected(h.port, 'alias-2', { version: 5 });
    d.send({ ...base, topic: 'ta/x', payload: 'd', properties: { topicAlias: 6 } });
    expect(await d.next('disconnect')).toMatchObject({ reasonCode: 0x94 });
    sub.destroy();
  });

  it('a flood of QoS 0 PUBLISHes in one write, then QoS 1: handled in a loop, PUBACK arrives', async () => {
    const sub = await RawClient.connected(h.port, 'flood-sub', { version: 4 });
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fl/#', qos: 0 }] });
    await sub.next('suback');
    const c = await RawClient.connected(h.port, 'flood', { version: 4 });
    const one = mqttPacket.generate({
      cmd: 'publish',
      topic: 'fl/t',
      payload: 'x',
      qos: 0,
      retain: false,
      dup: false,
    });
    const last = mqttPacket.generate({
      cmd: 'publish',
      topic: 'fl/t',
      payload: 'end',
      qos: 1,
      messageId: 9,
      retain: false,
      dup: false,
    });
    c.send(Buffer.concat([...Array<Buffer>(20_000).fill(one), last]));
    expect(await c.next('puback', 10_000)).toMatchObject({ messageId: 9 });
    await sub.ping();
    expect(publishes(sub).length).toBeGreaterThan(0);
    c.destroy();
    sub.destroy();
  });
});

/** Will messages (§3.1.2.5, §3.1.3.2) with a controlled clock for the will delay. */
describe('broker core: will messages', () => {
  let h: Harness;
  let clock = Date.now();
  let watcher: RawClient;
  beforeAll(async () => {
    h = await startCore({ now: () => clock });
    watcher = await RawClient.connected(h.port, 'watcher', { version: 5 });
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'will/#', qos: 1 }] });
    await watcher.next('suback');
  });
  afterAll(async () => h?.close());
  const will = (topic: string, delay?: number) => ({
    topic,
    payload: Buffer.from(`gone:${topic}`),
    qos: 1,
    retain: false,
    ...(delay !== undefined ? { properties: { willDelayInterval: delay } } : {}),
  });

  it('[MQTT-3.1.2-8] the will is published when the connection is lost (3.1.1)', async () => {
    const c = await RawClient.connected(h.port, 'w-lost', { version: 4, will: will('will/lost') });
    c.destroy();
    expect((await watcher.next('publish')).topic).toBe('will/lost');
    expect(h.disconnects.find((d) => d.clientId === 'w-lost')?.info.will?.topic).toBe('will/lost');
  });

  it('[MQTT-3.14.4-3, 3.1.2-10 (3.1.1)] no will after a normal DISCONNECT', async () => {
    const c = await RawClient.connected(h.port, 'w-clean', { version: 5, will: will('will/clean') });
    c.send({ cmd: 'disconnect', reasonCode: 0 });
    await c.whenClosed();
    await h.core.publish({ topic: 'will/marker', payload: 'm' });
    expect((await watcher.next('publish')).topic).toBe('will/marker');
  });

  it('§3.14.2.1 DISCONNECT 0x04 (with will) publishes the will', async () => {
    const c = await RawClient.connected(h.port, 'w-04', { version: 5, will: will('will/04') });
    c.send({ cmd: 'disconnect', reasonCode: 0x04 });
    expect((await watcher.next('publish')).topic).toBe('will/04');
  });

  it('[MQTT-3.1.3-9] a will delay: published after it, not at all when the client is back in time', async () => {
    const opts = { version: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
    const late = await RawClient.connected(h.port, 'w-delay', { ...opts, will: will('will/delayed', 30) });
    late.destroy();
    await late.whenClosed();
    await h.core.publish({ topic: 'will/marker', payload: 'before' });
    expect((await watcher.next('publish')).topic).toBe('will/marker'); // not yet
    clock += 31_000;
    expect((await watcher.next('publish')).topic).toBe('will/delayed');

    const back = await RawClient.connected(h.port, 'w-back', { ...opts, will: will('will/back', 30) });
    back.destroy();
    await back.whenClosed();
    const again = await RawClient.connected(h.port, 'w-back', opts);
    clock += 31_000;
    await h.core.publish({ topic: 'will/marker', payload: 'after' });
    expect((await watcher.next('publish')).payload.toString()).toBe('after');
    again.destroy();
  });

  it('a PUBLISH and a DISCONNECT written just before the socket ends are still handled: no will', async () => {
    watcher.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'slow/w', qos: 0 }] });
    await watcher.next('suback');
    const c = await RawClient.connected(h.port, 'w-quick', { version: 4, will: will('will/quick') });
    // The publish hook answers 'slow/' topics later: the DISCONNECT waits behind it while the socket ends.
    c.send({ cmd: 'publish', topic: 'slow/w', payload: 'last words', qos: 0, retain: false, dup: false });
    c.send({ cmd: 'disconnect' });
    c.end();
    expect((await watcher.next('publish')).topic).toBe('slow/w');
    await h.core.publish({ topic: 'will/marker', payload: 'm3' });
    expect((await watcher.next('publish')).payload.toString()).toBe('m3');
    expect(h.disconnects.find((d) => d.clientId === 'w-quick')?.info).toMatchObject({
      reason: 'client disconnected',
      will: null,
    });
  });

  it('the will passes the publish hook: a will on a refused topic is not published', async () => {
    const c = await RawClient.connected(h.port, 'w-refused', { version: 4, will: will('forbidden/will') });
    c.destroy();
    await c.whenClosed();
    await h.core.publish({ topic: 'will/marker', payload: 'm2' });
    expect((await watcher.next('publish')).payload.toString()).toBe('m2');
  });
});

export type { Packet };
