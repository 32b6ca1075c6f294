/**
 * MQTT 5 enhanced authentication (§4.12) on the running server: an app authenticates with the method
 * `bulwark-app-token` and its token as Authentication Data (the same apps check and refusals as user name and
 * password), any other method and any certificate holder naming one get CONNACK 0x8C, and a
 * re-authentication (AUTH 0x19) moves a live session onto a new token of its app: its expiry and its
 * revocation are the new token's. mqtt.js 5 over TLS without a client certificate; AUTH 0x19 written as a
 * raw packet on its stream (mqtt.js has no call for it).
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IConnackPacket, type MqttClient, type Packet } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, type EventType } from '../events/index.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

const METHOD = 'bulwark-app-token';

describe('broker: MQTT 5 enhanced authentication (bulwark-app-token)', () => {
  let s: TestServer;
  let ca: string;
  const open: MqttClient[] = [];

  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
    const { apps } = s.platform;
    for (const name of ['reporting', 'billing'])
      await apps.add({ name, purpose: 'analytics.reporting', grants: [] }, 'test');
  }, 60_000);

  afterAll(async () => {
    for (const c of open) c.end(true);
    await s?.stop();
  });

  const token = (app: string, ttlMs?: number) => s.platform.apps.createToken(app, { ttlMs }, 'test');

  const recorded = async <T extends EventType>(type: T, subject: string) =>
    entriesOf(await s.platform.audit.readAfter(0, 5000), type).filter((e) => e.subject === subject);

  /** An mqtt.js MQTT 5 client; resolves with its CONNACK, refused or not. */
  function connect5(options: mqtt.IClientOptions) {
    return new Promise<{ client: MqttClient; connack: IConnackPacket }>((resolve, reject) => {
      const client = mqtt.connect(s.mqttUrl, {
        ca,
        protocolVersion: 5,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ...options,
      });
      open.push(client);
      client.on('packetreceive', (packet) => {
        if (packet.cmd === 'connack') resolve({ client, connack: packet });
      });
      client.on('error', () => undefined); // a refused CONNACK is what some tests look at
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
  }

  /** An app by its token as `bulwark-app-token` Authentication Data (no user name unless given). */
  const connectWithMethod = (clientId: string, data: string, extra: mqtt.IClientOptions = {}) =>
    connect5({
      clientId,
      ...extra,
      properties: {
        authenticationMethod: METHOD,
        authenticationData: Buffer.from(data),
        ...extra.properties,
      },
    });

  /** The next packet of one of these kinds the client receives. */
  const next = (client: MqttClient, cmds: Packet['cmd'][]) =>
    new Promise<Packet>((resolve) => {
      const on = (packet: Packet) => {
        if (!cmds.includes(packet.cmd)) return;
        client.off('packetreceive', on);
        resolve(packet);
      };
      client.on('packetreceive', on);
    });

  /** AUTH 0x19 [MQTT-4.12.1-1] with the method and data; resolves with the server's AUTH or DISCONNECT. */
  function reauthenticate(client: MqttClient, data: string, method = METHOD): Promise<Packet> {
    const answer = next(client, ['auth', 'disconnect']);
    const properties = { authenticationMethod: method, authenticationData: Buffer.from(data) };
    client.stream.write(
      mqttPacket.generate({ cmd: 'auth', reasonCode: 0x19, properties }, { protocolVersion: 5 }),
    );
    return answer;
  }

  /** The session is live and served: a message on its own subtree comes back through it. */
  async function served(client: MqttClient, app: string): Promise<void> {
    const topic = `apps/${app}/responses/ping`;
    const granted = await client.subscribeAsync(topic, { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await client.publishAsync(topic, 'ping', { qos: 1 });
    expect(await got).toBe('ping');
    await client.unsubscribeAsync(topic);
  }

  const closed = (c: MqttClient) =>
    new Promise<void>((resolve) => (c.connected ? c.once('close', () => resolve()) : resolve()));

  it('[MQTT-4.12.0-5] authenticates an app by its token as Authentication Data, with or without its user name; CONNACK echoes the method', async () => {
    const { token: secret } = await token('reporting');
    const bare = await connectWithMethod('reporting/a', secret);
    expect(bare.connack.reasonCode).toBe(0);
    expect(bare.connack.properties?.authenticationMethod).toBe(METHOD);
    await served(bare.client, 'reporting');
    const named = await connectWithMethod('reporting/b', secret, { username: 'reporting' });
    expect(named.connack.reasonCode).toBe(0);
    expect(named.connack.properties?.authenticationMethod).toBe(METHOD);
    await served(named.client, 'reporting');
    const connected = await recorded('mqtt.connected', 'app:reporting');
    expect(connected.length).toBeGreaterThanOrEqual(2);
    bare.client.end(true);
    named.client.end(true);
  });

  it('refuses what the password path refuses, with its reason codes and events', async () => {
    const revoked = await token('reporting');
    await s.platform.apps.revokeToken('reporting', revoked.id, 'test');
    const ofBilling = await token('billing');
    const cases: [string, string, mqtt.IClientOptions][] = [
      ['a wrong token', 'bwa_wrong', {}],
      ['a revoked token', revoked.token, {}],
      ['a token of another app', ofBilling.token, {}],
      ['the user name of another app', (await token('reporting')).token, { username: 'billing' }],
    ];
    for (const [what, secret, extra] of cases) {
      // The same credentials as user name and password: the method path answers as that path does.
      const viaPassword = await connect5({
        clientId: 'reporting/x',
        username: extra.username ?? 'reporting',
        password: secret,
      });
      const viaMethod = await connectWithMethod('reporting/x', secret, extra);
      expect(viaMethod.connack.reasonCode, what).toBe(viaPassword.connack.reasonCode);
      expect(viaMethod.connack.reasonCode, what).toBe(0x87);
      expect(viaMethod.connack.properties?.reasonString, what).toBe(
        viaPassword.connack.properties?.reasonString,
      );
      expect(viaMethod.connack.properties?.authenticationMethod, what).toBeUndefined();
    }
    // A client id that is no app's: 0x85, as with a password.
    const notAnApp = await connectWithMethod('no such app!', ofBilling.token);
    expect(notAnApp.connack.reasonCode).toBe(0x85);
    // The token twice (password and Authentication Data): 0x86.
    const twice = await connectWithMethod('billing', ofBilling.token, {
      username: 'billing',
      password: ofBilling.token,
    });
    expect(twice.connack.reasonCode).toBe(0x86);
    const reasons = (await s.platform.audit.readAfter(0, 5000))
      .filter((e) => e.type === 'mqtt.connect_refused')
      .map((e) => (e.data as { reason: string }).reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        'not a token of app reporting',
        `token ${revoked.id} is revoked`,
        `a password and ${METHOD}: send the app token once, as Authentication Data`,
      ]),
    );
    // No refusal reason holds a token.
    expect(reasons.some((r) => r.includes('bwa_'))).toBe(false);
  });

  it('[MQTT-4.12.0-1] refuses any other method, and any method from a device (its certificate is its only credential), with 0x8C', async () => {
    const { token: secret } = await token('reporting');
    const other = await connect5({
      clientId: 'reporting/m',
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(secret) },
    });
    expect(other.connack.reasonCode).toBe(0x8c);
    expect(other.connack.properties?.reasonString).toBe(
      `authentication method not supported (${METHOD} only)`,
    );

    const device = await enrollInProcess(s, 'meter-1');
    const withMethod = await connect5({
      clientId: device.id,
      key: device.key,
      cert: device.cert,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(secret) },
    });
    expect(withMethod.connack.reasonCode).toBe(0x8c);
    // Without one, the device connects as always.
    const plain = await connect5({ clientId: device.id, key: device.key, cert: device.cert });
    expect(plain.connack.reasonCode).toBe(0);
    plain.client.end(true);

    const refused = await recorded('mqtt.connect_refused', 'device:meter-1');
    expect(refused.map((e) => e.data.reason)).toContain(
      `${METHOD} is for apps without a client certificate: a certificate is the only credential of its holder`,
    );
    const anonymous = entriesOf(await s.platform.audit.readAfter(0, 5000), 'mqtt.connect_refused');
    expect(anonymous.map((e) => e.data.reason)).toContain(
      `authentication method not supported (${METHOD} only)`,
    );
  });

  it("[MQTT-4.12.1-1] re-authentication moves the session onto the new token: past the first one's expiry, and revoking the old one no longer ends it, the new one does", async () => {
    const first = await token('reporting', 3000);
    const second = await token('reporting', 60_000);
    const renewed = await connectWithMethod('reporting/renewed', first.token);
    // The control: the same first token, not renewed.
    const control = await connectWithMethod('reporting/control', first.token);
    expect([renewed.connack.reasonCode, control.connack.reasonCode]).toEqual([0, 0]);

    const answer = await reauthenticate(renewed.client, second.token);
    expect(answer).toMatchObject({
      cmd: 'auth',
      reasonCode: 0,
      properties: { authenticationMethod: METHOD },
    });
    const events = await recorded('mqtt.reauthenticated', 'app:reporting');
    expect(events.map((e) => [e.actor, e.data])).toEqual([
      ['app:reporting', { clientId: 'reporting/renewed', tokenId: second.id }],
    ]);

    // The first token's expiry passes (and the sweep, every second): the control ends, the renewed stays.
    await closed(control.client);
    expect(Date.now()).toBeGreaterThanOrEqual(first.expiresAt ?? 0);
    await new Promise((r) => setTimeout(r, 1500));
    expect(renewed.client.connected).toBe(true);
    await served(renewed.client, 'reporting');

    // Once renewed again, revoking the token it held (now the old one) does not end it; the new one's does.
    const third = await token('reporting');
    expect(await reauthenticate(renewed.client, third.token)).toMatchObject({ cmd: 'auth', reasonCode: 0 });
    await s.platform.apps.revokeToken('reporting', second.id, 'test');
    await new Promise((r) => setTimeout(r, 500));
    expect(renewed.client.connected).toBe(true);
    await served(renewed.client, 'reporting');
    const disconnect = next(renewed.client, ['disconnect']);
    await s.platform.apps.revokeToken('reporting', third.id, 'test');
    expect(await disconnect).toMatchObject({ cmd: 'disconnect', reasonCode: 0x87 });
    await closed(renewed.client);
    await expect
      .poll(async () => (await recorded('mqtt.session_dropped', 'app:reporting')).map((e) => e.data.reason))
      .toEqual(expect.arrayContaining(['credential expired', 'token revoked']));
  }, 30_000);

  it('[MQTT-4.12.1-2] a re-authentication with a token of another app, a revoked or expired one, ends the connection with DISCONNECT 0x87; another method with 0x82; each recorded', async () => {
    const ofBilling = await token('billing');
    const revoked = await token('reporting');
    await s.platform.apps.revokeToken('reporting', revoked.id, 'test');
    const expired = await token('reporting', 500);
    await new Promise((r) => setTimeout(r, 600));
    const cases: [string, string, string, number, string][] = [
      ['r1', ofBilling.token, METHOD, 0x87, 're-authentication refused: not a token of app reporting'],
      ['r2', revoked.token, METHOD, 0x87, `re-authentication refused: token ${revoked.id} is revoked`],
      ['r3', expired.token, METHOD, 0x87, `re-authentication refused: token ${expired.id} has expired`],
      [
        'r4',
        (await token('reporting')).token,
        'SCRAM-SHA-256',
        0x82,
        're-authentication refused: AUTH without the CONNECT authentication method',
      ],
    ];
    for (const [instance, secret, method, code, reason] of cases) {
      const { token: current } = await token('reporting');
      const { client, connack } = await connectWithMethod(`reporting/${instance}`, current);
      expect(connack.reasonCode).toBe(0);
      expect(await reauthenticate(client, secret, method), reason).toMatchObject({
        cmd: 'disconnect',
        reasonCode: code,
      });
      await closed(client);
      await expect
        .poll(async () => (await recorded('mqtt.connect_refused', 'app:reporting')).map((e) => e.data.reason))
        .toContain(reason);
    }
    expect(await recorded('mqtt.reauthenticated', 'app:billing')).toEqual([]);
  });
});
