import { once } from 'node:events';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

/** Plaintext MQTT exchange (the development listener has no TLS). */
async function plain(port: number, packets: object[], waitMs = 300) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const received: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => received.push(p));
  socket.on('data', (d: Buffer) => parser.parse(d));
  let closed = false;
  socket.on('close', () => (closed = true));
  for (const p of packets) socket.write(mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: 4 }));
  await new Promise((r) => setTimeout(r, waitMs));
  socket.destroy();
  return { packets: received, closed };
}
const connect = (clientId: string) => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId,
  keepalive: 30,
});

describe('development listener (authentication: none)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ 'mqtt.devListener': { port: 0, authentication: 'none' } });
    await enrollInProcess(s, 'real-1');
  });
  afterAll(async () => s?.stop());

  it('does not exist by default', async () => {
    const t = await startTestServer();
    try {
      expect(t.server.devMqttPort).toBeUndefined();
    } finally {
      await t.stop();
    }
  });

  it('treats the client id as identity, limited to its own subtree and the anonymous group', async () => {
    const port = s.server.devMqttPort!;
    const own = await plain(port, [
      connect('bench-7'),
      { cmd: 'publish', topic: 'devices/bench-7/t', payload: Buffer.from('1'), qos: 1, messageId: 1 },
    ]);
    expect(own.packets.map((p) => p.cmd)).toEqual(['connack', 'puback']);
    const other = await plain(port, [
      connect('bench-8'),
      { cmd: 'publish', topic: 'devices/real-1/t', payload: Buffer.from('1'), qos: 1, messageId: 1 },
    ]);
    expect(other.packets.some((p) => p.cmd === 'puback')).toBe(false);
    expect(other.closed).toBe(true);
    // An anonymous client can never speak for an enrolled device.
    const impostor = await plain(port, [connect('real-1')]);
    expect(impostor.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 2 });
    // Policies attached to the anonymous group apply.
    await s.platform.access.putPolicy(
      'anon-lab',
      {
        version: '2026-11',
        statements: [
          { sid: 'lab', effect: 'allow', actions: ['mqtt:publish'], resources: ['lab/${device.id}'] },
        ],
      },
      'test',
    );
    await s.platform.access.attach('anon-lab', 'group', 'anonymous', 'test', true);
    const lab = await plain(port, [
      connect('bench-9'),
      { cmd: 'publish', topic: 'lab/bench-9', payload: Buffer.from('1'), qos: 1, messageId: 1 },
    ]);
    expect(lab.packets.map((p) => p.cmd)).toEqual(['connack', 'puback']);
  });

  it('refuses the same plaintext connection on the TLS port', async () => {
    const r = await plain(s.server.mqttPort, [connect('bench-7')]);
    expect(r.packets).toEqual([]);
  });
});
