import type { MqttClient } from 'mqtt';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, exec, rawMqtt, workDir } from '../test-support/clients.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

type Creds = { id: string; key: string; cert: string };
type Case = [
  device: string,
  action: 'publish' | 'subscribe' | 'connect',
  topic: string,
  allowed: boolean,
  why: string,
];

/**
 * Policies, zones, conduits and quarantine against the running broker with real TLS connections: each
 * case connects as the device and tries the action (PUBACK or a closed connection; SUBACK code; CONNACK).
 */
describe('policy engine and segmentation on the live broker', () => {
  let s: TestServer;
  let ca: string;
  const creds = new Map<string, Creds>();
  const dir = workDir();

  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
    const access = s.platform.access;
    await access.putZone(
      {
        name: 'plant-a',
        securityLevel: 2,
        members: { groups: ['plant-a'] },
        addresses: ['10.1.0.0/16', 'fd00:a::/64'],
      },
      'test',
    );
    await access.putZone(
      {
        name: 'scada',
        securityLevel: 3,
        members: { groups: ['scada'] },
        addresses: ['10.2.0.0/16', '10.2.1.0/24'],
      } /* overlapping ranges */,
      'test',
    );
    await access.putConduit(
      {
        name: 'telemetry-up',
        from: 'plant-a',
        to: 'scada',
        topics: ['devices/+/telemetry'],
        direction: 'one-way',
        ports: [8883],
      },
      'test',
    );
    const policies: [string, object, string][] = [
      [
        'plant-shared',
        {
          statements: [
            {
              sid: 'zone-ns',
              effect: 'allow',
              actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
              resources: ['zones/${device.zone}/#'],
            },
          ],
        },
        'zone:plant-a',
      ],
      [
        'scada-ops',
        {
          statements: [
            {
              sid: 'zone-ns',
              effect: 'allow',
              actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
              resources: ['zones/${device.zone}/#'],
            },
            {
              sid: 'read-telemetry',
              effect: 'allow',
              actions: ['mqtt:subscribe', 'mqtt:receive'],
              resources: ['devices/+/telemetry'],
            },
          ],
        },
        'zone:scada',
      ],
      [
        'lines',
        {
          statements: [
            {
              sid: 'line-status',
              effect: 'allow',
              actions: ['mqtt:publish'],
              resources: ['lines/${device.attr.line}/status'],
            },
          ],
        },
        'group:plant-a',
      ],
      [
        'no-firmware-writes',
        {
          statements: [
            {
              sid: 'deny-firmware',
              effect: 'deny',
              actions: ['mqtt:publish'],
              resources: ['devices/${device.id}/firmware/#'],
            },
          ],
        },
        'all',
      ],
      [
        'lab-only',
        {
          statements: [
            {
              sid: 'not-from-loopback',
              effect: 'deny',
              actions: ['mqtt:connect'],
              conditions: { sourceAddress: ['127.0.0.0/8', '::1'] },
            },
          ],
        },
        'device:blocked-dev',
      ],
    ];
    for (const [name, doc, target] of policies) {
      await access.putPolicy(name, { version: '2026-11', ...doc }, 'test');
      const [kind = 'all', t = '*'] = target.split(':');
      await access.attach(name, { kind, target: t }, 'test');
    }
    const devices: [string, string | null, Record<string, string>][] = [
      ['pump-1', 'plant-a', { line: 'l1' }],
      ['pump-2', 'plant-a', { line: '+' }],
      ['pump-3', 'plant-a', { line: 'a/b' }],
      ['pump-4', 'plant-a', { line: '..' }],
      ['pump-5', 'plant-a', { line: 'ｌ1' }], // fullwidth l
      ['pump-6', 'plant-a', { line: '#' }],
      ['scada-1', 'scada', {}],
      ['lonely', null, {}],
      ['q-dev', 'plant-a', {}],
      ['blocked-dev', null, {}],
      ['live-1', 'plant-a', {}],
    ];
    for (const [id, group, attributes] of devices) {
      creds.set(id, await enrollInProcess(s, id, group ?? undefined));
      if (Object.keys(attributes).length) await s.platform.devices.update(id, { attributes }, 'test');
    }
    await access.setQuarantine('q-dev', { quarantined: true, reason: 'suspicious' }, 'test');
  });
  afterAll(async () => s?.stop());

  /** A QoS 1 publish that gives up after 300 ms (mqtt.js keeps it pending once the broker closed the socket). */
  const tryPublish = (client: MqttClient, topic: string) =>
    Promise.race([
      client.publishAsync(topic, 'x', { qos: 1 }).catch(() => undefined),
      new Promise((r) => setTimeout(r, 300)),
    ]);

  const connectPacket = (id: string) => ({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: id,
    keepalive: 30,
  });

  async function attempt(device: string, action: Case[1], topic: string): Promise<boolean> {
    const c = creds.get(device)!;
    const tls = { ca, key: c.key, cert: c.cert };
    if (action === 'connect') {
      const r = await rawMqtt(s.server.mqttPort, tls, [connectPacket(device)], 300);
      return (r.packets[0] as { returnCode?: number } | undefined)?.returnCode === 0;
    }
    if (action === 'publish') {
      const r = await rawMqtt(
        s.server.mqttPort,
        tls,
        [connectPacket(device), { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 1 }],
        300,
      );
      return r.packets.some((p) => p.cmd === 'puback');
    }
    const r = await rawMqtt(
      s.server.mqttPort,
      tls,
      [connectPacket(device), { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic, qos: 1 }] }],
      300,
    );
    const suback = r.packets.find((p) => p.cmd === 'suback') as { granted: number[] } | undefined;
    return suback !== undefined && suback.granted[0] !== 128;
  }

  const cases: Case[] = [
    ['pump-1', 'publish', 'devices/pump-1/telemetry', true, 'own subtree'],
    ['pump-1', 'publish', 'devices/pump-1', true, 'own root level'],
    ['pump-1', 'publish', 'devices/pump-1/a/b/c', true, 'deep own subtree'],
    [
      'pump-1',
      'publish',
      'devices/pump-1/..',
      true,
      '".." is a plain level in MQTT, still inside the subtree',
    ],
    ['pump-1', 'publish', 'devices/pump-2/telemetry', false, 'another device, same zone'],
    ['pump-1', 'publish', 'devices/pump-10/telemetry', false, 'id prefix is not a subtree'],
    ['pump-1', 'publish', 'devices/pump-/x', false, 'truncated id'],
    ['pump-1', 'publish', 'devices/scada-1/commands', false, 'another zone without conduit'],
    ['pump-1', 'publish', '$SYS/broker/load', false, '$SYS'],
    ['pump-1', 'publish', '$share/g/devices/pump-1/x', false, '$share as a topic'],
    ['pump-1', 'publish', 'devices/pump-1/firmware/image', false, 'deny wins over allow'],
    ['pump-1', 'publish', 'zones/plant-a/shared', true, 'own zone namespace'],
    ['pump-1', 'publish', 'zones/scada/shared', false, 'other zone namespace'],
    ['pump-1', 'publish', 'lines/l1/status', true, 'attribute variable'],
    ['pump-1', 'publish', 'lines/l2/status', false, 'another line'],
    ['pump-1', 'publish', '/devices/pump-1/x', false, 'leading slash is another tree'],
    ['pump-1', 'publish', 'devices//telemetry', false, 'empty id level'],
    ['pump-1', 'publish', 'DEVICES/pump-1/x', false, 'topics are case-sensitive'],
    ['pump-1', 'publish', 'devices/ｐump-1/x', false, 'fullwidth look-alike in the id'],
    ['pump-1', 'publish', 'devices/pump-1／x', false, 'fullwidth solidus is not a separator'],
    ['pump-1', 'publish', 'devices/+/telemetry', false, 'wildcard in a PUBLISH'],
    ['pump-1', 'publish', 'devices/pump-1/#', false, 'multi-level wildcard in a PUBLISH'],
    ['pump-1', 'subscribe', 'devices/pump-1/#', true, 'own subtree'],
    ['pump-1', 'subscribe', 'devices/pump-1/+', true, 'own single level'],
    ['pump-1', 'subscribe', 'devices/pump-1/firmware/#', true, 'the deny is for publish only'],
    ['pump-1', 'subscribe', 'devices/+/telemetry', false, 'wildcard across devices'],
    ['pump-1', 'subscribe', 'devices/#', false, 'everything under devices'],
    ['pump-1', 'subscribe', '#', false, 'everything'],
    ['pump-1', 'subscribe', '+/+', false, 'two-level wildcard'],
    ['pump-1', 'subscribe', '+/pump-1/#', false, 'wildcard root'],
    ['pump-1', 'subscribe', '$SYS/#', false, '$SYS'],
    // Shared subscriptions (issue 14): the inner filter is authorized like any filter, so no escape.
    ['pump-1', 'subscribe', '$share/g/devices/pump-1/#', true, 'shared subscription of its own subtree'],
    ['pump-1', 'subscribe', '$share/g/devices/pump-2/#', false, 'shared subscription escape'],
    ['pump-1', 'subscribe', '$share/g/#', false, 'shared subscription escape'],
    ['pump-1', 'subscribe', 'devices/pump-2/#', false, 'another device'],
    ['pump-1', 'subscribe', 'devices/scada-1/#', false, 'another zone'],
    ['pump-1', 'subscribe', 'zones/plant-a/#', true, 'own zone namespace'],
    ['pump-1', 'subscribe', 'zones/scada/#', false, 'other zone namespace'],
    ['pump-1', 'subscribe', 'zones/+/#', false, 'all zones'],
    ['pump-1', 'subscribe', 'lines/l1/status', false, 'publish right only'],
    ['pump-2', 'publish', 'devices/pump-2/telemetry', true, 'own subtree'],
    ['pump-2', 'publish', 'lines/x/status', false, 'attribute "+" drops the statement'],
    ['pump-2', 'publish', 'lines/+/status', false, 'attribute "+" cannot become a wildcard'],
    ['pump-2', 'publish', 'zones/plant-a/shared', true, 'zone namespace'],
    ['pump-3', 'publish', 'lines/a/b/status', false, 'attribute with "/" cannot add levels'],
    ['pump-3', 'publish', 'lines/a', false, 'attribute with "/"'],
    ['pump-4', 'publish', 'lines/../status', false, 'attribute ".." drops the statement'],
    ['pump-5', 'publish', 'lines/ｌ1/status', false, 'unicode look-alike attribute drops the statement'],
    ['pump-6', 'subscribe', 'lines/#', false, 'attribute "#" cannot become a wildcard'],
    ['scada-1', 'subscribe', 'devices/pump-1/telemetry', true, 'through the conduit plant-a → scada'],
    ['scada-1', 'subscribe', 'devices/pump-1/commands', false, 'topic not carried by the conduit'],
    ['scada-1', 'subscribe', 'devices/pump-1/#', false, 'broader than the conduit'],
    ['scada-1', 'publish', 'devices/pump-1/telemetry', false, 'conduit is one-way'],
    ['scada-1', 'subscribe', 'devices/+/telemetry', false, 'wildcard across zones'],
    ['scada-1', 'subscribe', 'devices/lonely/telemetry', false, 'unzoned device has no conduit'],
    ['scada-1', 'subscribe', 'zones/scada/#', true, 'own zone namespace'],
    ['scada-1', 'publish', 'zones/scada/alarm', true, 'own zone namespace'],
    ['scada-1', 'subscribe', 'zones/plant-a/#', false, 'other zone namespace'],
    ['lonely', 'publish', 'devices/lonely/x', true, 'own subtree without a zone'],
    ['lonely', 'subscribe', 'zones/plant-a/#', false, 'zone namespace from outside'],
    ['lonely', 'publish', 'zones/scada/x', false, 'zone namespace from outside'],
    ['lonely', 'subscribe', 'devices/pump-1/telemetry', false, 'zoned device from outside'],
    ['q-dev', 'publish', 'devices/q-dev/telemetry', false, 'quarantined'],
    ['q-dev', 'publish', 'devices/q-dev/quarantine/report', true, 'quarantine subtree'],
    ['q-dev', 'subscribe', 'devices/q-dev/commands/+', true, 'command topics'],
    ['q-dev', 'subscribe', 'devices/q-dev/commands/#', false, 'broader than the command topics'],
    ['q-dev', 'publish', 'devices/q-dev/commands/ping/result', true, 'command result'],
    ['q-dev', 'publish', 'devices/q-dev/commands/ping', false, 'not a command result'],
    ['q-dev', 'subscribe', 'devices/q-dev/quarantine/#', true, 'quarantine subtree'],
    ['q-dev', 'subscribe', 'devices/q-dev/#', false, 'broader than quarantine rights'],
    ['q-dev', 'publish', 'zones/plant-a/shared', false, 'quarantine removes zone rights'],
    ['blocked-dev', 'connect', '', false, 'deny connect by source address'],
    ['lonely', 'connect', '', true, 'default connect'],
  ];

  it(`decides ${cases.length} cases on the live broker as the policies say`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    const wrong: string[] = [];
    for (const [device, action, topic, allowed, why] of cases) {
      const got = await attempt(device, action, topic);
      if (got !== allowed)
        wrong.push(`${device} ${action} ${topic}: expected ${allowed ? 'allow' : 'deny'} (${why})`);
    }
    expect(wrong).toEqual([]);
  });

  it('delivers across zones only through the conduit', async () => {
    const scada = await connectMqtt(s.mqttUrl, ca, creds.get('scada-1')!);
    const got: string[] = [];
    scada.on('message', (topic) => got.push(topic));
    await scada.subscribeAsync('devices/pump-1/telemetry', { qos: 1 });
    const pump = await connectMqtt(s.mqttUrl, ca, creds.get('pump-1')!);
    await pump.publishAsync('devices/pump-1/telemetry', '1', { qos: 1 });
    await pump.publishAsync('devices/pump-1/state', '2', { qos: 1 });
    await expect.poll(() => got).toEqual(['devices/pump-1/telemetry']);
    await pump.endAsync();
    await scada.endAsync();
  });

  it('explains a decision with the statement that decided (API and CLI)', async () => {
    const d = await s.platform.access.simulate({
      deviceId: 'pump-1',
      action: 'publish',
      topic: 'devices/pump-1/firmware/x',
    });
    expect(d).toMatchObject({
      allow: false,
      statement: 'deny-firmware',
      policy: 'no-firmware-writes',
      zone: 'plant-a',
    });
    const cli = await s.cli([
      'policy',
      'test',
      '--device',
      'scada-1',
      '--action',
      'subscribe',
      '--topic',
      'devices/pump-1/telemetry',
    ]);
    expect(cli.stdout).toMatch(
      /^ALLOW subscribe devices\/pump-1\/telemetry: allowed by statement read-telemetry of policy scada-ops/,
    );
    const denied = await s.cli([
      'policy',
      'test',
      '--device',
      'pump-1',
      '--action',
      'publish',
      '--topic',
      'zones/scada/x',
      '--json',
    ]);
    expect(JSON.parse(denied.stdout)).toMatchObject({ allow: false, reason: 'cross_zone_no_conduit' });
    const described = await s.platform.access.describeAccess('pump-2');
    expect(described.dropped).toEqual(
      expect.arrayContaining([expect.objectContaining({ statement: 'line-status' })]),
    );
    // An attestation standing to try: a contraindicated device is held to the quarantine policy (issue 17).
    const held = await s.cli([
      'policy',
      'test',
      '--device',
      'pump-1',
      '--action',
      'publish',
      '--topic',
      'devices/pump-1/telemetry',
      '--attestation',
      'contraindicated',
    ]);
    expect(held.stdout).toMatch(/^DENY publish devices\/pump-1\/telemetry: no_matching_statement/);
    expect(held.stdout).toContain(
      'statement own-topics of policy device-default does not apply to this device: held by attestation: contraindicated',
    );
    const token = await apiToken(s, 'explainer');
    const res = await s.server.app.inject({
      method: 'POST',
      url: '/api/v1/policies/simulate',
      payload: {
        deviceId: 'pump-1',
        action: 'publish',
        topic: 'devices/pump-1/quarantine/x',
        attestation: 'overdue',
      },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.json()).toMatchObject({
      allow: true,
      policy: 'quarantine',
      attestation: 'overdue',
      held: 'held by attestation: overdue',
    });
    const view = await s.server.app.inject({
      method: 'GET',
      url: '/api/v1/devices/pump-1/access',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(view.json()).toMatchObject({ attestation: 'none', quarantined: false });
  });

  it('keeps users limited to device groups away from fleet-wide rules', async () => {
    const { user } = await s.platform.users.create(
      { username: 'sec-a', role: 'security-officer', groups: ['plant-a'] },
      'test',
    );
    const { token } = await s.platform.users.createToken(
      {
        userId: user.id,
        username: user.username,
        role: 'security-officer',
        groups: ['plant-a'],
        via: 'session',
        sessionState: 'active',
      },
      { name: 't', expiresInMs: 60_000 },
    );
    const call = (method: 'PUT' | 'POST', url: string, payload: object) =>
      s.server.app.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
    for (const [method, url, payload] of [
      [
        'PUT',
        '/api/v1/policies/x',
        {
          version: '2026-11',
          statements: [{ sid: 'a', effect: 'allow', actions: ['mqtt:publish'], resources: ['x'] }],
        },
      ],
      ['POST', '/api/v1/policies/lines/attachments', { kind: 'all' }],
      ['PUT', '/api/v1/zones/z9', { securityLevel: 1, members: {} }],
      ['POST', '/api/v1/bans', { kind: 'device', value: 'scada-1', reason: 'x' }],
    ] as const) {
      const res = await call(method, url, payload);
      expect({ url, status: res.statusCode }).toEqual({ url, status: 403 });
    }
    // Device-scoped actions stay possible inside the user's groups, and answer 404 outside.
    expect((await call('POST', '/api/v1/devices/scada-1/quarantine', {})).statusCode).toBe(404);
  });

  it('flags a policy that locks out every device or grants everything, on save', async () => {
    const saved = await s.platform.access.putPolicy(
      'dangerous',
      {
        version: '2026-11',
        statements: [
          { sid: 'all', effect: 'allow', actions: ['mqtt:subscribe'], resources: ['#'] },
          { sid: 'nobody', effect: 'deny', actions: ['mqtt:connect'] },
        ],
      },
      'test',
    );
    expect(saved.warnings.map((w) => w.code).sort()).toEqual(['grants_everything', 'locks_out_devices']);
    await expect(
      s.platform.access.putPolicy(
        'broken',
        {
          version: '2026-11',
          statements: [
            { sid: 'x', effect: 'allow', actions: ['mqtt:publish'], resources: ['a/x${device.id}'] },
          ],
        },
        'test',
      ),
    ).rejects.toMatchObject({
      code: 'validation_failed',
      message: /statement 1 \(x\) resources\.0: a variable must fill a whole topic level/,
    });
    await s.platform.access.deletePolicy('dangerous', 'test');
  });

  it('exports an nftables ruleset that nft -c accepts', async () => {
    const file = path.join(dir, 'bulwark.nft');
    const out = await s.cli([
      'segmentation',
      'export',
      '--format',
      'nftables',
      '--broker',
      '10.0.0.5,fd00::5',
      '--out',
      file,
    ]);
    expect(out.code).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/policy drop;/);
    expect(text).toMatch(
      /set zone_plant_a_v4 \{ type ipv4_addr; flags interval; auto-merge; elements = \{ 10\.1\.0\.0\/16 \} \}/,
    );
    expect(text).toMatch(
      /ip saddr @zone_plant_a_v4 ip daddr @zone_scada_v4 tcp dport \{ 8883 \} accept comment "conduit telemetry-up"/,
    );
    const nft = await exec('nft', ['-c', '-f', file]).then(
      () => 0,
      (e: { code: number; stderr: string }) => (console.error(e.stderr), e.code),
    );
    expect(nft).toBe(0);
    writeFileSync(path.join(dir, 'broken.nft'), text.replace('policy drop;', 'policy drp;'));
    const broken = await exec('nft', ['-c', '-f', path.join(dir, 'broken.nft')]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(broken).not.toBe(0); // the check is real
    const injected = await s.cli([
      'segmentation',
      'export',
      '--format',
      'nftables',
      '--broker',
      '10.0.0.5 } accept',
      '--out',
      path.join(dir, 'x.nft'),
    ]);
    expect(injected.code).not.toBe(0);
    expect(injected.stderr).toMatch(/not an IP address or CIDR/);
  });

  it('applies quarantine from another process and a policy change to live sessions within a second', async () => {
    const c = creds.get('live-1')!;
    const client = await connectMqtt(s.mqttUrl, ca, c);
    await client.publishAsync('devices/live-1/telemetry', 'ok', { qos: 1 });
    const closed = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now())));
    const result = await s.cli(['device', 'quarantine', 'live-1', '--reason', 'test']);
    expect(result.code).toBe(0);
    const quarantinedAt = Date.now();
    // Within the next second a normal publish is refused (the connection is closed by the broker).
    let deniedAt = -1;
    while (Date.now() - quarantinedAt < 1500 && deniedAt < 0) {
      await tryPublish(client, 'devices/live-1/telemetry');
      deniedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 50))]);
    }
    expect(deniedAt).toBeGreaterThan(0);
    expect(deniedAt - quarantinedAt).toBeLessThan(1000);
    client.end(true);
    const q = await connectMqtt(s.mqttUrl, ca, c);
    await q.publishAsync('devices/live-1/quarantine/report', 'here', { qos: 1 });
    await q.endAsync();
    expect((await s.cli(['device', 'release', 'live-1'])).code).toBe(0);

    // A policy change through the service (as the API does) reaches a live session too.
    const live = await connectMqtt(s.mqttUrl, ca, c);
    await live.publishAsync('devices/live-1/state', 'ok', { qos: 1 });
    const gone = new Promise<number>((resolve) => live.once('close', () => resolve(Date.now())));
    await s.platform.access.putPolicy(
      'freeze-state',
      {
        version: '2026-11',
        statements: [
          {
            sid: 'no-state',
            effect: 'deny',
            actions: ['mqtt:publish'],
            resources: ['devices/${device.id}/state'],
          },
        ],
      },
      'test',
    );
    await s.platform.access.attach('freeze-state', { kind: 'device', target: 'live-1' }, 'test');
    const changedAt = Date.now();
    let goneAt = -1;
    while (Date.now() - changedAt < 1500 && goneAt < 0) {
      await tryPublish(live, 'devices/live-1/state');
      goneAt = await Promise.race([gone, new Promise<number>((r) => setTimeout(() => r(-1), 50))]);
    }
    expect(goneAt).toBeGreaterThan(0);
    expect(goneAt - changedAt).toBeLessThan(1000);
    live.end(true);
  });
});
