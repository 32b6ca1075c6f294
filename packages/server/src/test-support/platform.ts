/**
 * The in-process platform for tests that are about the API and the services, not about the wire: the
 * whole platform (every service, the HTTP apps, the broker) without a single socket. HTTP goes through
 * Fastify's `app.inject()`, MQTT through an mqtt.js client joined to the broker by an in-memory stream pair.
 * Tests about what crosses the wire (TLS, mutual TLS, EST, real MQTT clients, the CLI in a child process)
 * keep the real server: `startTestServer` in server.ts.
 *
 * @example
 * ```ts
 * const t = await createTestPlatform();
 * const admin = await t.signIn('admin');
 * const res = await t.app.inject({ method: 'GET', url: '/api/v1/devices', headers: admin.headers });
 * const device = await enrollInProcess(t, 'pump-1');
 * const client = await t.mqtt(device);
 * await t.close();
 * ```
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import mqtt, { type MqttClient } from 'mqtt';
import { testConfig, type Config } from '../config/index.ts';
import type { PeerIdentity } from '../broker/index.ts';
import { createHttpApp, type RouteEntry } from '../http/index.ts';
import { createLogger } from '../logger.ts';
import { createServerPlatform, startBackground, type Platform, type ServerPlatform } from '../platform.ts';
import { SESSION_COOKIE } from '../users/index.ts';
import { bulwarkCli, type CliResult } from './cli.ts';
import { testTmpDir } from './tmp.ts';

export type TestRole = 'admin' | 'security-officer' | 'operator' | 'auditor' | 'viewer';

/** Headers that authenticate an `app.inject()` request. */
export interface TestCredentials {
  username: string;
  headers: Record<string, string>;
}

export interface TestPlatformOptions {
  /** Settings over the test defaults, as `testConfig` takes them (`'auth.stepUpWindow': 1000`). */
  overrides?: Record<string, unknown>;
  /** The platform's clock (tests that move time forward). */
  now?: () => number;
  /**
   * Start the background work (default true): bans loaded, the monitor, device session state, rollouts,
   * notification delivery, the audit-log tail. Never a listener.
   */
  background?: boolean;
}

export interface TestPlatform {
  platform: ServerPlatform;
  config: Config;
  dataDir: string;
  /** The HTTPS API app, ready for `inject()` (no TLS socket). */
  app: FastifyInstance;
  /** The device listener's app (EST re-enrollment, the TUF repository), ready for `inject()`. */
  deviceApp: FastifyInstance;
  /** Every route of the API with its declared access. */
  routes: RouteEntry[];
  /**
   * A new user of `role` signed in with an API token (`Authorization: Bearer`): an account made as a person
   * would (set-up secret, password, TOTP enrolment where the role needs it), then a token.
   */
  signIn(role?: TestRole, options?: { username?: string; groups?: string[] }): Promise<TestCredentials>;
  /** Like signIn, but a browser session: the session cookie and the CSRF token writes need. */
  signInSession(
    role?: TestRole,
    options?: { username?: string; groups?: string[] },
  ): Promise<TestCredentials>;
  /**
   * An mqtt.js client connected to the broker through an in-memory stream, presenting `device`'s certificate
   * as the TLS layer would (its CN and serial): it goes through every connect stage like a real client.
   */
  mqtt(device: { id: string; cert: string }, options?: mqtt.IClientOptions): Promise<MqttClient>;
  /**
   * An mqtt.js client of an app connected through an in-memory stream as a TLS client without a certificate:
   * user name = the app of `clientId` (`NAME` or `NAME/<instance>`), password = its token.
   */
  mqttApp(app: { clientId: string; token: string }, options?: mqtt.IClientOptions): Promise<MqttClient>;
  /** Runs the real `bulwark` CLI in a child process against this platform's data directory. */
  cli(args: string[]): Promise<CliResult>;
  /** Stops the platform and removes its data directory. */
  close(): Promise<void>;
}

