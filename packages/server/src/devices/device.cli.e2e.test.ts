import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, httpsRequest } from '../test-support/clients.ts';
import {
  apiToken,
  BULWARK_BIN,
  enrollInProcess,
  startTestServer,
  type TestServer,
} from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

interface DeviceJson {
  id: string;
  group: string | null;
  state: string;
  status: string;
  attributes: Record<string, string>;
  online: boolean;
  lastSeenAt: number | null;
  connectedSince: number | null;
  certificateExpiresAt: number | null;
  firmwareVersion: string | null;
  zone: string | null;
  recentDenials?: { type: string; topic: string | null; reason: string }[];
}

/** Issue 12: what an operator sees about a device, and a CLI that covers what the API does. */
describe('operating devices from the CLI', () => {
  let s: TestServer;
  let ca: string;
  const clients: MqttClient[] = [];
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await s.cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`bulwark ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  beforeAll(async () => {
    s = await startTestServer();
    ca = (await s.platform.pki()).chainPem();
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await s.stop();
  });

  it('shows state, online, last seen, certificate expiry, firmware and zone, and why a publish went nowhere', async () => {
    const zoneFile = path.join(s.dataDir, 'plant-a.yaml');
    writeFileSync(zoneFile, 'name: plant-a\nsecurityLevel: 2\nmembers: { groups: [plant-a] }\n');
    expect((await s.cli(['zone', 'put', '--file', zoneFile])).code).toBe(0);
    const creds = await enrollInProcess(s, 'pump-1', 'plant-a');
    const notAfter = Date.parse(new X509Certificate(creds.cert).validTo);

    const before = await json<DeviceJson>(['device', 'show', 'pump-1']);
    expect(before).toMatchObject({ state: 'active', online: false, lastSeenAt: null, zone: 'plant-a' });
    // X.509 validity is in whole seconds (RFC 5280 §4.1.2.5); the stored notAfter is the same instant.
    expect(Math.floor(before.certificateExpiresAt! / 1000)).toBe(Math.floor(notAfter / 1000));

    const client = await connectMqtt(s.mqttUrl, ca, creds);
    client.on('error', () => undefined);
    clients.push(client);
    await client.publishAsync(
      'devices/pump-1/firmware/state',
      JSON.stringify({
        hardwareId: 'pump-v2',
        target: null,
        version: '1.4.2',
        securityVersion: 3,
        ts: Date.now(),
      }),
      { qos: 1 },
    );
    const online = await waitFor('pump-1 online with its firmware', async () => {
      const [d] = await s.platform.devices.views([await s.platform.devices.get('pump-1')]);
      return d?.online && d.firmwareVersion === '1.4.2' ? d : undefined;
    });
    expect(online.lastSeenAt).toBeGreaterThan(0);
    const listed = await json<DeviceJson[]>(['device', 'list']);
    expect(listed).toEqual([
      expect.objectContaining({
        id: 'pump-1',
        state: 'active',
        online: true,
        firmwareVersion: '1.4.2',
        zone: 'plant-a',
        certificateExpiresAt: before.certificateExpiresAt,
      }),
    ]);
    const table = (await s.cli(['device', 'list'])).stdout;
    expect(table).toMatch(/^ID\s+GROUP\s+STATUS\s+ONLINE\s+LAST SEEN\s+CERT EXPIRES\s+FIRMWARE\s+ZONE/);
    expect(table).toMatch(/pump-1\s+plant-a\s+active\s+yes\s+now\s+in \d+d\s+1\.4\.2\s+plant-a/);

    // A publish outside its rights: QoS 0 "succeeds" on the client, the broker drops it and closes the
    // connection [MQTT-3.3.5-2]. `device show` says why.
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('devices/pump-2/commands', 'open valve', { qos: 0 });
    await closed;
    await waitFor('pump-1 offline', async () =>
      (await s.platform.devices.get('pump-1')).online ? undefined : true,
    );
    const shown = await s.cli(['device', 'show', 'pump-1']);
    expect(shown.stdout).toMatch(/online\s+no/);
    expect(shown.stdout).toMatch(/publish denied\s+devices\/pump-2\/commands\s+cross_zone_no_conduit/);
    const after = await json<DeviceJson>(['device', 'show', 'pump-1']);
    expect(after.lastSeenAt).toBeGreaterThanOrEqual(online.lastSeenAt!);
    expect(after.recentDenials).toEqual([
      {
        at: expect.any(Number) as number,
        type: 'mqtt.publish_denied',
        topic: 'devices/pump-2/commands',
        reason: 'cross_zone_no_conduit',
      },
    ]);

    // The same through the API.
    const token = await apiToken(s, 'viewer-1', 'viewer');
    const res = await httpsRequest(`${s.httpsUrl}/api/v1/devices/pump-1`, {
      ca,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({
      state: 'active',
      online: false,
      zone: 'plant-a',
      firmwareVersion: '1.4.2',
      recentDenials: [{ topic: 'devices/pump-2/commands' }],
    });
    await s.platform.access.setQuarantine('pump-1', { quarantined: true }, 'test');
    const q = await httpsRequest(`${s.httpsUrl}/api/v1/devices?state=quarantined`, {
      ca,
      headers: { authorization: `Bearer ${token}` },
    });
    expect((JSON.parse(q.body) as { devices: DeviceJson[] }).devices.map((d) => [d.id, d.state])).toEqual([
      ['pump-1', 'quarantined'],
    ]);
    const bad = await s.cli(['device', 'list', '--status', 'sleeping']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(
      /^bulwark: state must be one of registered, active, disabled, revoked, decommissioned, lost, quarantined/,
    );
  }, 120_000);

  it('sets and removes attributes and moves groups; a bad name changes nothing', async () => {
    await s.platform.devices.add({ id: 'valve-1', group: 'plant-a' }, 'test');
    const set = await json<DeviceJson>([
      'device',
      'update',
      'valve-1',
      '--attr',
      'line=l1',
      '--attr',
      'site=north',
      '--group',
      'plant-b',
    ]);
    expect(set).toMatchObject({ group: 'plant-b', attributes: { line: 'l1', site: 'north' } });
    const removed = await json<DeviceJson>([
      'device',
      'update',
      'valve-1',
      '--attr',
      'site=',
      '--unset-attr',
      'line',
      '--attr',
      'model=v2',
    ]);
    expect(removed.attributes).toEqual({ model: 'v2' });
    const refused = await s.cli(['device', 'update', 'valve-1', '--attr', '9bad=x', '--attr', 'ok=1']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toMatch(/^bulwark: attribute name "9bad" must start with a letter/);
    expect((await s.platform.devices.get('valve-1')).attributes).toEqual({ model: 'v2' });
    // Every change is an event naming what changed; the refused one left none.
    const updated = await s.platform.audit.query({
      type: 'device.updated',
      subject: 'device:valve-1',
      limit: 10,
    });
    expect(updated.map((e) => e.data.changes)).toEqual([
      { group: 'plant-b', attributes: { line: 'l1', site: 'north' } },
      { attributes: { model: 'v2' } },
    ]);
  }, 60_000);

  it('imports devices from CSV: a token per good row, bad rows named by line and not created', async () => {
    const file = path.join(s.dataDir, 'fleet.csv');
    writeFileSync(
      file,
      [
        'id,group,attr.line,attr.note',
        'imp-1,plant-a,l1,plain',
        'imp-2,,l2,"quoted, with comma and ""quotes"""',
        'a/b,plant-a,l1,bad id',
        'imp-3,plant-a,l3',
        'pump-1,plant-a,l1,exists',
        'imp-4,plant-a,"l4",x',
        '',
      ].join('\r\n'),
    );
    const r = await s.cli(['device', 'import', file, '--ttl', '2h', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'bulwark: 3 of 6 rows not imported (line 4, 5, 6); the other rows were added',
    );
    const results = JSON.parse(r.stdout) as {
      line: number;
      id: string;
      ok: boolean;
      token?: string;
      error?: string;
    }[];
    expect(results.map((x) => [x.line, x.id, x.ok])).toEqual([
      [2, 'imp-1', true],
      [3, 'imp-2', true],
      [4, 'a/b', false],
      [5, 'imp-3', false],
      [6, 'pump-1', false],
      [7, 'imp-4', true],
    ]);
    expect(results[2]!.error).toMatch(/device id/);
    expect(results[3]!.error).toBe('3 fields where the header has 4');
    expect(results[4]!.error).toBe('device pump-1 already exists');
    // Each token enrolls its own device (checked without using it up), and the attributes came with it.
    for (const x of results.filter((y) => y.ok)) {
      expect(x.token).toMatch(/^bwk_/);
      await expect(s.platform.devices.checkToken(x.id, x.token!)).resolves.toMatchObject({
        device: { id: x.id },
      });
    }
    expect((await s.platform.devices.get('imp-2')).attributes).toEqual({
      line: 'l2',
      note: 'quoted, with comma and "quotes"',
    });
    expect(await s.platform.devices.find('imp-3')).toBeUndefined();

    // A file whose structure is in doubt is refused as a whole.
    const broken = path.join(s.dataDir, 'broken.csv');
    writeFileSync(broken, 'id,group\nimp-9,a\nimp-10,"open\n');
    const b = await s.cli(['device', 'import', broken]);
    expect(b.code).toBe(1);
    expect(b.stderr.trim()).toMatch(/^bulwark: not valid CSV: Quote Not Closed: .* at line 3$/);
    expect(await s.platform.devices.find('imp-9')).toBeUndefined();
  }, 60_000);

  it('creates, lists and revokes API tokens that the API honours', async () => {
    await apiToken(s, 'alice', 'operator');
    const created = await json<{ id: string; token: string; role: string }>([
      'token',
      'create',
      '--user',
      'alice',
      '--name',
      'ci',
      '--role',
      'viewer',
      '--expires',
      '7d',
    ]);
    expect(created.token).toMatch(/^bwt_/);
    expect(created.role).toBe('viewer');
    const get = () =>
      httpsRequest(`${s.httpsUrl}/api/v1/devices`, {
        ca,
        headers: { authorization: `Bearer ${created.token}` },
      });
    expect((await get()).status).toBe(200);
    const listed = await json<{ id: string; name: string; revoked: boolean }[]>([
      'token',
      'list',
      '--user',
      'alice',
    ]);
    expect(listed.find((t) => t.id === created.id)).toMatchObject({ name: 'ci', revoked: false });
    expect((await s.cli(['token', 'revoke', created.id, '--user', 'alice'])).code).toBe(0);
    expect((await get()).status).toBe(401);
    const tooMuch = await s.cli(['token', 'create', '--user', 'alice', '--name', 'x', '--role', 'admin']);
    expect(tooMuch.code).toBe(1);
    expect(tooMuch.stderr.trim()).toMatch(/^bulwark: a token cannot have more rights than its creator/);
    await s.platform.users.create({ username: 'bob', role: 'viewer' }, 'test');
    const pending = await s.cli(['token', 'create', '--user', 'bob', '--name', 'x']);
    expect(pending.stderr.trim()).toBe('bulwark: user bob has not finished setup (no password yet)');
  }, 60_000);

  it('lists the audit log by type, subject and time, and follows it', async () => {
    const added = await json<{ type: string; subject: string }[]>([
      'audit-log',
      'list',
      '--type',
      'device.added',
      '--subject',
      'device:imp-1',
      '--since',
      '1h',
    ]);
    expect(added.map((e) => [e.type, e.subject])).toEqual([['device.added', 'device:imp-1']]);
    const several = await json<{ type: string }[]>([
      'audit-log',
      'list',
      '--type',
      'device.added,device.updated',
      '--limit',
      '3',
    ]);
    expect(several).toHaveLength(3);
    for (const e of several) expect(['device.added', 'device.updated']).toContain(e.type);
    expect(
      await json<unknown[]>(['audit-log', 'list', '--type', 'device.added', '--since', '2099-01-01']),
    ).toEqual([]);
    const bad = await s.cli(['audit-log', 'list', '--type', 'device.exploded']);
    expect(bad.stderr.trim()).toMatch(/^bulwark: --type "device.exploded" is not an event type/);
    const since = await s.cli(['audit-log', 'list', '--since', 'yesterday']);
    expect(since.stderr.trim()).toMatch(/^bulwark: --since "yesterday" must be a duration/);

    // --follow: a new matching entry appears on standard output as a JSON line.
    const child = spawn(
      process.execPath,
      [
        BULWARK_BIN,
        'audit-log',
        'list',
        '--type',
        'device.added',
        '--limit',
        '1',
        '--follow',
        '--json',
        '--data',
        s.dataDir,
      ],
      { env: { ...process.env, BULWARK_LOG_LEVEL: 'error' } },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor('the latest entry', () =>
        Promise.resolve(out.includes('"device.added"') ? true : undefined),
      );
      await s.platform.devices.add({ id: 'late-1' }, 'test');
      const line = await waitFor('the followed entry', () =>
        Promise.resolve(out.split('\n').find((l) => l.includes('"device:late-1"'))),
      );
      expect(JSON.parse(line)).toMatchObject({ type: 'device.added', subject: 'device:late-1' });
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
  }, 60_000);
});
