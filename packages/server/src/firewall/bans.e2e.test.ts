import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, exec, httpsRequest, rawMqtt, workDir } from '../test-support/clients.ts';
import { createTestStore, testPostgresUrl, type TestStore } from '../test-support/dialects.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

/** The documented defaults (test-support raises the per-address ones; this suite is about them). */
const defaultFirewall = {
  'firewall.connectRate': 20,
  'firewall.connectBurst': 50,
  'firewall.maxConnectionsPerAddress': 200,
  'firewall.failureThreshold': 10,
  'firewall.flapThreshold': 20,
  'firewall.takeoverThreshold': 5,
  'firewall.banDuration': '10m',
};

const connect = (clientId: string) => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId,
  keepalive: 30,
});

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+(?=.)/, '');

interface BanRow {
  id: string;
  kind: string;
  value: string;
  reason: string;
  origin: string;
  rule: string | null;
  expiresAt: number | null;
  active: boolean;
}

/** A TLS handshake with a certificate from a CA the broker does not trust; resolves once it is closed. */
function foreignHandshake(port: number, ca: string, key: string, cert: string): Promise<'closed'> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, key, cert });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve('closed'));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

/** Connects once; 'connected' or the reason it did not (a refused CONNECT, a reset at TCP accept). */
const tryConnect = (s: TestServer, ca: string, d: { id: string; key: string; cert: string }) =>
  connectMqtt(s.mqttUrl, ca, d).then(
    async (c) => (await c.endAsync(true), 'connected'),
    (err: Error) => `refused: ${err.message}`,
  );

describe('bans behind a shared address, with the default limits', () => {
  let s: TestServer;
  let ca: string;
  let token: string;
  beforeAll(async () => {
    s = await startTestServer(defaultFirewall);
    ca = readFileSync(s.caFile, 'utf8');
    token = await apiToken(s, 'ban-admin');
  });
  afterAll(async () => s?.stop());

  const bansFromCli = async () => {
    const listed = await s.cli(['ban', 'list', '--json']);
    expect(listed.code).toBe(0);
    return JSON.parse(listed.stdout) as BanRow[];
  };

  it('a valid device behind an address others misbehave from still connects; the offending certificate is banned, listed, alerted and lifted', async () => {
    const dir = workDir();
    const keyFile = path.join(dir, 'intruder.key');
    const certFile = path.join(dir, 'intruder.pem');
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-subj',
      '/CN=nat-valid',
      '-days',
      '1',
    ]);
    const foreign = { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
    const confused = await enrollInProcess(s, 'nat-confused');
    const valid = await enrollInProcess(s, 'nat-valid');

    // 25 handshakes with a certificate of a foreign CA, all from 127.0.0.1 …
    for (let i = 0; i < 25; i++)
      expect(await foreignHandshake(s.server.mqttPort, ca, foreign.key, foreign.cert)).toBe('closed');
    // … and 25 CONNECTs whose client id is not the certificate's device id: 0x02, then 0x05 once banned.
    const codes: number[] = [];
    for (let i = 0; i < 25; i++) {
      const r = await rawMqtt(
        s.server.mqttPort,
        { ca, key: confused.key, cert: confused.cert },
        [connect('someone-else')],
        200,
      );
      const connack = r.packets.find((p) => p.cmd === 'connack') as { returnCode?: number } | undefined;
      codes.push(connack?.returnCode ?? -1);
    }
    expect(codes.slice(0, 10)).toEqual(Array(10).fill(2));
    expect(codes.slice(-5)).toEqual(Array(5).fill(5));

    // A third device, valid, from the same address: in within 5 s.
    await expect.poll(() => tryConnect(s, ca, valid), { timeout: 5000, interval: 100 }).toBe('connected');

    // The ban is on the certificate that kept failing, not on the address; listed with origin and expiry.
    const serial = serialOf(confused.cert);
    const bans = await bansFromCli();
    expect(bans.filter((b) => b.kind === 'address')).toEqual([]);
    const ban = bans.find((b) => b.kind === 'certificate' && b.value === serial);
    expect(ban).toMatchObject({
      origin: 'automatic',
      rule: 'refused_connects',
      active: true,
      reason: expect.stringMatching(/10 refused connects/) as unknown,
    });
    expect(ban!.expiresAt).toBeGreaterThan(Date.now());
    const api = await httpsRequest(`${s.httpsUrl}/api/v1/bans`, {
      ca,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(api.status).toBe(200);
    expect(JSON.parse(api.body)).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: ban!.id, origin: 'automatic' })]),
    );
    // Banned even with the right client id; an alert names it.
    expect(await tryConnect(s, ca, confused)).toMatch(/refused/);
    await expect
      .poll(async () =>
        (await s.platform.monitor.alerts.list({ detector: 'firewall_ban' })).map((a) => [
          a.subject,
          a.status,
        ]),
      )
      .toContainEqual([`certificate:${serial}`, 'open']);

    // `bulwark ban remove` lifts it: the device is back (and the alert is resolved).
    expect((await s.cli(['ban', 'remove', ban!.id])).code).toBe(0);
    await expect.poll(() => tryConnect(s, ca, confused), { timeout: 10_000 }).toBe('connected');
    expect((await bansFromCli()).some((b) => b.id === ban!.id)).toBe(false);
    await expect
      .poll(async () =>
        (await s.platform.monitor.alerts.list({ detector: 'firewall_ban', status: ['resolved'] })).map(
          (a) => a.subject,
        ),
      )
      .toContain(`certificate:${serial}`);
  });

  it('the CLI bans a certificate by serial, and refuses bad input with a one-line reason', async () => {
    const d = await enrollInProcess(s, 'cli-cert-1');
    const bad = await s.cli(['ban', 'add', '--certificate', 'not-hex', '--reason', 'x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^bulwark: value must be a certificate serial in hex.*\n$/);
    const both = await s.cli(['ban', 'add', '--device', 'a', '--address', '10.0.0.1', '--reason', 'x']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/exactly one of --address, --device or --certificate/);
    const serial = new X509Certificate(d.cert).serialNumber; // upper case, as Node and openssl print it
    const added = await s.cli(['ban', 'add', '--certificate', serial, '--reason', 'key leaked', '--json']);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({
      kind: 'certificate',
      value: serialOf(d.cert),
      origin: 'manual',
    });
    await expect.poll(() => tryConnect(s, ca, d)).toMatch(/refused/);
    const table = await s.cli(['ban', 'list']);
    expect(table.stdout).toMatch(
      new RegExp(`certificate\\s+${serialOf(d.cert)}\\s+key leaked\\s+manual\\s+never\\s+yes`),
    );
  });

  it('two agents with one certificate: a cloned-identity alert and a ban of that device only', async () => {
    const twin = await enrollInProcess(s, 'twin-1');
    const neighbour = await enrollInProcess(s, 'twin-neighbour');
    const agents: MqttClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        // The second agent takes the session over; the first reconnects and takes it back, and so on.
        const agent = await connectMqtt(s.mqttUrl, ca, twin, { reconnectPeriod: 200 });
        agent.on('error', () => undefined); // refused once banned; they keep trying, as agents do
        agents.push(agent);
      }
      await expect
        .poll(
          async () =>
            (await s.platform.monitor.alerts.list({ detector: 'cloned_identity', deviceId: 'twin-1' }))
              .length,
          { timeout: 30_000 },
        )
        .toBe(1);
    } finally {
      for (const a of agents) await a.endAsync(true);
    }
    const bans = await bansFromCli();
    const ban = bans.find((b) => b.kind === 'device' && b.value === 'twin-1');
    expect(ban).toMatchObject({ origin: 'automatic', rule: 'cloned_identity', active: true });
    expect(bans.filter((b) => b.kind === 'address')).toEqual([]);
    const [alert] = await s.platform.monitor.alerts.list({ detector: 'cloned_identity', deviceId: 'twin-1' });
    expect(alert).toMatchObject({ severity: 'critical', evidence: { addresses: ['127.0.0.1'] } });
    // Only that identity: its neighbour at the same address connects, the twin does not.
    expect(await tryConnect(s, ca, neighbour)).toBe('connected');
    expect(await tryConnect(s, ca, twin)).toMatch(/refused/);
    expect((await s.cli(['ban', 'remove', ban!.id])).code).toBe(0);
    await expect.poll(() => tryConnect(s, ca, twin), { timeout: 10_000 }).toBe('connected');
  });
});