/** The platform of startTestServer without its listeners; see the module comment. */
export async function createTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const dataDir = mkdtempSync(path.join(testTmpDir(), 'bulwark-platform-'));
  const config = testConfig({
    dataDir,
    logLevel: 'silent',
    // Events from the CLI's processes reach the platform within this (tests wait on them).
    'events.tailInterval': 25,
    // Tests attach the profiles they test; the shipped default is tested on its own (quarantine-hold).
    'monitor.defaultProfile': false,
    // Every in-memory client comes from 127.0.0.1: per-address limits are raised as in startTestServer.
    'firewall.connectRate': 10_000,
    'firewall.connectBurst': 10_000,
    'firewall.failureThreshold': 10_000,
    'firewall.flapThreshold': 10_000,
    ...options.overrides,
  });
  const platform = await createServerPlatform(config, {
    logger: createLogger(config.logLevel),
    ...(options.now ? { now: options.now } : {}),
  });
  const stopBackground = options.background === false ? undefined : await startBackground(platform);
  let users = 0;
  const nextName = (role: string) => `${role.replace(/-/g, '')}${++users}`;
  let closed = false;
  return {
    platform,
    config,
    dataDir,
    app: platform.http.app,
    deviceApp: platform.http.deviceApp,
    routes: platform.http.routes,
    async signIn(role = 'admin', o = {}) {
      const username = o.username ?? nextName(role);
      const token = await apiToken({ platform }, username, role, o.groups);
      return { username, headers: { authorization: `Bearer ${token}` } };
    },
    async signInSession(role = 'admin', o = {}) {
      const username = o.username ?? nextName(role);
      const session = await signedInSession({ platform }, username, role, o.groups);
      return {
        username,
        headers: { cookie: `${SESSION_COOKIE}=${session.id}`, 'x-csrf-token': session.csrfToken },
      };
    },
    mqtt: (device, clientOptions) => connectInMemory(platform, device, clientOptions),
    mqttApp: (app, clientOptions) =>
      connectStreamClient(
        platform,
        {
          remoteAddress: '127.0.0.1',
          cn: undefined,
          serial: undefined,
          subject: {},
          anonymous: false,
          password: true,
        },
        {
          clientId: app.clientId,
          username: app.clientId.split('/')[0],
          password: app.token,
          ...clientOptions,
        },
      ),
    cli: (args) => bulwarkCli(dataDir, args),
    async close() {
      if (closed) return;
      closed = true;
      await stopBackground?.();
      await platform.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const passwordOf = (role: string) => `Correct-Horse-Battery-${role.length}-42-staple`;

/**
 * A user of `role` signed in through the services as a person would through the API: set-up secret,
 * password, then TOTP enrolment for roles that need a second factor. Returns the session (id and CSRF token).
 */
export async function signedInSession(
  s: { platform: Platform },
  username: string,
  role: TestRole = 'admin',
  groups?: string[],
): Promise<{ id: string; csrfToken: string }> {
  const { totpCode } = await import('../users/index.ts');
  const users = s.platform.users;
  const { setupSecret } = await users.create({ username, role, groups }, 'test');
  const ticket = await users.completeSetup({
    username,
    setupSecret,
    password: passwordOf(role),
    address: '127.0.0.1',
  });
  const principal = await users.resolveSession(ticket.id);
  if (!principal) throw new Error(`no session for ${username}`);
  if (principal.sessionState === 'active') return { id: ticket.id, csrfToken: ticket.csrfToken };
  const { secret } = await users.beginTotp(principal);
  const { session } = await users.confirmTotp(principal, totpCode(secret, Date.now()), '127.0.0.1');
  if (!session) throw new Error(`TOTP enrolment of ${username} gave no session`);
  return { id: session.id, csrfToken: session.csrfToken };
}

/**
 * A user of `role` with an API token (Authorization: Bearer), made through the services as a person would
 * through the API: a signed-in session (signedInSession), then a token.
 */
export async function apiToken(
  s: { platform: Platform },
  username: string,
  role: TestRole = 'admin',
  groups?: string[],
): Promise<string> {
  const users = s.platform.users;
  const session = await signedInSession(s, username, role, groups);
  const principal = await users.resolveSession(session.id);
  if (!principal) throw new Error(`no session for ${username}`);
  const { token } = await users.createToken(principal, { name: `${username}-token`, expiresInMs: 3_600_000 });
  return token;
}

/** Two connected in-memory streams: what one side writes, the other reads; ending or destroying one ends both. */
export function duplexPair(): [Duplex, Duplex] {
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        other().push(chunk);
        callback();
      },
      final(callback) {
        other().push(null);
        callback();
      },
      destroy(err, callback) {
        const peer = other();
        if (!peer.destroyed) peer.destroy();
        callback(err);
      },
    });
  const a = make(() => b);
  const b = make(() => a);
  return [a, b];
}

/** An mqtt.js client (MQTT 3.1.1, no reconnect) on one end of a stream pair, the broker with `peer` on the other. */
function connectStreamClient(
  platform: ServerPlatform,
  peer: PeerIdentity,
  options: mqtt.IClientOptions,
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = new mqtt.MqttClient(
      () => {
        const [clientSide, brokerSide] = duplexPair();
        platform.broker.connectStream(brokerSide, peer);
        return clientSide;
      },
      { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options },
    );
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

/**
 * An mqtt.js client (MQTT 3.1.1, no reconnect) on one end of a stream pair, the broker on the other with
 * the peer identity a TLS handshake with `device`'s certificate gives (CN and serial, as Node reports them).
 */
export function connectInMemory(
  platform: ServerPlatform,
  device: { id: string; cert: string },
  options: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  const certificate = new X509Certificate(device.cert);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(certificate.subject)?.[1];
  return new Promise((resolve, reject) => {
    const client = new mqtt.MqttClient(
      () => {
        const [clientSide, brokerSide] = duplexPair();
        platform.broker.connectStream(brokerSide, {
          remoteAddress: '127.0.0.1',
          cn,
          serial: certificate.serialNumber,
          subject: cn === undefined ? {} : { CN: cn },
          anonymous: false,
        });
        return clientSide;
      },
      {
        clientId: device.id,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ...options,
      },
    );
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

/**
 * An HTTPS app of its own for route tests (the platform's session guard and problem handlers, the platform's
 * server certificate), over the test platform's users; register the routes under test on it.
 */
export async function routeTestApp(t: TestPlatform): Promise<FastifyInstance> {
  const server = (await t.platform.pki()).serverTls();
  const { app } = await createHttpApp({
    tls: { key: server.keyPem, cert: server.certPem, handshakeTimeoutMs: 5000 },
    logger: createLogger('silent'),
    version: 'test',
    guard: { users: t.platform.users },
  });
  return app;
}
