import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.ts';
import { BULWARK_BIN, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

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
      // What the server bound, as recorded at its start: the TLS listeners only, each on the port it got.
      const started = await t.platform.audit.latest('platform.started');
      expect(started?.data.listeners).toEqual([
        {
          name: 'mqtt',
          port: t.server.mqttPort,
          transport: 'tls',
          authentication: 'mutual-tls-or-app-token',
          minTlsVersion: 'TLSv1.2',
        },
        {
          name: 'https',
          port: t.server.httpsPort,
          transport: 'tls',
          authentication: 'user-sign-in',
          minTlsVersion: 'TLSv1.2',
        },
        {
          name: 'https-device',
          port: t.server.devicePort,
          transport: 'tls',
          authentication: 'mutual-tls',
          minTlsVersion: 'TLSv1.2',
        },
      ]);
    } finally {
      await t.stop();
    }
  });

  it('is recorded at the start (platform.started) as mqtt-dev, plaintext tcp without authentication', async () => {
    const started = await s.platform.audit.latest('platform.started');
    const listeners = started?.data.listeners ?? [];
    expect(listeners.map((l) => l.name)).toEqual(['mqtt', 'mqtt-dev', 'https', 'https-device']);
    expect(listeners.find((l) => l.name === 'mqtt-dev')).toEqual({
      name: 'mqtt-dev',
      port: s.server.devMqttPort,
      transport: 'tcp',
      authentication: 'none',
      minTlsVersion: null,
    });
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
    await s.platform.access.attach('anon-lab', { kind: 'group', target: 'anonymous' }, 'test');
    const lab = await plain(port, [
      connect('bench-9'),
      { cmd: 'publish', topic: 'lab/bench-9', payload: Buffer.from('1'), qos: 1, messageId: 1 },
    ]);
    expect(lab.packets.map((p) => p.cmd)).toEqual(['connack', 'puback']);
  });

  it("accepts any client id MQTT allows, spaces included, without widening any device's topics", async () => {
    const port = s.server.devMqttPort!;
    const spaced = await plain(port, [
      connect('bench 7'),
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'devices/bench 7/#', qos: 0 }] },
    ]);
    expect(spaced.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 0 });
    // Not a plain topic level: policies never insert it, so this client has no subtree of its own.
    expect(spaced.packets[1]).toMatchObject({ cmd: 'suback', granted: [128] });
    // An id that would reach into an enrolled device's subtree if it were inserted into a topic.
    const sneaky = await plain(port, [
      connect('real-1/x'),
      { cmd: 'publish', topic: 'devices/real-1/x/t', payload: Buffer.from('1'), qos: 1, messageId: 1 },
    ]);
    expect(sneaky.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 0 });
    expect(sneaky.packets.some((p) => p.cmd === 'puback')).toBe(false);
    expect(sneaky.closed).toBe(true);
    // [MQTT-1.5.3-2]: U+0000 is refused with 0x02, like an enrolled device's id.
    const nul = await plain(port, [connect('bench\u00008')]);
    expect(nul.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 2 });
  });

  it('refuses MQTT 5 enhanced authentication with 0x8C: this listener authenticates no one', async () => {
    const socket = net.connect(s.server.devMqttPort ?? 0, '127.0.0.1');
    await once(socket, 'connect');
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    const received: mqttPacket.Packet[] = [];
    parser.on('packet', (p) => received.push(p));
    socket.on('data', (d: Buffer) => parser.parse(d));
    const packet = {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clean: true,
      clientId: 'lab-auth',
      keepalive: 30,
      properties: { authenticationMethod: 'bulwark-app-token', authenticationData: Buffer.from('x') },
    } as mqttPacket.IConnectPacket;
    socket.write(mqttPacket.generate(packet, { protocolVersion: 5 }));
    await new Promise((r) => setTimeout(r, 300));
    socket.destroy();
    expect(received[0]).toMatchObject({
      cmd: 'connack',
      reasonCode: 0x8c,
      properties: {
        reasonString:
          'bulwark-app-token is for the TLS listener: the development listener authenticates no one',
      },
    });
  });

  it('is set from the command line (--mqtt-dev-port) and the environment (BULWARK_MQTT_DEV_PORT)', async () => {
    expect(loadConfig({ env: { BULWARK_MQTT_DEV_PORT: '1884' } }).mqtt.devListener).toEqual({
      port: 1884,
      authentication: 'none',
    });
    expect(loadConfig({ env: {} }).mqtt.devListener).toBeUndefined();
    expect(() => loadConfig({ env: { BULWARK_MQTT_DEV_PORT: 'x' } })).toThrow(
      /mqtt\.devListener\.port \(from BULWARK_MQTT_DEV_PORT\): must be a port number/,
    );
    const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-dev-serve-'));
    const child = spawn(
      process.execPath,
      [
        BULWARK_BIN,
        'serve',
        '--data',
        dataDir,
        '--mqtt-port',
        '0',
        '--https-port',
        '0',
        '--mqtt-dev-port',
        '0',
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          BULWARK_BIND: '127.0.0.1',
          BULWARK_DEVICE_PORT: '0',
          BULWARK_LOG_LEVEL: 'error',
        },
      },
    );
    try {
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await expect.poll(() => out, { timeout: 30_000 }).toMatch(/WITHOUT AUTHENTICATION on port \d+/);
      const port = Number(/WITHOUT AUTHENTICATION on port (\d+)/.exec(out)?.[1]);
      const r = await plain(port, [connect('cli-dev')]);
      expect(r.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 0 });
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses the same plaintext connection on the TLS port', async () => {
    const r = await plain(s.server.mqttPort, [connect('bench-7')]);
    expect(r.packets).toEqual([]);
  });
});
