import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { commandResultSchema, commandTopics, heartbeatSchema, topics } from '@bulwark/protocol';
import { startAgent, type Agent, type AgentOptions } from './agent.ts';
import { openIdentityStore } from './identity-store.ts';
import {
  createTestCa,
  startFakeBroker,
  startFakeEstServer,
  type FakeBroker,
  type FakeEstServer,
  type TestCa,
} from './test-support/index.ts';

const MINUTE = 60_000;

let ca: TestCa;
let broker: FakeBroker;
let estServer: FakeEstServer;
let root: string;
let dir: string;
let agent: Agent | undefined;
let serial: string;

beforeAll(async () => {
  ca = await createTestCa();
  root = await mkdtemp(join(tmpdir(), 'bulwark-agent-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

beforeEach(async () => {
  broker = await startFakeBroker(ca);
  estServer = await startFakeEstServer({ ca });
  dir = join(await mkdtemp(join(root, 't-')), 'identity');
  serial = await enrolled({ notBefore: Date.now() - MINUTE, notAfter: Date.now() + 60 * MINUTE });
});
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await broker.close();
  await estServer.close();
});

/** Writes an identity for pump-17 as `enroll` would, with the given validity; returns its serial. */
async function enrolled(validity: { notBefore: number; notAfter: number }): Promise<string> {
  const issued = await ca.issueKeyAndCert({
    subject: 'CN=pump-17',
    notBefore: new Date(validity.notBefore),
    notAfter: new Date(validity.notAfter),
  });
  await openIdentityStore(dir).save({
    deviceId: 'pump-17',
    serverUrl: estServer.url,
    mqttUrl: broker.url,
    keyPem: issued.keyPem,
    certPem: issued.certPem,
    caPem: ca.certPem,
  });
  return issued.serialNumber;
}

async function start(options: Partial<AgentOptions> = {}): Promise<Agent> {
  agent = await startAgent({ dir, heartbeatIntervalMs: 50, ...options });
  return agent;
}

describe('agent', () => {
  it('connects as the device over mutual TLS and publishes valid heartbeats with QoS 1', async () => {
    const connected = broker.next('connect');
    const thirdBeat = broker.next(
      'publish',
      (publish) => heartbeatSchema.parse(JSON.parse(publish.payload)).seq === 2,
    );
    const running = await start();

    expect(await connected).toEqual({
      clientId: 'pump-17',
      protocolLevel: 4, // MQTT 3.1.1
      cleanSession: true,
      certSerial: serial,
      certCommonName: 'pump-17',
    });
    await thirdBeat;
    const beats = broker.publishes.map((publish) => {
      expect(publish).toMatchObject({ topic: topics.heartbeat('pump-17'), qos: 1 });
      return heartbeatSchema.parse(JSON.parse(publish.payload));
    });
    expect(beats.map((beat) => beat.seq)).toEqual([0, 1, 2]);
    expect(beats[0]?.certNotAfter).toBe(running.certificate.notAfter);
    expect(running.connected).toBe(true);
  });

  it('reports acknowledged heartbeats and disconnects cleanly on stop', async () => {
    const running = await start();
    const beat = await running.waitFor('heartbeat');
    expect(heartbeatSchema.safeParse(beat).success).toBe(true);

    const disconnect = broker.next('disconnect');
    const disconnected = running.waitFor('disconnected');
    await running.stop();
    expect(await disconnect).toEqual({ clientId: 'pump-17' });
    expect(await disconnected).toEqual({ reason: 'stopped' });
    expect(running.connected).toBe(false);
    const count = broker.publishes.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(broker.publishes.length).toBe(count); // nothing after stop
  });

  it('reconnects with exponential backoff, and starts over after a successful connection', async () => {
    const running = await start({ backoff: { initialMs: 20, maxMs: 80, factor: 2 }, random: () => 0 });
    await running.waitFor('connected');

    const delays: number[] = [];
    const fourFailures = new Promise<void>((resolve) => {
      const off = running.on('reconnecting', ({ delayMs }) => {
        delays.push(delayMs);
        if (delays.length === 4) {
          off();
          resolve();
        }
      });
    });
    const lost = running.waitFor('disconnected');
    await broker.pause(); // the broker goes away: connections are refused
    expect(await lost).toMatchObject({ reason: 'lost' });
    await fourFailures;
    expect(delays).toEqual([20, 40, 80, 80]);

    const back = running.waitFor('connected');
    await broker.resume();
    await back;

    const retry = running.waitFor('reconnecting');
    broker.dropAll();
    expect(await retry).toEqual({ attempt: 1, delayMs: 20 });
    await running.waitFor('connected');
  });

  it('keeps retrying when the broker refuses the device, and reports why', async () => {
    broker.refuseWith = 5; // CONNACK "not authorized"
    const running = await start({ backoff: { initialMs: 20, maxMs: 40 } });
    const error = await running.waitFor('error');
    expect(error.message).toMatch(/not authorized/);
    await running.waitFor('reconnecting');
    broker.refuseWith = 0;
    await running.waitFor('connected');
  });

  it('renews a certificate in the last third of its life before connecting, with a new key', async () => {
    const oldSerial = await enrolled({
      notBefore: Date.now() - 50 * MINUTE,
      notAfter: Date.now() + 10 * MINUTE,
    });
    const oldKey = await readFile(join(dir, 'key.pem'), 'utf8');
    const firstConnect = broker.next('connect');
    const running = await start();

    const { certificate, previous } = await running.waitFor('renewed');
    expect(previous.serialNumber.toUpperCase()).toBe(oldSerial);
    expect(certificate.notAfter).toBeGreaterThan(previous.notAfter);
    // Re-enrollment was authenticated by the old certificate (mutual TLS)...
    expect(estServer.requests.at(-1)).toMatchObject({
      path: '/.well-known/est/simplereenroll',
      clientCertSerial: oldSerial,
    });
    // ...the device connects with the new one...
    expect((await firstConnect).certSerial).toBe(certificate.serialNumber.toUpperCase());
    // ...and the new key and certificate are what is on disk.
    const stored = await openIdentityStore(dir).load();
    expect(stored.keyPem).not.toBe(oldKey);
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o600);
    expect(running.certificate).toEqual(certificate);
    const beat = await running.waitFor('heartbeat');
    expect(beat.certNotAfter).toBe(certificate.notAfter);
  });

  it('renews when the certificate reaches the last third of its life, not only at the periodic check', async () => {
    // A 24 s lifetime, due 1-2 s from now (X.509 times are truncated to whole seconds), still valid 8 s
    // after that: room for the re-enrollment on a loaded machine before the old certificate expires.
    const oldSerial = await enrolled({ notBefore: Date.now() - 14_000, notAfter: Date.now() + 10_000 });
    const running = await start({ renewCheckIntervalMs: 60 * MINUTE });
    // Listened for from the start: on a loaded machine the first connect can take longer than the 1-2 s
    // until the renewal is due, and a renewal done before a late listener would be missed.
    const renewed = running.waitFor('renewed', { timeoutMs: 12_000 });
    renewed.catch(() => undefined); // awaited below; a failure above must not leave it unhandled
    expect((await running.waitFor('connected')).certificate.serialNumber.toUpperCase()).toBe(oldSerial);
    const { previous } = await renewed;
    expect(previous.serialNumber.toUpperCase()).toBe(oldSerial);
    await running.waitFor('connected');
  });

  it('swaps a live connection for one with the renewed identity', async () => {
    const running = await start();
    await running.waitFor('connected');
    const reconnected = broker.next('connect', (connect) => connect.certSerial !== serial);
    const disconnected = running.waitFor('disconnected');
    const certificate = await running.renewNow();
    expect(await disconnected).toEqual({ reason: 'renewal' });
    expect((await reconnected).certSerial).toBe(certificate.serialNumber.toUpperCase());
  });

  it('keeps its current identity and reports the failure when renewal is impossible', async () => {
    await enrolled({ notBefore: Date.now() - 50 * MINUTE, notAfter: Date.now() + 10 * MINUTE });
    const before = await openIdentityStore(dir).load();
    await estServer.close();
    const connected = broker.next('connect');
    const running = await start();
    const error = await running.waitFor('error');
    expect(error.message).toMatch(/^certificate renewal failed: EST simplereenroll to .* failed/);
    expect((await connected).clientId).toBe('pump-17');
    expect(await openIdentityStore(dir).load()).toEqual(before);
  });

  it('does not start without an identity', async () => {
    await expect(startAgent({ dir: join(root, 'nothing-here') })).rejects.toMatchObject({
      code: 'not_found',
    });
  });
});

describe('agent commands', () => {
  /** Sends command `name` to pump-17 (QoS 1) and resolves with the result the agent publishes. */
  async function command(name: string, extra: Record<string, unknown> = {}) {
    const id = `c-${Math.random().toString(36).slice(2)}`;
    const published = broker.next('publish', (p) => p.topic === commandTopics.result('pump-17', name));
    const payload = {
      id,
      issuedBy: 'user:ana',
      issuedAt: Date.now(),
      expiresAt: Date.now() + 10_000,
      ...extra,
    };
    expect(broker.send('pump-17', commandTopics.request('pump-17', name), JSON.stringify(payload))).toBe(
      true,
    );
    const { qos, payload: text } = await published;
    expect(qos).toBe(1);
    const result = commandResultSchema.parse(JSON.parse(text));
    expect(result.id).toBe(id);
    return result;
  }

  async function subscribed() {
    const subscribe = await broker.next('subscribe', (s) =>
      s.filters.some((f) => f.filter === commandTopics.all('pump-17')),
    );
    expect(subscribe.filters).toEqual([{ filter: 'devices/pump-17/commands/+', qos: 1 }]);
  }

  it('subscribes to its commands at every connect and answers ping and report-state', async () => {
    const first = subscribed();
    const running = await start({ heartbeatIntervalMs: 60_000 });
    await first;

    const ping = await command('ping');
    expect(ping).toMatchObject({ status: 'ok', result: { pong: true } });
    expect(ping.result).toEqual({
      pong: true,
      ts: expect.any(Number) as unknown,
      uptimeS: expect.any(Number) as unknown,
    });

    const state = await command('report-state');
    expect(state).toMatchObject({
      status: 'ok',
      result: {
        deviceId: 'pump-17',
        agent: expect.stringMatching(/^bulwark-agent\//) as unknown,
        firmware: null,
        certificate: {
          serialNumber: running.certificate.serialNumber,
          notAfter: running.certificate.notAfter,
        },
        connectedSince: expect.any(Number) as unknown,
      },
    });

    const again = subscribed();
    broker.dropAll();
    await again; // subscribed again on the new connection
    expect(await command('ping')).toMatchObject({ status: 'ok' });
  });

  it('refuses unknown and expired commands, and reboot without a reboot hook', async () => {
    const first = subscribed();
    await start({ heartbeatIntervalMs: 60_000 });
    await first;
    expect(await command('self-destruct')).toMatchObject({
      status: 'refused',
      message: 'unknown command self-destruct (known: ping, reboot, report-state)',
    });
    expect(await command('ping', { expiresAt: Date.now() - 1_000 })).toMatchObject({
      status: 'refused',
      message: 'expired',
    });
    expect(await command('reboot')).toMatchObject({
      status: 'refused',
      message: 'reboot not configured on this device',
    });
  });

  it('answers reboot before running the reboot hook', async () => {
    const order: string[] = [];
    const first = subscribed();
    await start({
      heartbeatIntervalMs: 60_000,
      reboot: () => {
        order.push(
          `rebooting after ${broker.publishes.filter((p) => p.topic.endsWith('/reboot/result')).length} result`,
        );
      },
    });
    await first;
    expect(await command('reboot')).toEqual(
      expect.objectContaining({ status: 'ok', result: { rebooting: true } }),
    );
    await expect.poll(() => order).toEqual(['rebooting after 1 result']);
  });

  it("runs the device's own handlers (options and onCommand) and reports each command", async () => {
    const first = subscribed();
    const running = await start({
      heartbeatIntervalMs: 60_000,
      commands: {
        'set-speed': (request) => ({ rpm: (request.data as { rpm: number }).rpm }),
        ping: () => 'my own ping',
      },
    });
    await first;
    const reported = running.waitFor('command', { filter: (c) => c.name === 'set-speed' });
    expect(await command('set-speed', { data: { rpm: 800 } })).toMatchObject({
      status: 'ok',
      result: { rpm: 800 },
    });
    expect(await reported).toMatchObject({ name: 'set-speed', status: 'ok', repeated: false });
    expect(await command('ping')).toMatchObject({ status: 'ok', result: 'my own ping' });

    const remove = running.onCommand('blink', () => {
      throw new Error('no LED on this model');
    });
    expect(await command('blink')).toMatchObject({ status: 'failed', message: 'no LED on this model' });
    remove();
    expect(await command('blink')).toMatchObject({ status: 'refused' });
  });
});
