/**
 * The broker serving applications, with the apps check and the access compiler faked (apps/ and access/
 * have their own tests; apps.e2e.test.ts runs the real ones): app credentials and certificates, several
 * instances, revocation, recompilation, shared subscriptions, commands, and the bounded app queue. MQTT goes
 * through mqtt.js over in-memory streams; the TLS listener's no-certificate path over a real TLS socket.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import {
  entriesOf,
  type AuditEntry,
  type EventBus,
  type EventType,
  type SecurityEvent,
} from '../events/index.ts';
import { createFirewall } from '../firewall/index.ts';
import { createLogger } from '../logger.ts';
import { createMetricsRegistry } from '../monitor/index.ts';
import type { DeviceAccess } from '../policy/index.ts';
import { duplexPair } from '../test-support/platform.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import type { AppCheckRequest, AppDecision } from '../apps/index.ts';
import { createBroker, type Broker, type BrokerDeps } from './index.ts';
import type { PeerIdentity } from './stages.ts';

const allow = { allow: true as const, reason: 'allowed' };
const deny = { allow: false as const, reason: 'no_matching_statement' };

/** Access that allows what `prefixes` cover (or everything). */
function access(id: string, prefixes?: string[]): DeviceAccess {
  const covered = (topic: string) => !prefixes || prefixes.some((p) => topic.startsWith(p));
  return {
    deviceId: id,
    zone: null,
    connect: () => allow,
    publish: (topic) => (covered(topic) ? allow : deny),
    subscribe: (filter) => (covered(filter) ? allow : deny),
    receive: covered,
    receiveDecision: (topic) => (covered(topic) ? allow : deny),
    describe: () => ({ statements: [], dropped: [] }),
  };
}

/** An event bus that records, numbers and dispatches in memory. */
function fakeEvents() {
  const recorded: AuditEntry[] = [];
  const handlers: { types: ReadonlySet<string>; handler: (entry: AuditEntry) => void }[] = [];
  const bus: Pick<EventBus, 'emit' | 'on'> = {
    emit<T extends EventType>(event: SecurityEvent<T>) {
      const entry = {
        ...event,
        subject: event.subject ?? null,
        seq: recorded.length + 1,
        ts: Date.now(),
        prevHash: '',
        hash: '',
      } as unknown as AuditEntry; // the fake's one cast: a SecurityEvent<T> made into its entry
      recorded.push(entry);
      for (const h of handlers) if (h.types.has(entry.type)) h.handler(entry);
      return Promise.resolve(entry);
    },
    on(types, handler) {
      const wanted = new Set<string>(typeof types === 'string' ? [types] : [...types]);
      const h = { types: wanted, handler: handler as (entry: AuditEntry) => void };
      handlers.push(h);
      return () => void handlers.splice(handlers.indexOf(h), 1);
    },
  };
  return { bus, recorded, ofType: <T extends EventType>(type: T) => entriesOf(recorded, type) };
}

/** A self-signed certificate for the listener (the no-certificate path needs no client CA of ours). */
function serverTls(dir: string) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', [
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '1'],
    ...['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
  ]);
  const pem = readFileSync(cert, 'utf8');
  return { key: readFileSync(key, 'utf8'), cert: pem, ca: pem };
}

const TOKENS: Record<string, string> = { 'tok-1': 'secret-1', 'tok-2': 'secret-2', 'tok-3': 'secret-3' };
/** When token tok-3 expires (the others never do). */
const expiry = { 'tok-3': 0 };

/**
 * The apps check, faked: app `billing` (tokens tok-1, tok-2, tok-3 expiring at `expiry['tok-3']`; certificate
 * serial AA) and nothing else.
 */
