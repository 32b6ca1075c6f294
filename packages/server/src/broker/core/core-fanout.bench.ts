import { afterAll, bench, describe } from 'vitest';
import { createBrokerCore } from './broker-core.ts';
import { memoryPair } from './fuzz-harness.ts';
import { RawClient, testLimits } from './test-harness.ts';

// One message to 100 subscribers through the core (routing, deliver hook, encoding once per variant, the
// frames of each subscriber, corked writes), over in-memory streams whose readers discard what they get:
// MQTT 5 subscribers without topic aliases, the same with a Topic Alias Maximum (the topic then sent as an
// alias), and 3.1.1 subscribers. Each iteration publishes one message and lets the writes flush.
const SUBSCRIBERS = 100;
const topic = 'sites/site-17/line-0042/pump-0043/telemetry';
const payload = Buffer.alloc(128, 0x61);

async function fanout(version: 4 | 5, properties?: object) {
  const core = createBrokerCore<{ id: string }>({
    hooks: {
      connect: (conn) => Promise.resolve({ ok: true, session: { id: conn.clientId ?? '' } }),
      publish: (_s, _p, done) => done(null),
      subscribe: () => undefined,
      deliver: (_s, packet) => packet,
      retained: { lookup: () => [] },
      disconnected: () => undefined,
    },
    limits: testLimits,
  });
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const [server, client] = memoryPair();
    core.accept(server, {});
    const c = await RawClient.connected(client, `s${i}`, { version, ...(properties ? { properties } : {}) });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sites/#', qos: 0 }] });
    await c.next('suback');
    // From here on the subscriber's bytes are discarded unread (parsing them is the client's cost).
    client.removeAllListeners('data');
    client.on('data', () => undefined);
  }
  return core;
}

const cores = {
  v5: await fanout(5),
  v5alias: await fanout(5, { topicAliasMaximum: 10 }),
  v4: await fanout(4),
};
afterAll(async () => {
  for (const core of Object.values(cores)) await core.shutdown();
});

const flushed = () => new Promise<void>((resolve) => setImmediate(resolve));

describe(`broker core: one QoS 0 message to ${SUBSCRIBERS} subscribers`, () => {
  bench('MQTT 5, no topic aliases (one encoding shared)', async () => {
    await cores.v5.publish({ topic, payload, qos: 0 });
    await flushed();
  });
  bench('MQTT 5, topic alias per subscriber (one encoding shared, own header each)', async () => {
    await cores.v5alias.publish({ topic, payload, qos: 0 });
    await flushed();
  });
  bench('MQTT 3.1.1 (one encoding shared)', async () => {
    await cores.v4.publish({ topic, payload, qos: 0 });
    await flushed();
  });
});
