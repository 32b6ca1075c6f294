import mqttPacket from 'mqtt-packet';
import { bench, describe } from 'vitest';
import { encodePublish, parsePacket, publishFrames, withTopicAlias } from './codec.ts';

// The broker's per-message codec cost on the hot path: one PUBLISH parsed as it arrives, encoded once per
// variant, and written to each subscriber (`publishFrames`: a copy of the header up to the packet id for
// QoS 1/2; for a subscriber with a topic alias, its own header with the alias). A typical telemetry message: a 40-byte topic, 128 bytes of payload, three user properties.
const topic = 'sites/site-17/line-0042/pump-0043/telemetry';
const payload = Buffer.alloc(128, 0x61);
const properties = {
  contentType: 'application/json',
  userProperties: { trace: 'abc', unit: 'kPa', a: '1' },
};
const wire5 = mqttPacket.generate(
  { cmd: 'publish', topic, payload, qos: 1, dup: false, retain: false, messageId: 7, properties },
  { protocolVersion: 5 },
);
const wire4 = mqttPacket.generate(
  { cmd: 'publish', topic, payload, qos: 1, dup: false, retain: false, messageId: 7 },
  { protocolVersion: 4 },
);
const message5 = { topic, payload, qos: 1 as const, retain: false, properties };
const encoded5 = encodePublish(message5, 5);
const aliasUse = { alias: 3, withTopic: false };

describe('broker core codec: PUBLISH', () => {
  bench('parse v5 (3 user properties)', () => {
    parsePacket(wire5, 5);
  });
  bench('parse 3.1.1', () => {
    parsePacket(wire4, 4);
  });
  bench('encode v5 once (3 user properties)', () => {
    encodePublish(message5, 5);
  });
  bench('encode 3.1.1 once', () => {
    encodePublish({ topic, payload, qos: 1, retain: false }, 4);
  });
  bench('frames for one subscriber, QoS 1 (shared encoding)', () => {
    publishFrames(encoded5, 42, false);
  });
  bench('frames for one subscriber, QoS 1, topic alias (shared encoding)', () => {
    publishFrames(withTopicAlias(encoded5, aliasUse), 42, false);
  });
});