function checkApp(request: AppCheckRequest): Promise<AppDecision> {
  const { clientId } = request;
  const [app, instance = null] = clientId.split('/');
  const refuse = (reason: string): AppDecision => ({ ok: false, code: 'unauthenticated', reason });
  if (app !== 'billing') return Promise.resolve(refuse('unknown app'));
  let serial: string;
  let tokenId: string | null = null;
  if (request.certificate) serial = request.certificate.serial;
  else {
    const password = request.password?.password.toString() ?? '';
    tokenId = Object.keys(TOKENS).find((id) => TOKENS[id] === password) ?? null;
    if (request.password?.username !== app || tokenId === null) return Promise.resolve(refuse('bad token'));
    serial = `token:${tokenId}`;
  }
  const expiresAt = tokenId === 'tok-3' ? expiry['tok-3'] : (request.certificate?.notAfter ?? null);
  return Promise.resolve({
    ok: true,
    app,
    instance,
    clientId,
    zone: null,
    purpose: 'operations',
    serial,
    tokenId,
    expiresAt,
  });
}

interface Harness {
  broker: Broker;
  /** The listener's certificate, which clients trust. */
  ca: string;
  events: ReturnType<typeof fakeEvents>;
  accessChanged(deviceId?: string): void;
  appAccessCalls: number;
  device(id: string): Promise<MqttClient>;
  app(clientId: string, o?: { password?: string; stall?: Stall; clean?: boolean }): Promise<MqttClient>;
  close(): Promise<void>;
}

/** A connection that looks backed up while `on`: its socket reports that much unsent. */
interface Stall {
  on: boolean;
  queued: number;
}

function stalledPair(stall: Stall): [Duplex, Duplex] {
  const [client, broker] = duplexPair();
  Object.defineProperty(broker, 'writableLength', { get: () => (stall.on ? stall.queued : 0) });
  return [client, broker];
}

