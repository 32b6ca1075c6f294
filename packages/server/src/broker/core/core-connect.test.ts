import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startCore, type Harness } from './test-harness.ts';

/** CONNECT and CONNACK (§3.1, §3.2), sessions and keep alive, against the core on a TCP port. */
describe('broker core: CONNECT, CONNACK, sessions, keep alive', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startCore({ limits: { keepAliveMaxSec: 60, maxSessionExpirySec: 3600 } });
  });
  afterAll(async () => h?.close());

  it('[MQTT-3.1.2-2] answers MQTT 3.1 (level 3) with return code 0x01 and closes', async () => {
    const c = await RawClient.open(h.port, 4);
    c.send({
      cmd: 'connect',
      protocolId: 'MQIsdp',
      protocolVersion: 3,
      clientId: 'old',
      clean: true,
      keepalive: 10,
    });
    expect(await c.next('connack')).toMatchObject({ returnCode: 1, sessionPresent: false });
    await c.whenClosed();
  });

  it('[MQTT-3.1.3-8] (3.1.1) refuses an empty client id with clean session 0 on 3.1.1 with 0x02', async () => {
    const c = await RawClient.open(h.port, 4);
    c.send(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x1e, 0x00, 0x00]));
    expect(await c.next('connack')).toMatchObject({ returnCode: 2 });
    await c.whenClosed();
  });

  it('[MQTT-3.1.3-6, 3.2.2-16] assigns a client id to an MQTT 5 client that sent none', async () => {
    const c = await RawClient.open(h.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: '',
      clean: true,
      keepalive: 10,
    });
    const connack = await c.next('connack');
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.assignedClientIdentifier).toMatch(/^auto-/);
    c.destroy();
  });

  it('[MQTT-3.1.3-6] (3.1.1) accepts an empty client id with clean session 1 on 3.1.1 (an id is made up)', async () => {
    const client = await mqtt.connectAsync(h.url, {
      protocolVersion: 4,
      clientId: '',
      clean: true,
      reconnectPeriod: 0,
    });
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('[MQTT-3.2.2-6, 3.2.2-7] a refusal by the connect hook: v5 reason code and reason string, v3 return code', async () => {
    const v5 = await RawClient.open(h.port, 5);
    v5.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'refused-1',
      clean: true,
      keepalive: 10,
    });
    const connack5 = await v5.next('connack');
    expect(connack5).toMatchObject({ reasonCode: 0x87, sessionPresent: false });
    expect(connack5.properties?.reasonString).toBe('not on the list');
    await v5.whenClosed();
    const v3 = await RawClient.open(h.port, 4);
    v3.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'badpass-1',
      clean: true,
      keepalive: 10,
    });
    expect(await v3.next('connack')).toMatchObject({ returnCode: 4, sessionPresent: false }); // 0x86 → 4
    await v3.whenClosed();
  });

  it('[MQTT-3.1.0-1] closes a connection whose first packet is not CONNECT', async () => {
    const c = await RawClient.open(h.port, 4);
    c.send({ cmd: 'pingreq' });
    await c.whenClosed();
    expect(c.packets).toHaveLength(0);
    expect(h.rejections).toContainEqual({ reason: 'first packet is not CONNECT', reasonCode: 0x82 });
  });

  it('[MQTT-3.1.0-2] a second CONNECT is a protocol error: DISCONNECT 0x82 on MQTT 5', async () => {
    const c = await RawClient.connected(h.port, 'twice', { version: 5 });
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'twice',
      clean: true,
      keepalive: 10,
    });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    await c.whenClosed();
  });

  it('[MQTT-3.1.2-3] a CONNECT with the reserved flag set is malformed: closed', async () => {
    const c = await RawClient.open(h.port, 4);
    c.send(
      Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x03, 0x00, 0x1e, 0x00, 0x01, 0x61]),
    );
    await c.whenClosed();
    expect(c.packets).toHaveLength(0);
  });

  it('[MQTT-3.2.2-2, 3.2.2-3, 3.1.2-4] session present for a resumed session, not after clean start', async () => {
    const first = await RawClient.connected(h.port, 'persist-1', {
      version: 5,
      properties: { sessionExpiryInterval: 60 },
    });
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'p/1', qos: 1 }] });
    await first.next('suback');
    first.send({ cmd: 'disconnect', reasonCode: 0 });
    await first.whenClosed();
    const again = await RawClient.open(h.port, 5);
    again.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'persist-1',
      clean: false,
      keepalive: 10,
    });
    expect(await again.next('connack')).toMatchObject({ sessionPresent: true });
    // The subscription survived: a message published now reaches it.
    await h.core.publish({ topic: 'p/1', payload: 'kept' });
    expect((await again.next('publish')).payload.toString()).toBe('kept');
    again.destroy();
    const clean = await RawClient.open(h.port, 5);
    clean.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'persist-1',
      clean: true,
      keepalive: 10,
    });
    expect(await clean.next('connack')).toMatchObject({ sessionPresent: false });
    clean.destroy();
  });

  it('3.1.1 clean session 0 keeps the session; session present on the next connection', async () => {
    const first = await RawClient.connected(h.port, 'v3-persist', { version: 4, clean: false });
    first.send({ cmd: 'disconnect' });
    await first.whenClosed();
    const again = await RawClient.open(h.port, 4);
    again.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'v3-persist',
      clean: false,
      keepalive: 10,
    });
    expect(await again.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: true });
    again.destroy();
  });

  it('§3.1.2.11.2 session expiry 0xFFFFFFFF is capped by the server and the cap returned in CONNACK', async () => {
    const c = await RawClient.open(h.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'forever',
      clean: true,
      keepalive: 10,
      properties: { sessionExpiryInterval: 0xffffffff },
    });
    const connack = await c.next('connack');
    expect(connack.properties?.sessionExpiryInterval).toBe(3600);
    c.destroy();
  });

  it('[MQTT-3.2.2-21] CONNACK carries the server limits and Server Keep Alive when the client asked for more', async () => {
    const c = await RawClient.open(h.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'limits',
      clean: true,
      keepalive: 600,
    });
    const connack = await c.next('connack');
    expect(connack.properties).toMatchObject({
      receiveMaximum: 10,
      maximumPacketSize: 64 * 1024,
      topicAliasMaximum: 5,
      serverKeepAlive: 60,
    });
    c.destroy();
  });

  it('[MQTT-3.1.4-3] a second connection with the same client id takes over: DISCONNECT 0x8E to the first', async () => {
    const first = await RawClient.connected(h.port, 'twin', { version: 5 });
    const second = await RawClient.connected(h.port, 'twin', { version: 5 });
    expect(await first.next('disconnect')).toMatchObject({ reasonCode: 0x8e });
    await first.whenClosed();
    expect(h.takenOver).toContain('twin');
    expect(h.disconnects.find((d) => d.clientId === 'twin')?.info.reasonCode).toBe(0x8e);
    await second.ping();
    second.destroy();
  });

  it('[MQTT-3.12.4-1] answers PINGREQ with PINGRESP', async () => {
    const c = await RawClient.connected(h.port, 'pinger');
    await c.ping();
    c.destroy();
  });
});

