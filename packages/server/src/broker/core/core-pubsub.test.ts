import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startCore, type Harness } from './test-harness.ts';

const run = promisify(execFile);

/** Waits for the next message on a mqtt.js client matching the topic. */
function nextMessage(client: MqttClient, topic?: string) {
  return new Promise<{ topic: string; payload: Buffer; packet: mqtt.IPublishPacket }>((resolve) => {
    const on = (t: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
      if (topic !== undefined && t !== topic) return;
      client.off('message', on);
      resolve({ topic: t, payload, packet });
    };
    client.on('message', on);
  });
}

/** PUBLISH, SUBSCRIBE and delivery with real clients: mqtt.js (3.1.1 and 5), mosquitto and raw packets. */
describe('broker core: publish and subscribe', () => {
  let h: Harness;
  const clients: MqttClient[] = [];
  const connect = async (clientId: string, protocolVersion: 4 | 5, extra: mqtt.IClientOptions = {}) => {
    const client = await mqtt.connectAsync(h.url, {
      clientId,
      protocolVersion,
      reconnectPeriod: 0,
      ...extra,
    });
    clients.push(client);
    return client;
  };
  beforeAll(async () => {
    h = await startCore();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(async () => h?.close());

  for (const version of [4, 5] as const)
    it(`QoS 0, 1 and 2 both ways with mqtt.js (protocol ${version}) [MQTT-4.3.1-1, 4.3.2-1, 4.3.3-1]`, async () => {
      const sub = await connect(`sub-${version}`, version);
      const pub = await connect(`pub-${version}`, version);
      await sub.subscribeAsync({
        [`q/${version}/0`]: { qos: 0 },
        [`q/${version}/1`]: { qos: 1 },
        [`q/${version}/2`]: { qos: 2 },
      });
      for (const qos of [0, 1, 2] as const) {
        const got = nextMessage(sub, `q/${version}/${qos}`);
        await pub.publishAsync(`q/${version}/${qos}`, `m${qos}`, { qos });
        const { payload, packet } = await got;
        expect(payload.toString()).toBe(`m${qos}`);
        expect(packet.qos).toBe(qos);
        if (qos > 0) expect(packet.messageId).toBeGreaterThan(0);
      }
      expect(h.core.stats().messagesReceived).toBeGreaterThanOrEqual(3);
    });

  it('[MQTT-3.3.4-2 (3.1.1 3.3.5-1)] delivers at the lower of the publish and subscription QoS', async () => {
    const sub = await connect('downgrade', 5);
    await sub.subscribeAsync('dg/#', { qos: 1 });
    const pub = await connect('dg-pub', 5);
    const got = nextMessage(sub);
    await pub.publishAsync('dg/x', 'x', { qos: 2 });
    expect((await got).packet.qos).toBe(1);
  });

  it('§3.9.3 a refused filter: SUBACK 0x87 on MQTT 5 and 0x80 on 3.1.1 (mqtt.js granted codes)', async () => {
    const grantedOf = (client: MqttClient) =>
      client.subscribeAsync({ 'forbidden/x': { qos: 1 }, 'fine/x': { qos: 1 } }).then(
        (granted) => granted.map((g) => g.qos as number),
        // mqtt.js rejects a SUBACK with a failure code; the packet is on the error.
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
      );
    expect(await grantedOf(await connect('deny-5', 5))).toEqual([0x87, 1]);
    expect(await grantedOf(await connect('deny-3', 4))).toEqual([0x80, 1]);
  });

  it('§3.9.3 mosquitto_sub -V mqttv5 sees 0x87 (135) for a refused filter, -V mqttv311 sees 0x80 (128)', async () => {
    const sub = (version: string) =>
      run(
        'mosquitto_sub',
        [
          '-d',
          '-V',
          version,
          '-h',
          '127.0.0.1',
          '-p',
          String(h.port),
          '-t',
          'forbidden/y',
          '-C',
          '1',
          '-W',
          '3',
        ],
        {
          timeout: 5000,
        },
      ).then(
        (r) => r.stdout + r.stderr,
        (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
      );
    expect(await sub('mqttv5')).toMatch(/Subscribed \(mid: 1\): 135/);
    expect(await sub('mqttv311')).toMatch(/Subscribed \(mid: 1\): 128/);
  });

  it('mosquitto_pub (v5 and v3.1.1) reaches mosquitto_sub with user properties and QoS 1', async () => {
    const sub = run(
      'mosquitto_sub',
      [
        '-V',
        'mqttv5',
        '-h',
        '127.0.0.1',
        '-p',
        String(h.port),
        '-t',
        'mosq/t',
        '-C',
        '2',
        '-W',
        '5',
        '-q',
        '1',
        '-F',
        '%p|%P',
      ],
      { timeout: 8000 },
    );
    await h.waitSubscribed('mosq/t');
    await run('mosquitto_pub', [
      '-V',
      'mqttv5',
      '-p',
      String(h.port),
      '-t',
      'mosq/t',
      '-m',
      'five',
      '-q',
      '1',
      '-D',
      'publish',
      'user-property',
      'k',
      'v',
    ]);
    await run('mosquitto_pub', [
      '-V',
      'mqttv311',
      '-p',
      String(h.port),
      '-t',
      'mosq/t',
      '-m',
      'three',
      '-q',
      '1',
    ]);
    const { stdout } = await sub;
    expect(stdout.trim().split('\n')).toEqual(['five|k:v', 'three|']);
  });

  it('§4.1 a persistent 3.1.1 session queues QoS 1 messages while offline; mqtt.js gets them on reconnect', async () => {
    const opts = { clean: false, clientId: 'offline-3' };
    const first = await mqtt.connectAsync(h.url, { ...opts, protocolVersion: 4, reconnectPeriod: 0 });
    await first.subscribeAsync('off/#', { qos: 1 });
    await first.endAsync();
    for (const n of ['1', '2', '3']) await h.core.publish({ topic: 'off/t', payload: n, qos: 1 });
    await h.core.publish({ topic: 'off/t', payload: 'qos0', qos: 0 }); // not kept for an offline session
    // Listening before the connection is made: the queued messages follow CONNACK at once.
    const again = mqtt.connect(h.url, { ...opts, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(again);
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      again.on('message', (_t, p) => {
        got.push(p.toString());
        if (got.length === 3) resolve();
      }),
    );
    await all;
    expect(got).toEqual(['1', '2', '3']);
  });

  it('[MQTT-3.3.5-2] a refused PUBLISH closes a 3.1.1 connection', async () => {
    const c = await RawClient.connected(h.port, 'bad-pub-3', { version: 4 });
    c.send({
      cmd: 'publish',
      topic: 'forbidden/t',
      payload: 'x',
      qos: 1,
      messageId: 7,
      retain: false,
      dup: false,
    });
    await c.whenClosed();
    expect(c.packets.filter((p) => p.cmd === 'puback')).toHaveLength(0);
  });

  it('§3.4.2.1 MQTT 5: a refused QoS 1 PUBLISH gets PUBACK 0x87, QoS 2 PUBREC 0x87; QoS 0 DISCONNECT 0x87', async () => {
    const c = await RawClient.connected(h.port, 'bad-pub-5', { version: 5 });
    c.send({
      cmd: 'publish',
      topic: 'forbidden/t',
      payload: 'x',
      qos: 1,
      messageId: 7,
      retain: false,
      dup: false,
    });
    expect(await c.next('puback')).toMatchObject({ messageId: 7, reasonCode: 0x87 });
    c.send({
      cmd: 'publish',
      topic: 'forbidden/t',
      payload: 'x',
      qos: 2,
      messageId: 8,
      retain: false,
      dup: false,
    });
    expect(await c.next('pubrec')).toMatchObject({ messageId: 8, reasonCode: 0x87 });
    const errorsBefore = h.core.stats().protocolErrors;
    c.send({ cmd: 'publish', topic: 'forbidden/t', payload: 'x', qos: 0, retain: false, dup: false });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x87 });
    await c.whenClosed();
    // A refusal by the embedder is not the client breaking the protocol (bulwark_mqtt_protocol_errors_total).
    expect(h.core.stats().protocolErrors).toBe(errorsBefore);
  });

  it('an asynchronous publish hook keeps the order of what the client sent', async () => {
    const sub = await connect('order-sub', 5);
    await sub.subscribeAsync('slow/#', { qos: 1 });
    const pub = await connect('order-pub', 5);
    const seen: string[] = [];
    const done = new Promise<void>((resolve) =>
      sub.on('message', (_t, p) => {
        seen.push(p.toString());
        if (seen.length === 5) resolve();
      }),
    );
    for (let i = 0; i < 5; i++) pub.publish('slow/t', String(i), { qos: 1 });
    await done;
    expect(seen).toEqual(['0', '1', '2', '3', '4']);
  });

  it('the deliver hook withholds a message from a subscriber, or sends it a transformed copy', async () => {
    const sub = await connect('deliver-sub', 5);
    await sub.subscribeAsync(['withheld/#', 'upper/#']);
    const pub = await connect('deliver-pub', 5);
    const got = nextMessage(sub);
    await pub.publishAsync('withheld/a', 'secret', { qos: 1 });
    await pub.publishAsync('upper/a', 'shout', { qos: 1 });
    expect(await got).toMatchObject({ topic: 'upper/a' });
    expect((await got).payload.toString()).toBe('SHOUT');
  });

  it('[MQTT-3.3.1-5, 3.3.1-6, 3.3.1-8] (3.1.1) retained messages come from the hook store, with the retain flag', async () => {
    const pub = await connect('ret-pub', 4);
    await pub.publishAsync('ret/a', 'kept', { qos: 1, retain: true });
    const sub = await connect('ret-sub', 4);
    const got = nextMessage(sub);
    await sub.subscribeAsync('ret/+', { qos: 1 });
    const { payload, packet } = await got;
    expect(payload.toString()).toBe('kept');
    expect(packet.retain).toBe(true);
    // A live message to a subscription is sent with retain 0 [MQTT-3.3.1-9 (3.1.1)].
    const live = nextMessage(sub);
    await pub.publishAsync('ret/a', 'again', { qos: 1, retain: true });
    expect((await live).packet.retain).toBe(false);
    await pub.publishAsync('ret/a', '', { qos: 1, retain: true }); // removes it
    expect(h.retained.has('ret/a')).toBe(false);
  });

  it('[MQTT-3.3.1-9, 3.3.1-10, 3.3.1-11] retain handling 0, 1 and 2', async () => {
    h.retained.set('rh/a', { topic: 'rh/a', payload: Buffer.from('r'), qos: 0 });
    const c = await RawClient.connected(h.port, 'rh', { version: 5 });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rh/#', qos: 0, rh: 1 }] });
    await c.next('suback');
    expect((await c.next('publish')).topic).toBe('rh/a');
    // Again with 1: the subscription exists, nothing sent; with 0: sent again; with 2: never.
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rh/#', qos: 0, rh: 1 }] });
    await c.next('suback');
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'rh/+', qos: 0, rh: 2 }] });
    await c.next('suback');
    await c.ping();
    expect(c.packets.filter((p) => p.cmd === 'publish')).toHaveLength(0);
    c.send({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'rh/#', qos: 0, rh: 0 }] });
    await c.next('suback');
    expect((await c.next('publish')).retain).toBe(true);
    c.destroy();
  });

  it('[MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics', async () => {
    const sub = await connect('dollar-sub', 5);
    await sub.subscribeAsync(['#', '+/x', '$sys/x']);
    const got = nextMessage(sub);
    await h.core.publish({ topic: '$sys/x', payload: 'one' });
    const first = await got;
    expect(first.packet.payload.toString()).toBe('one');
    // Only one copy: '#' and '+/x' did not match.
    const again = nextMessage(sub);
    await h.core.publish({ topic: 'plain/x', payload: 'two' });
    expect((await again).topic).toBe('plain/x');
  });

  it('[MQTT-3.8.3-3] No Local: a client does not get its own messages back', async () => {
    const c = await connect('nolocal', 5);
    await c.subscribeAsync('nl/t', { qos: 0, nl: true });
    await c.subscribeAsync('nl/other', { qos: 0 });
    const got = nextMessage(c);
    await c.publishAsync('nl/t', 'mine', { qos: 1 });
    await c.publishAsync('nl/other', 'other', { qos: 1 });
    expect((await got).topic).toBe('nl/other');
  });

  it('[MQTT-3.3.1-12, 3.3.1-13] Retain As Published keeps the retain flag on live messages', async () => {
    const c = await connect('rap', 5);
    await c.subscribeAsync('rap/keep', { qos: 0, rap: true });
    await c.subscribeAsync('rap/drop', { qos: 0, rap: false });
    const keep = nextMessage(c, 'rap/keep');
    const drop = nextMessage(c, 'rap/drop');
    const pub = await connect('rap-pub', 5);
    await pub.publishAsync('rap/keep', 'k', { retain: true, qos: 1 });
    await pub.publishAsync('rap/drop', 'd', { retain: true, qos: 1 });
    expect((await keep).packet.retain).toBe(true);
    expect((await drop).packet.retain).toBe(false);
  });

  it('[MQTT-3.3.4-3] subscription identifiers are sent with matching messages, one per matching subscription', async () => {
    const c = await RawClient.connected(h.port, 'subids', { version: 5 });
    c.send({
      cmd: 'subscribe',
      messageId: 1,
      properties: { subscriptionIdentifier: 11 },
      subscriptions: [{ topic: 'sid/+', qos: 0 }],
    });
    await c.next('suback');
    c.send({
      cmd: 'subscribe',
      messageId: 2,
      properties: { subscriptionIdentifier: 22 },
      subscriptions: [{ topic: 'sid/#', qos: 1 }],
    });
    await c.next('suback');
    await h.core.publish({ topic: 'sid/a', payload: 'x' });
    const msg = await c.next('publish');
    expect(msg.qos).toBe(1);
    expect([msg.properties?.subscriptionIdentifier].flat().sort()).toEqual([11, 22]);
    c.send({
      cmd: 'subscribe',
      messageId: 3,
      properties: { subscriptionIdentifier: 0 },
      subscriptions: [{ topic: 'x', qos: 0 }],
    });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
  });

  it('§3.3.2.3 user properties, response topic, correlation data, content type and payload format pass through', async () => {
    const sub = await connect('props-sub', 5);
    await sub.subscribeAsync('props/t', { qos: 1 });
    const pub = await connect('props-pub', 5);
    const got = nextMessage(sub);
    await pub.publishAsync('props/t', 'body', {
      qos: 1,
      properties: {
        userProperties: { a: '1', b: ['2', '3'] },
        responseTopic: 'reply/here',
        correlationData: Buffer.from('corr'),
        contentType: 'text/plain',
        payloadFormatIndicator: true,
      },
    });
    const { packet } = await got;
    expect(packet.properties).toMatchObject({
      userProperties: { a: '1', b: ['2', '3'] },
      responseTopic: 'reply/here',
      contentType: 'text/plain',
      payloadFormatIndicator: true,
    });
    expect(Object.keys(packet.properties?.userProperties ?? {})).toEqual(['a', 'b']);
    expect(packet.properties?.correlationData?.toString()).toBe('corr');
  });

  it('§3.3.2.3.2 a payload announced as UTF-8 that is not gets PUBACK 0x99', async () => {
    const c = await RawClient.connected(h.port, 'pfi', { version: 5 });
    c.send({
      cmd: 'publish',
      topic: 'pfi/t',
      payload: Buffer.from([0xff, 0xfe]),
      qos: 1,
      messageId: 3,
      retain: false,
      dup: false,
      properties: { payloadFormatIndicator: true },
    });
    expect(await c.next('puback')).toMatchObject({ messageId: 3, reasonCode: 0x99 });
    c.destroy();
  });

  it('[MQTT-3.10.4-4, 3.10.4-5] §3.11.3 UNSUBACK: 0x00 for a held subscription, 0x11 for none', async () => {
    const c = await RawClient.connected(h.port, 'unsub', { version: 5 });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u/a', qos: 0 }] });
    await c.next('suback');
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['u/a', 'u/none'] });
    expect(await c.next('unsuback')).toMatchObject({ messageId: 2, granted: [0x00, 0x11] });
    await h.core.publish({ topic: 'u/a', payload: 'gone' });
    await c.ping();
    expect(c.packets.filter((p) => p.cmd === 'publish')).toHaveLength(0);
    c.destroy();
  });

  it('[MQTT-4.7.1-1, 4.7.1-2, 4.8.2-1, 4.8.2-2] malformed filters are refused: 0x8F on MQTT 5, 0x80 on 3.1.1', async () => {
    for (const version of [5, 4] as const) {
      const c = await RawClient.connected(h.port, `badfilter-${version}`, { version });
      const subscriptions = ['a/#/b', 'a+', '$share/g', '$share/g+/x'].map((topic) => ({
        topic,
        qos: 0 as const,
      }));
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions });
      expect((await c.next('suback')).granted).toEqual(Array(4).fill(version === 5 ? 0x8f : 0x80));
      c.destroy();
    }
  });

  it('§4.8.2 shared subscriptions: each message to one member, round robin; no retained messages', async () => {
    h.retained.set('sh/r', { topic: 'sh/r', payload: Buffer.from('r'), qos: 0 });
    const a = await RawClient.connected(h.port, 'share-a', { version: 5 });
    const b = await RawClient.connected(h.port, 'share-b', { version: 4 });
    for (const c of [a, b]) {
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/sh/+', qos: 1 }] });
      await c.next('suback');
    }
    for (let i = 0; i < 4; i++) await h.core.publish({ topic: 'sh/t', payload: String(i) });
    await a.ping();
    await b.ping();
    const got = (c: RawClient) =>
      c.packets.filter((p) => p.cmd === 'publish').map((p) => (p as { payload: Buffer }).payload.toString());
    expect(got(a).length).toBe(2);
    expect(got(b).length).toBe(2);
    expect([...got(a), ...got(b)].sort()).toEqual(['0', '1', '2', '3']);
    a.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: '$share/g/x', qos: 0, nl: true }] });
    expect(await a.next('disconnect')).toMatchObject({ reasonCode: 0x82 }); // [MQTT-3.8.3-4]
    b.destroy();
  });
});