describe('a ban that expires', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ 'monitor.saveInterval': 300 });
  });
  afterAll(async () => s?.stop());

  it('stays listed as inactive, and its alert is resolved', async () => {
    const added = await s.cli(['ban', 'add', '--device', 'brief-1', '--reason', 'cool down', '--ttl', '3s']);
    expect(added.code).toBe(0);
    const alerts = () =>
      s.platform.monitor.alerts.list({ detector: 'firewall_ban', status: ['open', 'resolved'] });
    await expect.poll(async () => (await alerts()).map((a) => a.status)).toEqual(['open']);
    await expect
      .poll(async () => (await alerts()).map((a) => [a.status, a.resolution]), { timeout: 20_000 })
      .toEqual([['resolved', 'ban expired']]);
    const listed = JSON.parse((await s.cli(['ban', 'list', '--json'])).stdout) as BanRow[];
    expect(listed).toEqual([expect.objectContaining({ value: 'brief-1', origin: 'manual', active: false })]);
  });
});

describe.skipIf(!testPostgresUrl)('bans are shared by the nodes of one store (PostgreSQL)', () => {
  let db: TestStore;
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    db = await createTestStore('postgres');
    const masterKey = randomBytes(32).toString('hex');
    const url = db.location.url!;
    a = await startTestServer({ ...defaultFirewall, 'database.url': url, masterKey });
    b = await startTestServer({ ...defaultFirewall, 'database.url': url, masterKey });
  }, 120_000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.cleanup();
  });

  it('an automatic ban on one node is enforced and listed on the other, and lifted there', async () => {
    const caA = readFileSync(a.caFile, 'utf8');
    const caB = readFileSync(b.caFile, 'utf8');
    const roam = await enrollInProcess(a, 'roam-1');
    expect(await tryConnect(b, caB, roam)).toBe('connected');
    for (let i = 0; i < 10; i++)
      await rawMqtt(a.server.mqttPort, { ca: caA, key: roam.key, cert: roam.cert }, [connect('wrong')], 100);
    // Node b learns of it from the audit-log tail.
    await expect.poll(() => tryConnect(b, caB, roam), { timeout: 10_000 }).toMatch(/refused/);
    const token = await apiToken(b, 'ban-admin-b');
    const list = await httpsRequest(`${b.httpsUrl}/api/v1/bans`, {
      ca: caB,
      headers: { authorization: `Bearer ${token}` },
    });
    const ban = (JSON.parse(list.body) as BanRow[]).find((x) => x.value === serialOf(roam.cert));
    expect(ban).toMatchObject({ kind: 'certificate', origin: 'automatic', rule: 'refused_connects' });
    const removed = await httpsRequest(`${b.httpsUrl}/api/v1/bans/${ban!.id}`, {
      method: 'DELETE',
      ca: caB,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(removed.status).toBe(204);
    await expect.poll(() => tryConnect(a, caA, roam), { timeout: 10_000 }).toBe('connected');
  });
});