describe('broker core: deadlines', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startCore({ limits: { connectTimeoutMs: 150 } });
  });
  afterAll(async () => h?.close());

  it('[MQTT-3.1.2-22] closes a client silent for 1.5 × its keep alive: DISCONNECT 0x8D on MQTT 5', async () => {
    const c = await RawClient.connected(h.port, 'sleepy', { version: 5, keepalive: 1 });
    const started = Date.now();
    expect(await c.next('disconnect', 4000)).toMatchObject({ reasonCode: 0x8d });
    await c.whenClosed();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(h.disconnects.find((d) => d.clientId === 'sleepy')?.info.reason).toBe('keep alive timeout');
  });

  it('closes a connection that sends no CONNECT within the connect deadline; the rejected hook says why', async () => {
    const c = await RawClient.open(h.port, 4);
    await c.whenClosed(2000);
    expect(h.rejections).toContainEqual({ reason: 'connect timeout', reasonCode: 0xa0 });
  });

  it('§4.1 a session with a short expiry ends after it: no session present afterwards', async () => {
    let clock = Date.now();
    const timed = await startCore({ now: () => clock });
    const c = await RawClient.connected(timed.port, 'brief', {
      version: 5,
      properties: { sessionExpiryInterval: 5 },
    });
    c.send({ cmd: 'disconnect', reasonCode: 0 });
    await c.whenClosed();
    expect(timed.core.stats().sessions).toBe(1);
    clock += 5_001;
    // The shared timer runs every 50 ms here: wait for it to end the session.
    for (let i = 0; i < 100 && timed.core.stats().sessions > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(timed.core.stats().sessions).toBe(0);
    const again = await RawClient.open(timed.port, 5);
    again.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'brief',
      clean: false,
      keepalive: 10,
    });
    expect(await again.next('connack')).toMatchObject({ sessionPresent: false });
    again.destroy();
    await timed.close();
  });
});