function connectOver(broker: Broker, peer: PeerIdentity, options: mqtt.IClientOptions & { stall?: Stall }) {
  const { stall, ...clientOptions } = options;
  return new Promise<MqttClient>((resolve, reject) => {
    const client = new mqtt.MqttClient(
      () => {
        const [clientSide, brokerSide] = stall ? stalledPair(stall) : duplexPair();
        broker.connectStream(brokerSide, peer);
        return clientSide;
      },
      { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...clientOptions },
    );
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

async function harness(overrides: Partial<BrokerDeps> = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(testTmpDir(), 'bulwark-broker-apps-'));
  const events = fakeEvents();
  let accessListener: ((deviceId?: string) => void) | undefined;
  const clients: MqttClient[] = [];
  const listenerTls = serverTls(dir);
  const h: Harness = {
    ca: listenerTls.ca,
    broker: await createBroker({
      tls: listenerTls,
      port: 0,
      logger: createLogger('silent'),
      events: events.bus,
      firewall: createFirewall(),
      onAccessChange: (listener) => ((accessListener = listener), () => undefined),
      retained: {
        retain: () => ({ ok: true, stored: Promise.resolve() }),
        match: () => [],
      },
      checkConnection: ({ certCn, certSerial }) =>
        Promise.resolve(
          certSerial === 'AA'
            ? { ok: true, kind: 'app', app: 'billing', serial: 'AA' }
            : { ok: true, deviceId: certCn ?? '', group: null, serial: certSerial ?? '' },
        ),
      accessFor: ({ deviceId }) => Promise.resolve(access(deviceId, [`devices/${deviceId}/`])),
      checkApp,
      accessForApp: ({ app }) => {
        h.appAccessCalls += 1;
        return Promise.resolve(access(app, ['devices/', `apps/${app}/`]));
      },
      ...overrides,
    }),
    events,
    accessChanged: (deviceId) => accessListener?.(deviceId),
    appAccessCalls: 0,
    async device(id) {
      const peer = {
        remoteAddress: '10.0.0.2',
        cn: id,
        serial: `S-${id}`,
        subject: { CN: id },
        anonymous: false,
      };
      const client = await connectOver(h.broker, peer, { clientId: id });
      clients.push(client);
      return client;
    },
    async app(clientId, o = {}) {
      const peer = {
        remoteAddress: '10.0.0.3',
        cn: undefined,
        serial: undefined,
        subject: {},
        anonymous: false,
        password: true,
      };
      const client = await connectOver(h.broker, peer, {
        clientId,
        username: clientId.split('/')[0],
        password: o.password ?? 'secret-1',
        stall: o.stall,
        ...(o.clean === undefined ? {} : { clean: o.clean }),
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) c.end(true);
      await h.broker.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

const closed = (c: MqttClient) =>
  new Promise<void>((resolve) => (c.connected ? c.once('close', () => resolve()) : resolve()));
const until = async (what: string, check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
const refusalOf = (err: unknown) => (err as { code?: number }).code;

describe('broker: applications', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('admits an app by its token (no certificate), as a principal of its own', async () => {
    h = await harness();
    await h.app('billing');
    const connected = h.events.ofType('mqtt.connected').at(-1);
    expect(connected).toMatchObject({
      actor: 'app:billing',
      subject: 'app:billing',
      data: { certSerial: 'token:tok-1' },
    });
    expect(h.broker.connectedDevices()).toEqual([]);
    expect(h.broker.sessionCount()).toBe(1);
  });

  it('refuses a wrong token, a foreign client id, and no credentials at all (CONNACK 5, recorded)', async () => {
    h = await harness();
    await expect(h.app('billing', { password: 'wrong' }).catch(refusalOf)).resolves.toBe(5);
    await expect(h.app('payroll').catch(refusalOf)).resolves.toBe(5);
    const peer = {
      remoteAddress: '10.0.0.3',
      cn: undefined,
      serial: undefined,
      subject: {},
      anonymous: false,
      password: true,
    };
    await expect(connectOver(h.broker, peer, { clientId: 'billing' }).catch(refusalOf)).resolves.toBe(5);
    expect(h.events.ofType('mqtt.connect_refused').map((e) => e.data)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ reason: 'no client certificate and no app credentials', returnCode: 5 }),
        expect.objectContaining({ reason: 'bad token' }),
      ]),
    );
  });

  it('identifies an app certificate through the apps check, never as a device', async () => {
    h = await harness();
    const peer = {
      remoteAddress: '10.0.0.4',
      cn: 'billing',
      serial: 'AA',
      subject: { CN: 'billing', OU: 'bulwark-apps' },
      anonymous: false,
    };
    await connectOver(h.broker, peer, { clientId: 'billing/worker-1' });
    expect(h.events.ofType('mqtt.connected').at(-1)).toMatchObject({
      subject: 'app:billing',
      data: { certSerial: 'AA' },
    });
    expect(h.broker.connectedDevices()).toEqual([]);
  });

  it('keeps several instances at once; a second connection with one client id takes the first over', async () => {
    h = await harness();
    const a = await h.app('billing/a');
    const b = await h.app('billing/b');
    expect(h.broker.sessionCount()).toBe(2);
    const a2 = await h.app('billing/a');
    await closed(a);
    expect(b.connected && a2.connected).toBe(true);
    expect(h.broker.sessionCount()).toBe(2);
  });

  it('ends every session of a revoked app, and only the sessions of a revoked token', async () => {
    h = await harness();
    const one = await h.app('billing/one', { password: 'secret-1' });
    const two = await h.app('billing/two', { password: 'secret-2' });
    const device = await h.device('pump-1');
    await h.events.bus.emit({
      type: 'app.token_revoked',
      actor: 'cli',
      subject: 'app:billing',
      data: { tokenId: 'tok-1' },
    });
    await closed(one);
    expect(two.connected).toBe(true);
    await h.events.bus.emit({
      type: 'app.revoked',
      actor: 'cli',
      subject: 'app:billing',
      data: { revokedCertificates: [], revokedTokens: 1 },
    });
    await closed(two);
    expect(device.connected).toBe(true);
    expect(h.events.ofType('mqtt.session_dropped').map((e) => [e.subject, e.data])).toEqual([
      ['app:billing', expect.objectContaining({ reason: 'token revoked' })],
      ['app:billing', expect.objectContaining({ reason: 'app revoked' })],
    ]);
    // The fake apps check still admits. Over the in-memory connection the new check can start in the very
    // millisecond of the revocation, which the guard cannot order and refuses ("app revoked while connecting",
    // blocked at or after the start): a client retries.
    let again: MqttClient | undefined;
    for (let attempt = 0; attempt < 5 && !again; attempt++)
      again = await h.app('billing/one', { password: 'secret-2' }).catch(async () => {
        await new Promise((r) => setTimeout(r, 200));
        return undefined;
      });
    expect(again?.connected).toBe(true);
  });

  it('recompiles app sessions on any access change', async () => {
    h = await harness();
    await h.app('billing');
    const before = h.appAccessCalls;
    h.accessChanged('pump-1');
    await until('the recompile', () => h?.appAccessCalls === before + 1);
  });

  it('recompiles an updated app with its fresh facts, and drops its sessions when it is gone', async () => {
    const seen: (string | null)[] = [];
    let facts: { zone: string | null; purpose: string | null } | undefined = {
      zone: 'plant-b',
      purpose: 'operations',
    };
    h = await harness({
      appFacts: () => Promise.resolve(facts),
      accessForApp: ({ app, zone }) => {
        seen.push(zone);
        return Promise.resolve(access(app));
      },
    });
    const app = await h.app('billing');
    const changed = {
      type: 'app.updated' as const,
      actor: 'cli',
      subject: 'app:billing',
      data: { changes: { zone: 'plant-b' } },
    };
    await h.events.bus.emit(changed);
    await until('the recompile', () => seen.length === 2);
    expect(seen).toEqual([null, 'plant-b']);
    facts = undefined;
    await h.events.bus.emit(changed);
    await closed(app);
  });

  it('drops an updated app whose facts cannot be read (a deleted app: not_found), failing closed', async () => {
    h = await harness({
      appFacts: () => Promise.reject(Object.assign(new Error('unknown app billing'), { code: 'not_found' })),
    });
    const app = await h.app('billing');
    await h.events.bus.emit({
      type: 'app.updated',
      actor: 'cli',
      subject: 'app:billing',
      data: { changes: { zone: 'plant-b' } },
    });
    await closed(app);
    expect(h.events.ofType('mqtt.session_dropped').at(-1)?.data.reason).toBe('app could not be read');
  });

  it('splits a shared subscription between its members, each message once; a plain subscriber gets them all', async () => {
    h = await harness();
    const [a, b, plain] = [await h.app('billing/a'), await h.app('billing/b'), await h.app('billing/c')];
    const got = { a: [] as string[], b: [] as string[], plain: [] as string[] };
    a.on('message', (_t, p) => got.a.push(p.toString()));
    b.on('message', (_t, p) => got.b.push(p.toString()));
    plain.on('message', (_t, p) => got.plain.push(p.toString()));
    await a.subscribeAsync('$share/g/devices/+/telemetry', { qos: 1 });
    await b.subscribeAsync('$share/g/devices/+/telemetry', { qos: 1 });
    await plain.subscribeAsync('devices/+/telemetry', { qos: 1 });
    const device = await h.device('pump-1');
    for (let i = 0; i < 10; i++) await device.publishAsync('devices/pump-1/telemetry', `m${i}`, { qos: 1 });
    await until('every message', () => got.a.length + got.b.length === 10 && got.plain.length === 10);
    expect([...got.a, ...got.b].sort()).toEqual([...got.plain].sort());
    expect(got.a.length).toBe(5);
    expect(got.b.length).toBe(5);
    // A member that leaves no longer gets any.
    await a.unsubscribeAsync('$share/g/devices/+/telemetry');
    await device.publishAsync('devices/pump-1/telemetry', 'after', { qos: 1 });
    await until('the last message', () => got.b.includes('after'));
    expect(got.a).not.toContain('after');
  });

  it('authorizes the inner filter of a shared subscription (0x80 and an event when refused)', async () => {
    h = await harness();
    const a = await h.app('billing');
    const suback = new Promise<unknown>((resolve) =>
      a.on('packetreceive', (packet) => packet.cmd === 'suback' && resolve(packet.granted)),
    );
    // mqtt.js reports a refused filter as an error; the SUBACK itself is what is checked.
    a.subscribe(['$share/g/other/#', '$share//x', '$share/g/devices/+/telemetry'], () => undefined);
    expect(await suback).toEqual([128, 128, 0]);
    expect(h.events.ofType('mqtt.subscribe_denied').map((e) => [e.subject, e.data])).toEqual([
      ['app:billing', { topic: '$share/g/other/#', reason: 'no_matching_statement' }],
      ['app:billing', { topic: '$share//x', reason: 'malformed shared subscription' }],
    ]);
  });

  it('records an app command to a device (device.command_sent via mqtt) and delivers it', async () => {
    h = await harness();
    const device = await h.device('pump-1');
    await device.subscribeAsync('devices/pump-1/commands/+');
    const received = new Promise<string>((resolve) => device.once('message', (topic) => resolve(topic)));
    const app = await h.app('billing');
    const expiresAt = Date.now() + 60_000;
    const request = { id: 'cmd-42', issuedBy: 'app:billing', issuedAt: Date.now(), expiresAt };
    await app.publishAsync('devices/pump-1/commands/reboot', JSON.stringify(request), { qos: 1 });
    expect(await received).toBe('devices/pump-1/commands/reboot');
    const sent = h.events.ofType('device.command_sent');
    expect(sent.map((e) => [e.actor, e.subject])).toEqual([['app:billing', 'device:pump-1']]);
    expect(sent[0]?.data).toMatchObject({ commandId: 'cmd-42', name: 'reboot', via: 'mqtt', expiresAt });
  });

  it('refuses an app command that is retained, malformed, issued by another, never or too late expiring, and any app publish of a result', async () => {
    h = await harness();
    const device = await h.device('pump-1');
    const received: string[] = [];
    device.on('message', (_topic, payload) => received.push(payload.toString()));
    await device.subscribeAsync('devices/pump-1/commands/+');
    const good = () => ({
      id: 'c-1',
      issuedBy: 'app:billing',
      issuedAt: Date.now(),
      expiresAt: Date.now() + 60_000,
    });
    const attempts: [string, string | Record<string, unknown>, { retain?: boolean }?][] = [
      ['devices/pump-1/commands/reboot', good(), { retain: true }],
      ['devices/pump-1/commands/reboot', 'not json'],
      ['devices/pump-1/commands/reboot', { id: 'c-2', issuedBy: 'app:billing' }],
      ['devices/pump-1/commands/reboot', { ...good(), issuedBy: 'user:alice' }],
      ['devices/pump-1/commands/reboot', { ...good(), expiresAt: null }],
      ['devices/pump-1/commands/reboot', { ...good(), expiresAt: Date.now() + 11 * 60_000 }],
      ['devices/pump-1/commands/reboot/result', { id: 'c-1', status: 'ok' }],
    ];
    for (const [topic, payload, options] of attempts) {
      const app = await h.app('billing');
      const closedNow = closed(app);
      app.publish(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), {
        qos: 1,
        retain: options?.retain ?? false,
      });
      await closedNow;
    }
    const denied = h.events.ofType('mqtt.publish_denied').map((e) => [e.subject, e.data.reason]);
    expect(denied).toEqual([
      ['app:billing', 'app command must not be retained'],
      ['app:billing', 'app command is not a command request (not JSON)'],
      ['app:billing', 'app command is not a valid command request'],
      ['app:billing', 'app command must be issued by app:billing'],
      ['app:billing', 'app command must expire within 10 minutes'],
      ['app:billing', 'app command must expire within 10 minutes'],
      ['app:billing', 'command results come from the device only'],
    ]);
    expect(h.events.ofType('device.command_sent')).toEqual([]);
    expect(h.broker.stats().publishDenied).toContainEqual(['app_command_refused', 7]);
    // The device's own result still goes through.
    await device.publishAsync('devices/pump-1/commands/reboot/result', '{"id":"c-1","status":"ok"}', {
      qos: 1,
    });
    expect(device.connected).toBe(true);
    expect(received).toEqual([]);
  });

  it('ends an app session when its token expires (one sweep per broker), with the reason', async () => {
    h = await harness({ expirySweepMs: 50 });
    expiry['tok-3'] = Date.now() + 400;
    const expiring = await h.app('billing/e', { password: 'secret-3' });
    const lasting = await h.app('billing/l', { password: 'secret-1' });
    await closed(expiring);
    expect(lasting.connected).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(expiry['tok-3']);
    expect(h.events.ofType('mqtt.session_dropped').map((e) => [e.subject, e.data])).toEqual([
      ['app:billing', { reason: 'credential expired', trigger: 'expiry' }],
    ]);
  });

  it('ends an app certificate session at the certificate notAfter', async () => {
    h = await harness({ expirySweepMs: 50 });
    const peer = {
      remoteAddress: '10.0.0.4',
      cn: 'billing',
      serial: 'AA',
      subject: { CN: 'billing', OU: 'bulwark-apps' },
      anonymous: false,
      notAfter: Date.now() + 300,
    };
    const app = await connectOver(h.broker, peer, { clientId: 'billing/cert' });
    await closed(app);
    expect(h.events.ofType('mqtt.session_dropped').at(-1)?.data.reason).toBe('credential expired');
  });

  it('refuses an app that asks for a persistent session (clean session 0), recorded; devices unaffected', async () => {
    h = await harness();
    await expect(h.app('billing/p', { clean: false }).catch(refusalOf)).resolves.toBe(5);
    expect(h.events.ofType('mqtt.connect_refused').at(-1)?.data).toMatchObject({
      reason: 'apps must connect with a clean session: Bulwark keeps no offline queue for apps',
      returnCode: 5,
    });
    expect(h.broker.sessionCount()).toBe(0);
    const peer = {
      remoteAddress: '10.0.0.2',
      cn: 'pump-7',
      serial: 'S-7',
      subject: { CN: 'pump-7' },
      anonymous: false,
    };
    const device = await connectOver(h.broker, peer, { clientId: 'pump-7', clean: false });
    expect(device.connected).toBe(true);
  });

  it('keeps share groups apart by principal: a device with the same group name takes nothing from the app', async () => {
    h = await harness();
    const app = await h.app('billing/a');
    const device = await h.device('pump-2');
    const got = { app: [] as string[], device: [] as string[] };
    app.on('message', (_t, p) => got.app.push(p.toString()));
    device.on('message', (_t, p) => got.device.push(p.toString()));
    await app.subscribeAsync('$share/g/devices/pump-2/telemetry', { qos: 1 });
    await device.subscribeAsync('$share/g/devices/pump-2/telemetry', { qos: 1 });
    for (let i = 0; i < 6; i++) await device.publishAsync('devices/pump-2/telemetry', `m${i}`, { qos: 1 });
    await until('every message to both', () => got.app.length === 6 && got.device.length === 6);
    await app.unsubscribeAsync('$share/g/devices/pump-2/telemetry');
    await device.publishAsync('devices/pump-2/telemetry', 'after', { qos: 1 });
    await until('the device copy', () => got.device.includes('after'));
    expect(got.app).not.toContain('after');
  });

  it('counts deliveries per app; drops (and records once) what a backed-up connection cannot take, devices unaffected', async () => {
    h = await harness({ limits: { appQueueBytes: 4096 } });
    const stall: Stall = { on: false, queued: 10_000 };
    const fast = await h.app('billing/fast');
    await fast.subscribeAsync('devices/+/telemetry', { qos: 0 });
    let fastGot = 0;
    fast.on('message', () => (fastGot += 1));
    const slow = await h.app('billing/slow', { stall });
    await slow.subscribeAsync('devices/+/telemetry', { qos: 0 });
    const device = await h.device('pump-1');
    await device.publishAsync('devices/pump-1/telemetry', 'x'.repeat(100), { qos: 1 });
    await until('the first deliveries', () => h?.broker.appDeliveryStats()[0]?.messages === 2);
    stall.on = true;
    for (let i = 0; i < 20; i++)
      await device.publishAsync('devices/pump-1/telemetry', 'y'.repeat(1000), { qos: 1 });
    // The slow instance's copies are dropped; the other instance (and the device) carry on.
    await until('the drops', () => h?.broker.appDeliveryStats()[0]?.dropped === 20 && fastGot === 21);
    expect(h.broker.appDeliveryStats()).toEqual([
      {
        app: 'billing',
        messages: 22,
        bytes: 2 * 100 + 20 * 1000,
        dropped: 20,
        queuedBytes: 10_000,
        connections: 2,
      },
    ]);
    await until('the drop event', () => h?.events.ofType('app.delivery_dropped').length === 1);
    // Prometheus reads the same figures, one series per app.
    const metrics = createMetricsRegistry({
      broker: () => h?.broker.stats() ?? { sessions: 0 },
      monitor: () => ({
        devices: 0,
        messagesSent: 0,
        bytesSent: 0,
        messagesReceived: 0,
        bytesReceived: 0,
        raised: [],
        responses: 0,
        responseFailures: 0,
        tickSeconds: 0,
      }),
      alerts: () => Promise.resolve([]),
      audit: () => Promise.resolve({ seq: 0 }),
    });
    const { body } = await metrics.expose();
    expect(body).toMatch(/^bulwark_app_delivered_messages_total\{app="billing"\} 22$/m);
    expect(body).toMatch(/^bulwark_app_dropped_messages_total\{app="billing"\} 20$/m);
    expect(body).toMatch(/^bulwark_app_queued_bytes\{app="billing"\} 10000$/m);
    expect(h.events.ofType('app.delivery_dropped')[0]).toMatchObject({
      subject: 'app:billing',
      data: { clientId: 'billing/slow', windowMs: 10_000 },
    });
  });
});

describe('broker: the TLS listener and app credentials', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const connectTls = (port: number, ca: string, options: mqtt.IClientOptions) =>
    mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {
      ca,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options,
    });

  it('admits a TLS client without a certificate that authenticates with app credentials at CONNECT', async () => {
    h = await harness();
    const port = await h.broker.listen();
    const { ca } = h;
    const client = await connectTls(port, ca, {
      clientId: 'billing/tls',
      username: 'billing',
      password: 'secret-1',
    });
    expect(h.events.ofType('mqtt.connected').at(-1)).toMatchObject({ subject: 'app:billing' });
    await client.endAsync();
    await expect(connectTls(port, ca, { clientId: 'billing' }).catch(refusalOf)).resolves.toBe(5);
    await until(
      'the refusal',
      () =>
        h?.events
          .ofType('mqtt.connect_refused')
          .some((e) => e.data.reason === 'no client certificate and no app credentials') ?? false,
    );
  });

  it('refuses a client without a certificate at the handshake when mqtt.appPasswords is off', async () => {
    h = await harness({ appPasswords: false });
    const port = await h.broker.listen();
    const { ca } = h;
    // Closed right after the handshake, before any MQTT is read.
    const socket = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('close', resolve));
    await until('the handshake failure', () => h?.events.ofType('tls.handshake_failed').length === 1);
  });
});
