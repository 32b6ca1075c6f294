import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAccessService, type AccessService } from '../access/index.ts';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createAppService, type AppService } from './index.ts';

const pw = (s: string) => Buffer.from(s, 'utf8');

/** The apps module in-process over each dialect, with the real access module (grants are its policies). */
describe.each(testDialects)('apps on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let access: AccessService;
  let apps: AppService;
  let now = 1_800_000_000_000;
  const issued: string[] = [];
  let devices: DeviceService;

  beforeEach(async () => {
    now = 1_800_000_000_000;
    t = await createTestStore(dialect);
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    const createDevices = () =>
      createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: 86_400_000 });
    devices = createDevices();
    access = createAccessService({ db: t.store.db, events: bus, now: () => now, devices });
    devices = createDevices();
    apps = createAppService({
      db: t.store.db,
      events: bus,
      now: () => now,
      access,
      devices,
      pki: () =>
        Promise.resolve({
          issueAppCertificate: (request) => {
            issued.push(request.app);
            return Promise.resolve({ serial: 'ab', certificatePem: '', chainPem: '', notAfter: now });
          },
        }),
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const entries = async (
    type: 'app.added' | 'app.updated' | 'app.revoked' | 'app.token_created' | 'app.token_revoked',
  ) => audit.query({ type, limit: 100 });

  it('adds an app with its purpose and grants: one event, its policy app.NAME attached to it', async () => {
    const added = await apps.add(
      {
        name: 'dashboard',
        purpose: 'analytics.reporting',
        grants: ['subscribe   devices/+/telemetry group:pumps', 'publish devices/+/commands/# zone:plant-a'],
      },
      'user:alice',
    );
    expect(added).toMatchObject({
      name: 'dashboard',
      purpose: 'analytics.reporting',
      zone: null,
      status: 'active',
      grants: ['subscribe devices/+/telemetry group:pumps', 'publish devices/+/commands/# zone:plant-a'],
    });
    const policy = (await access.listPolicies()).find((p) => p.name === 'app.dashboard');
    expect(policy?.attachments).toEqual([{ kind: 'app', target: 'dashboard' }]);
    expect(await entries('app.added')).toMatchObject([
      {
        actor: 'user:alice',
        subject: 'app:dashboard',
        data: {
          purpose: 'analytics.reporting',
          zone: null,
          grants: ['subscribe devices/+/telemetry group:pumps', 'publish devices/+/commands/# zone:plant-a'],
        },
      },
    ]);
    expect((await apps.list()).map((a) => a.name)).toEqual(['dashboard']);
  });

  it('refuses a bad name, an unknown purpose (naming close ones), an unknown zone, a bad grant, a duplicate', async () => {
    await expect(apps.add({ name: 'Dash_Board' }, 't')).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(apps.add({ name: 'd', purpose: 'analytics.reportng' }, 't')).rejects.toThrow(
      /did you mean analytics.reporting/,
    );
    await expect(apps.add({ name: 'd', zone: 'nowhere' }, 't')).rejects.toThrow(
      /zone nowhere does not exist/,
    );
    await expect(
      apps.add(
        { name: 'd', purpose: 'analytics.reporting', grants: ['subscribe devices/+/telemetry grop:pumps'] },
        't',
      ),
    ).rejects.toThrow(/grop:pumps/);
    await apps.add({ name: 'd' }, 't');
    await expect(apps.add({ name: 'd' }, 't')).rejects.toMatchObject({ code: 'conflict' });
    expect(await apps.list()).toHaveLength(1);
  });

  it('grants an app without a purpose nothing under devices/, its own topics yes', async () => {
    await expect(
      apps.add({ name: 'nopurpose', grants: ['subscribe devices/+/telemetry'] }, 't'),
    ).rejects.toThrow(/no declared purpose/);
    await expect(apps.add({ name: 'wide', grants: ['subscribe #'] }, 't')).rejects.toThrow(
      /no declared purpose/,
    );
    expect(await apps.list()).toEqual([]);
    await apps.add({ name: 'nopurpose', grants: ['pubsub apps/nopurpose/#'] }, 't');
    await expect(apps.grant('nopurpose', 'subscribe devices/pump-1/state', 't')).rejects.toThrow(
      /no declared purpose/,
    );
  });

  it('changes purpose, zone and description, and refuses dropping the purpose of an app granted device data', async () => {
    await access.putZone({ name: 'plant-a', securityLevel: 2, members: { groups: ['pumps'] } }, 't');
    await apps.add(
      { name: 'ops', purpose: 'analytics.reporting', grants: ['subscribe devices/+/telemetry'] },
      't',
    );
    const changed = await apps.update(
      'ops',
      { zone: 'plant-a', purpose: 'essential.service.operations' },
      'user:bob',
    );
    expect(changed).toMatchObject({ zone: 'plant-a', purpose: 'essential.service.operations' });
    expect((await entries('app.updated')).at(-1)).toMatchObject({
      actor: 'user:bob',
      data: { changes: { zone: 'plant-a', purpose: 'essential.service.operations' } },
    });
    await expect(apps.update('ops', { purpose: null }, 't')).rejects.toThrow(/no declared purpose/);
    await expect(apps.update('ops', { zone: 'zz' }, 't')).rejects.toThrow(/zone zz does not exist/);
    await expect(apps.update('missing', { description: 'x' }, 't')).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('grants, ungrants by text or position, and detaches the policy with the last grant', async () => {
    await apps.add({ name: 'g', purpose: 'analytics.reporting' }, 't');
    expect(await apps.grant('g', 'subscribe devices/+/telemetry  group:pumps', 't')).toEqual([
      'subscribe devices/+/telemetry group:pumps',
    ]);
    expect(await apps.grant('g', 'subscribe devices/+/telemetry group:pumps', 't')).toHaveLength(1);
    await apps.grant('g', 'publish devices/+/commands/ping', 't');
    expect(await apps.ungrant('g', 'subscribe devices/+/telemetry group:pumps', 't')).toEqual([
      'publish devices/+/commands/ping',
    ]);
    await expect(apps.ungrant('g', 'subscribe x', 't')).rejects.toMatchObject({ code: 'not_found' });
    expect(await apps.ungrant('g', '1', 't')).toEqual([]);
    expect((await access.listPolicies()).find((p) => p.name === 'app.g')?.attachments).toEqual([]);
    await apps.setGrants('g', ['subscribe devices/+/state', 'subscribe devices/+/telemetry'], 't');
    expect((await apps.get('g')).grants).toEqual([
      'subscribe devices/+/state',
      'subscribe devices/+/telemetry',
    ]);
  });

  it('never overwrites a policy app.NAME attached elsewhere; access reserves app. names to the apps module', async () => {
    const doc = {
      version: '2026-11',
      statements: [{ sid: 's', effect: 'allow', actions: ['mqtt:publish'], resources: ['devices/+/x'] }],
    };
    // Anyone but the apps module is refused an app. name, through the access door (API, CLI).
    await expect(access.putPolicy('app.anything', doc, 'user:mallory')).rejects.toMatchObject({
      code: 'forbidden',
    });
    // One written before the names were reserved, attached to a group of devices.
    await access.putAppPolicy('app.pumps-app', doc, 'user:old');
    await access.attach('app.pumps-app', { kind: 'group', target: 'pumps' }, 'user:old');
    const grants = ['subscribe devices/+/telemetry'];
    await expect(
      apps.add({ name: 'pumps-app', purpose: 'analytics.reporting', grants }, 't'),
    ).rejects.toThrow(/attached to group:pumps/);
    expect(await apps.list()).toEqual([]);
    await apps.add({ name: 'pumps-app', purpose: 'analytics.reporting' }, 't');
    await expect(apps.grant('pumps-app', grants[0] ?? '', 't')).rejects.toMatchObject({ code: 'conflict' });
    await expect(apps.setGrants('pumps-app', grants, 't')).rejects.toMatchObject({ code: 'conflict' });
    const policy = (await access.listPolicies()).find((p) => p.name === 'app.pumps-app');
    expect(policy).toMatchObject({ version: 1, attachments: [{ kind: 'group', target: 'pumps' }] });
    // Detached, it is taken over as the app's grants.
    await access.detach('app.pumps-app', { kind: 'group', target: 'pumps' }, 'user:old');
    expect(await apps.grant('pumps-app', grants[0] ?? '', 't')).toEqual(grants);
  });

  it('creates tokens shown once and stored hashed; checkApp accepts one, records its use at most once a minute', async () => {
    await apps.add({ name: 'dash', purpose: 'analytics.reporting' }, 't');
    const { id, token, expiresAt } = await apps.createToken('dash', {}, 'user:alice');
    expect(token).toMatch(/^bwa_[A-Za-z0-9_-]{43}$/);
    expect(expiresAt).toBeNull();
    const row = await t.store.db.selectFrom('app_tokens').selectAll().executeTakeFirstOrThrow();
    expect(row.token_hash).not.toContain(token.slice(4));
    const decision = await apps.checkApp({
      clientId: 'dash/worker-1',
      remoteAddress: '10.0.0.5',
      password: { username: 'dash', password: pw(token) },
    });
    expect(decision).toEqual({
      ok: true,
      app: 'dash',
      instance: 'worker-1',
      clientId: 'dash/worker-1',
      zone: null,
      purpose: 'analytics.reporting',
      serial: `token:${id}`,
      tokenId: id,
      expiresAt: null,
    });
    now += 30_000;
    await apps.checkApp({
      clientId: 'dash',
      remoteAddress: '10.0.0.6',
      password: { username: 'dash', password: pw(token) },
    });
    expect(await apps.listTokens('dash')).toMatchObject([
      { id, lastUsedAt: now - 30_000, lastUsedFrom: '10.0.0.5', expiresAt: null, revokedAt: null },
    ]);
    now += 31_000;
    await apps.checkApp({
      clientId: 'dash',
      remoteAddress: '10.0.0.6',
      password: { username: 'dash', password: pw(token) },
    });
    expect(await apps.listTokens('dash')).toMatchObject([{ lastUsedAt: now, lastUsedFrom: '10.0.0.6' }]);
    expect(await entries('app.token_created')).toMatchObject([
      { actor: 'user:alice', data: { tokenId: id } },
    ]);
  });

  it('keeps app names and device ids apart (one MQTT client-id space)', async () => {
    await devices.add({ id: 'meter-1', group: null }, 't');
    const refused = await apps
      .add({ name: 'meter-1', purpose: 'analytics.reporting' }, 't')
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'conflict' });
    expect(String(refused)).toMatch(/device has the id meter-1/);
    await apps.add({ name: 'gauge', purpose: 'analytics.reporting' }, 't');
    const token = await apps.createToken('gauge', {}, 't');
    const check = (clientId: string) =>
      apps.checkApp({
        clientId,
        remoteAddress: '10.0.0.1',
        password: { username: 'gauge', password: pw(token.token) },
      });
    expect((await check('gauge')).ok).toBe(true);
    // A device added later under the app's name owns the bare client id; the app's instances still connect.
    await devices.add({ id: 'gauge', group: null }, 't');
    const bare = await check('gauge');
    expect(bare).toMatchObject({ ok: false, code: 'validation_failed' });
    expect(bare.ok ? '' : bare.reason).toMatch(/gauge\/<instance>/);
    expect((await check('gauge/1')).ok).toBe(true);
  });

  it('checkApp refuses each wrong case with its code', async () => {
    await apps.add({ name: 'alpha', purpose: 'analytics.reporting' }, 't');
    await apps.add({ name: 'beta', purpose: 'analytics.reporting' }, 't');
    const a = await apps.createToken('alpha', {}, 't');
    const b = await apps.createToken('beta', {}, 't');
    const short = await apps.createToken('alpha', { ttlMs: 60_000 }, 't');
    const gone = await apps.createToken('alpha', {}, 't');
    await apps.revokeToken('alpha', gone.id, 't');
    const check = (clientId: string, username: string, password: string) =>
      apps.checkApp({ clientId, remoteAddress: '10.0.0.1', password: { username, password: pw(password) } });
    now += 61_000;
    const cases = [
      [await check('Alpha!', 'alpha', a.token), 'validation_failed', /not an app's/],
      [await check('alpha/', 'alpha', a.token), 'validation_failed', /not an app's/],
      [await check('alpha', 'beta', b.token), 'forbidden', /user name is not app alpha of client id "alpha"/],
      [await check('alpha', 'alpha', b.token), 'unauthenticated', /not a token of app alpha/],
      [await check('alpha', 'alpha', 'bwa_wrong'), 'unauthenticated', /not a token of app alpha/],
      [await check('alpha', 'alpha', 'hunter2'), 'unauthenticated', /not an app token/],
      [await check('alpha', 'alpha', short.token), 'unauthenticated', /expired/],
      [await check('alpha', 'alpha', gone.token), 'unauthenticated', /revoked/],
      [await check('gamma', 'gamma', a.token), 'not_found', /unknown app gamma/],
      [
        await apps.checkApp({ clientId: 'alpha', remoteAddress: '10.0.0.1' }),
        'unauthenticated',
        /no app credentials/,
      ],
      [
        await apps.checkApp({
          clientId: 'alpha/2',
          remoteAddress: '10.0.0.1',
          certificate: { serial: 'ab', app: 'beta' },
        }),
        'forbidden',
        /issued to app beta/,
      ],
    ] as const;
    for (const [decision, code, reason] of cases) {
      expect(decision).toMatchObject({ ok: false, code });
      if (!decision.ok) expect(decision.reason).toMatch(reason);
    }
    expect(
      await apps.checkApp({
        clientId: 'beta/2',
        remoteAddress: '10.0.0.1',
        certificate: { serial: 'cd', app: 'beta' },
      }),
    ).toMatchObject({ ok: true, app: 'beta', instance: '2', serial: 'cd', tokenId: null });
    await apps.revoke('beta', 't');
    expect(await check('beta', 'beta', b.token)).toMatchObject({
      ok: false,
      code: 'forbidden',
      reason: 'app beta is revoked',
    });
  });

  it('never puts the user name, the password or anything token-like into a refusal reason', async () => {
    await apps.add({ name: 'alpha', purpose: 'analytics.reporting' }, 't');
    const { token } = await apps.createToken('alpha', {}, 't');
    const attempt = (clientId: string, username: string, password: string) =>
      apps.checkApp({ clientId, remoteAddress: '10.0.0.1', password: { username, password: pw(password) } });
    const decisions = [
      // user name and password swapped: the token is the user name
      await attempt('alpha', token, 'alpha'),
      await attempt('alpha/1', token, 'hunter2'),
      // the token in the client id (its instance), or as the whole client id
      await attempt(`alpha/${token}`, 'beta', 'x'),
      await attempt(token, 'alpha', 'x'),
      await attempt('alpha/secret-pw', 'beta', 'secret-pw'),
      await attempt('Alpha/secret-pw', 'alpha', 'secret-pw'),
    ];
    for (const decision of decisions) {
      expect(decision.ok).toBe(false);
      if (decision.ok) continue;
      expect(decision.reason).not.toContain(token);
      expect(decision.reason).not.toContain(token.slice(4, 20));
      expect(decision.reason.toLowerCase()).not.toContain('bwa_');
      expect(decision.reason).not.toContain('secret-pw');
    }
  });

  it('revokes the app with its tokens in one transaction and event; a revoked app gets nothing new', async () => {
    await apps.add({ name: 'old', purpose: 'analytics.reporting' }, 't');
    await apps.createToken('old', {}, 't');
    await apps.createToken('old', { ttlMs: 3_600_000 }, 't');
    const revoked = await apps.revoke('old', 'user:carol', 'decommissioned');
    expect(revoked).toMatchObject({ status: 'revoked', revokedAt: now });
    expect((await apps.listTokens('old')).every((tk) => tk.revokedAt === now)).toBe(true);
    expect(await entries('app.revoked')).toMatchObject([
      {
        actor: 'user:carol',
        subject: 'app:old',
        data: { reason: 'decommissioned', revokedCertificates: [], revokedTokens: 2 },
      },
    ]);
    await expect(apps.createToken('old', {}, 't')).rejects.toMatchObject({ code: 'conflict' });
    await expect(apps.issueCertificate('old', 'csr', 't')).rejects.toMatchObject({ code: 'conflict' });
    await expect(apps.revoke('old', 't')).rejects.toMatchObject({ code: 'conflict' });
    await expect(apps.revokeToken('old', 'nope', 't')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('sums delivery over the nodes that reported it', async () => {
    await apps.add({ name: 'feed', purpose: 'analytics.reporting' }, 't');
    expect(await apps.deliveryStats('feed')).toMatchObject({ messages: 0, updatedAt: null });
    const stats = { app: 'feed', messages: 10, bytes: 100, dropped: 1, queuedBytes: 5, connections: 1 };
    await apps.recordDelivery('node-a', [stats]);
    now += 1000;
    await apps.recordDelivery('node-b', [{ ...stats, messages: 5 }]);
    await apps.recordDelivery('node-a', [{ ...stats, messages: 20 }]);
    expect(await apps.deliveryStats('feed')).toEqual({
      messages: 25,
      bytes: 200,
      dropped: 2,
      queuedBytes: 10,
      connections: 2,
      updatedAt: now,
    });
  });

  it('states its facts: apps with and without purpose, tokens without expiry and never used', async () => {
    await apps.add({ name: 'p', purpose: 'analytics.reporting' }, 't');
    await apps.add({ name: 'q' }, 't');
    await apps.createToken('p', {}, 't');
    await apps.createToken('p', { ttlMs: 1000 }, 't');
    expect(await apps.facts()).toEqual({
      apps: { active: 2, revoked: 0, withPurpose: 1, withoutPurpose: ['q'] },
      tokens: { active: 2, withoutExpiry: 1, neverUsed: 2, lastUsedAt: null },
    });
    const exported = await apps.subjectData.exportSubject({ kind: 'app', id: 'p' });
    expect(exported.map((r) => r.record)).toEqual(['app', 'app_token', 'app_token', 'app_delivery']);
    expect(JSON.stringify(exported)).not.toContain('bwa_');
  });

  it('states compliance facts: every app with its purpose and tokens in force; grants through access', async () => {
    await apps.add({ name: 'p', purpose: 'analytics.reporting' }, 't');
    await apps.add({ name: 'q' }, 't');
    await apps.add({ name: 'r' }, 't');
    const forever = await apps.createToken('p', {}, 't');
    const dropped = await apps.createToken('p', {}, 't');
    await apps.createToken('p', { ttlMs: 1000 }, 't');
    now += 500;
    const soon = await apps.createToken('q', { ttlMs: 1000 }, 't');
    await apps.revokeToken('p', dropped.id, 't');
    await apps.revoke('r', 't');
    await apps.grant('p', 'subscribe devices/+/telemetry group:pumps', 't');
    now += 700; // p's 1 s token expired; q's has 800 ms left

    expect(await apps.complianceFacts()).toEqual({
      apps: [
        {
          name: 'p',
          status: 'active',
          purpose: 'analytics.reporting',
          tokens: [{ id: forever.id, createdAt: 1_800_000_000_000, expiresAt: null, lastUsedAt: null }],
        },
        {
          name: 'q',
          status: 'active',
          purpose: null,
          tokens: [
            { id: soon.id, createdAt: 1_800_000_000_500, expiresAt: 1_800_000_001_500, lastUsedAt: null },
          ],
        },
        { name: 'r', status: 'revoked', purpose: null, tokens: [] },
      ],
    });
    expect((await access.complianceFacts()).appGrants).toEqual([
      {
        app: 'p',
        effect: 'allow',
        actions: ['mqtt:subscribe', 'mqtt:receive'],
        topics: ['devices/+/telemetry'],
      },
    ]);
  });
});
