import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, rawMqtt } from '../test-support/clients.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

const connect = (clientId: string) => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId,
  keepalive: 30,
});

describe('broker firewall on the live broker', () => {
  let s: TestServer;
  let ca: string;
  beforeAll(async () => {
    s = await startTestServer({
      'firewall.publishRate': 20,
      'firewall.publishBurst': 20,
      'firewall.throttlesBeforeDisconnect': 3,
      'firewall.maxPayloadBytes': 1024,
      'firewall.maxSubscriptions': 3,
    });
    ca = readFileSync(s.caFile, 'utf8');
  });
  afterAll(async () => s?.stop());

  it('throttles, then disconnects a flooding device, while a well-behaved one carries on', async () => {
    const flood = await enrollInProcess(s, 'flood-1');
    const calm = await enrollInProcess(s, 'calm-1');
    const calmClient = await connectMqtt(s.mqttUrl, ca, calm);
    const flooder = await connectMqtt(s.mqttUrl, ca, flood);
    const closed = new Promise<boolean>((resolve) => flooder.once('close', () => resolve(true)));
    for (let i = 0; i < 300 && flooder.connected; i++)
      flooder.publish('devices/flood-1/telemetry', String(i), { qos: 0 });
    expect(await closed).toBe(true);
    flooder.end(true);
    await calmClient.publishAsync('devices/calm-1/telemetry', 'still fine', { qos: 1 });
    await calmClient.endAsync();
    await expect
      .poll(async () =>
        (await s.platform.audit.query({ subject: 'device:flood-1', limit: 100 })).map((e) => e.type),
      )
      .toEqual(expect.arrayContaining(['firewall.throttled', 'firewall.disconnected']));
  });

  it('disconnects on an oversized payload, and refuses subscriptions past the cap with 0x80', async () => {
    const d = await enrollInProcess(s, 'big-1');
    const big = await rawMqtt(s.server.mqttPort, { ca, key: d.key, cert: d.cert }, [
      connect('big-1'),
      { cmd: 'publish', topic: 'devices/big-1/x', payload: Buffer.alloc(2000), qos: 1, messageId: 1 },
    ]);
    expect(big.packets.some((p) => p.cmd === 'puback')).toBe(false);
    expect(big.closed).toBe(true);
    const subs = await rawMqtt(s.server.mqttPort, { ca, key: d.key, cert: d.cert }, [
      connect('big-1'),
      {
        cmd: 'subscribe',
        messageId: 3,
        subscriptions: ['a', 'b', 'c', 'd'].map((x) => ({ topic: `devices/big-1/${x}`, qos: 0 })),
      },
    ]);
    expect(subs.packets.find((p) => p.cmd === 'suback')).toMatchObject({ granted: [0, 0, 0, 128] });
  });

  it('bans a device and an address from the CLI (another process), and lifts the ban', async () => {
    const d = await enrollInProcess(s, 'banned-1');
    const add = await s.cli(['ban', 'add', '--device', 'banned-1', '--reason', 'stolen', '--json']);
    expect(add.code).toBe(0);
    const { id } = JSON.parse(add.stdout) as { id: string };
    await expect
      .poll(
        async () =>
          (await rawMqtt(s.server.mqttPort, { ca, key: d.key, cert: d.cert }, [connect('banned-1')], 200))
            .packets[0],
      )
      .toMatchObject({ returnCode: 5 });
    expect((await s.cli(['ban', 'remove', id])).code).toBe(0);
    await expect
      .poll(
        async () =>
          (await rawMqtt(s.server.mqttPort, { ca, key: d.key, cert: d.cert }, [connect('banned-1')], 200))
            .packets[0],
      )
      .toMatchObject({ returnCode: 0 });

    const addr = await s.cli([
      'ban',
      'add',
      '--address',
      '127.0.0.0/8',
      '--reason',
      'test',
      '--ttl',
      '1m',
      '--json',
    ]);
    const ban = JSON.parse(addr.stdout) as { id: string };
    // Refused at TCP accept: the TLS handshake never happens.
    await expect
      .poll(async () =>
        connectMqtt(s.mqttUrl, ca, d).then(
          (c) => (c.end(true), 'connected'),
          () => 'refused',
        ),
      )
      .toBe('refused');
    // Refused at once; the listener records it without waiting for the audit log.
    await expect
      .poll(
        async () => (await s.platform.audit.query({ type: 'firewall.connection_refused', limit: 10 })).length,
      )
      .toBeGreaterThan(0);
    await s.platform.firewall.remove(ban.id, 'test');
    const back = await connectMqtt(s.mqttUrl, ca, d);
    await back.endAsync();
  });

  it('refuses at TCP accept over the connection rate', async () => {
    const t = await startTestServer({ 'firewall.connectRate': 1, 'firewall.connectBurst': 2 });
    try {
      const d = await enrollInProcess(t, 'rate-1');
      const tcaStr = readFileSync(t.caFile, 'utf8');
      const results: string[] = [];
      for (let i = 0; i < 4; i++)
        results.push(
          await connectMqtt(t.mqttUrl, tcaStr, d).then(
            (c) => (c.end(true), 'ok'),
            () => 'refused',
          ),
        );
      expect(results.slice(0, 2)).toEqual(['ok', 'ok']);
      expect(results.slice(2)).toContain('refused');
    } finally {
      await t.stop();
    }
  });
});
