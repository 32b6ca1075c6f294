import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InProcessHub } from './cluster-bus.ts';
import { startCore, type Harness } from './test-harness.ts';

/**
 * Two broker nodes joined by a cluster bus (an in-process hub, as Redis will join nodes on several hosts):
 * what is published on one reaches the subscribers of the other, once, through that node's deliver hook; a
 * client connecting on one node takes its session over on the other [MQTT-3.1.4-3].
 */
describe('the cluster bus: two nodes', () => {
  let a: Harness;
  let b: Harness;
  const clients: MqttClient[] = [];
  const withheld: string[] = [];

  beforeAll(async () => {
    const hub = new InProcessHub();
    a = await startCore({ bus: hub.bus('a') });
    b = await startCore({
      bus: hub.bus('b'),
      hooks: {
        // Node b's deliver hook withholds secret/ from everyone: a message from node a passes it too.
        deliver: (session, packet) => {
          if (!packet.topic.startsWith('secret/')) return packet;
          withheld.push(`${session.clientId} ${packet.topic}`);
          return null;
        },
      },
    });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.end(true);
  });

  async function connect(h: Harness, clientId: string, options: IClientOptions = {}) {
    const client = mqtt.connect(h.url, { clientId, reconnectPeriod: 0, ...options });
    clients.push(client);
    const got: string[] = [];
    client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    return { client, got };
  }

  const settle = () => new Promise((r) => setTimeout(r, 150));

  it('a message published on one node reaches the subscribers of both, once each', async () => {
    const onA = await connect(a, 'sub-a', { protocolVersion: 5 });
    const onB = await connect(b, 'sub-b', { protocolVersion: 4 });
    await onA.client.subscribeAsync('room/#', { qos: 1 });
    await onB.client.subscribeAsync('room/#', { qos: 1 });
    const pub = await connect(a, 'pub-a', { protocolVersion: 5 });
    await pub.client.publishAsync('room/1', 'hello', { qos: 1 });
    const back = await connect(b, 'pub-b', { protocolVersion: 4 });
    await back.client.publishAsync('room/2', 'back', { qos: 0 });
    await settle();
    expect(onA.got).toEqual(['room/1 hello', 'room/2 back']);
    expect(onB.got).toEqual(['room/1 hello', 'room/2 back']);
  });

  it("the receiving node's deliver hook decides for its subscribers", async () => {
    const onB = await connect(b, 'reader-b', { protocolVersion: 5 });
    await onB.client.subscribeAsync('secret/#', { qos: 1 });
    const onA = await connect(a, 'reader-a', { protocolVersion: 5 });
    await onA.client.subscribeAsync('secret/#', { qos: 1 });
    const pub = await connect(a, 'writer-a', { protocolVersion: 5 });
    await pub.client.publishAsync('secret/x', 's', { qos: 1 });
    await settle();
    expect(onA.got).toEqual(['secret/x s']);
    expect(onB.got).toEqual([]);
    expect(withheld).toContain('reader-b secret/x');
  });

  it('a will and a message the server publishes reach the other node too', async () => {
    const onB = await connect(b, 'watch-b', { protocolVersion: 4 });
    await onB.client.subscribeAsync('status/#', { qos: 1 });
    const dying = await connect(a, 'dying-a', {
      protocolVersion: 4,
      will: { topic: 'status/dying-a', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    dying.client.stream.destroy();
    await a.core.publish({ topic: 'status/server', payload: 'up' });
    await settle();
    expect([...onB.got].sort()).toEqual(['status/dying-a gone', 'status/server up']);
  });

  it('a client connecting on one node takes its session over on the other (DISCONNECT 0x8E)', async () => {
    const first = await connect(a, 'roamer', { protocolVersion: 5 });
    const disconnected = new Promise<number | undefined>((resolve) =>
      first.client.once('disconnect', (packet) => resolve(packet.reasonCode)),
    );
    await connect(b, 'roamer', { protocolVersion: 5 });
    expect(await disconnected).toBe(0x8e);
    expect(a.takenOver).toContain('roamer');
  });
});
