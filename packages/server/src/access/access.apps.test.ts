import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { appPolicyName, grantsToPolicy } from '../policy/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createAccessService, type AccessService, type AppAccessIdentity } from './index.ts';

/** Apps as principals of the access module: their policies, targets over the stored fleet, zones, simulation. */
describe.each(testDialects)('access for apps on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let devices: DeviceService;
  let access: AccessService;
  const now = 1_800_000_000_000;
  const dashboard: AppAccessIdentity = {
    app: 'dashboard',
    instance: null,
    zone: null,
    purpose: 'analytics.reporting',
    remoteAddress: '10.0.0.9',
  };

  /** What H3's apps module does with an app's grants: one policy `app.<name>`, attached to the app. */
  async function setGrants(app: string, grants: string[]) {
    const parsed = grantsToPolicy(grants);
    if (!parsed.ok) throw new Error(parsed.problems.join('; '));
    await access.putAppPolicy(appPolicyName(app), parsed.document, 'test');
    await access.attach(appPolicyName(app), { kind: 'app', target: app }, 'test');
  }

  beforeEach(async () => {
    t = await createTestStore(dialect);
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    devices = createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: 86_400_000 });
    access = createAccessService({ db: t.store.db, events: bus, now: () => now, devices });
    await devices.add({ id: 'pump-1', group: 'pumps' }, 'test');
    await devices.add({ id: 'valve-1', group: 'valves' }, 'test');
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  it('an app gets the app default and what is attached to it, never device attachments', async () => {
    await access.putPolicy(
      'everything',
      {
        version: '2026-11',
        statements: [
          { sid: 'all', effect: 'allow', actions: ['mqtt:publish', 'mqtt:subscribe'], resources: ['#'] },
        ],
      },
      'test',
    );
    for (const to of [
      { kind: 'all', target: '*' },
      { kind: 'group', target: 'pumps' },
      { kind: 'device', target: 'dashboard' },
    ])
      await access.attach('everything', to, 'test');
    let app = await access.accessForApp(dashboard);
    expect(app.publish('apps/dashboard/x')).toMatchObject({ allow: true, policy: 'app-default' });
    expect(app.publish('anything/else').allow).toBe(false);
    expect(app.subscribe('devices/+/telemetry').allow).toBe(false);
    // A device still gets the policy attached to all devices.
    expect(
      (await access.accessFor({ deviceId: 'pump-1', remoteAddress: null })).publish('anything/else').allow,
    ).toBe(true);

    await setGrants('dashboard', ['subscribe devices/+/telemetry group:pumps']);
    app = await access.accessForApp(dashboard);
    expect(app.subscribe('devices/+/telemetry')).toMatchObject({ allow: true, policy: 'app.dashboard' });
    expect(app.receive('devices/pump-1/telemetry')).toBe(true);
    expect(app.receive('devices/valve-1/telemetry')).toBe(false);
    // Another app does not get dashboard's grants.
    expect(
      (await access.accessForApp({ ...dashboard, app: 'other' })).receive('devices/pump-1/telemetry'),
    ).toBe(false);
    const listed = await access.listPolicies();
    expect(listed.find((p) => p.name === 'app-default')).toMatchObject({
      builtin: true,
      attachments: [{ kind: 'app' }],
    });
    expect(listed.find((p) => p.name === 'app.dashboard')?.attachments).toEqual([
      { kind: 'app', target: 'dashboard' },
    ]);
    await expect(
      access.putPolicy('app-default', { version: '2026-11', statements: [] }, 'test'),
    ).rejects.toMatchObject({
      code: 'conflict',
    });
  });

  it('targets follow the stored fleet: a device that joins the group is reached after the change', async () => {
    await setGrants('dashboard', ['subscribe devices/+/telemetry group:pumps']);
    const changes: (string | undefined)[] = [];
    access.onChange((id) => changes.push(id));
    await devices.update('valve-1', { group: 'pumps' }, 'test');
    await devices.add({ id: 'pump-2', group: 'pumps' }, 'test');
    await bus.flush();
    const app = await access.accessForApp(dashboard);
    expect(app.receive('devices/valve-1/telemetry')).toBe(true);
    expect(app.receive('devices/pump-2/telemetry')).toBe(true);
    expect(app.receive('devices/unknown/telemetry')).toBe(false);
    // Every access event reaches the listeners (the broker recompiles its app sessions on any of them).
    expect(changes).toEqual(['valve-1', undefined]);
  });

  it('an app in a zone reads another zone only through a conduit; without a purpose, nothing of devices', async () => {
    await access.putZone(
      { name: 'plant', securityLevel: 2, members: { groups: ['pumps', 'valves'] } },
      'test',
    );
    await access.putZone({ name: 'ops', securityLevel: 3, members: {} }, 'test');
    await setGrants('dashboard', ['subscribe devices/+/telemetry', 'subscribe devices/+/state']);
    let app = await access.accessForApp({ ...dashboard, zone: 'ops' });
    expect(app.subscribe('devices/+/telemetry').allow).toBe(true);
    expect(app.receiveDecision('devices/pump-1/telemetry')).toMatchObject({
      allow: false,
      reason: 'cross_zone_no_conduit',
    });
    await access.putConduit(
      { name: 'up', from: 'plant', to: 'ops', topics: ['devices/+/telemetry'] },
      'test',
    );
    app = await access.accessForApp({ ...dashboard, zone: 'ops' });
    expect(app.receive('devices/pump-1/telemetry')).toBe(true);
    expect(app.receive('devices/pump-1/state')).toBe(false);
    expect(app.zone).toBe('ops');

    const noPurpose = await access.accessForApp({ ...dashboard, zone: 'plant', purpose: null });
    expect(noPurpose.receive('devices/pump-1/telemetry')).toBe(false);
    expect(noPurpose.describe().dropped).toEqual([
      { policy: 'app.dashboard', statement: 'grant-1', reason: 'app has no declared purpose' },
      { policy: 'app.dashboard', statement: 'grant-2', reason: 'app has no declared purpose' },
    ]);
  });

  it('simulates an app decision, naming the deciding statement', async () => {
    await setGrants('dashboard', ['publish devices/+/commands/+ device:pump-1']);
    const app = { name: 'dashboard', instance: 'w1', zone: null, purpose: 'essential.service.operations' };
    expect(
      await access.simulate({ app, action: 'publish', topic: 'devices/pump-1/commands/ping' }),
    ).toMatchObject({
      allow: true,
      statement: 'grant-1',
      policy: 'app.dashboard',
      app: 'dashboard',
      instance: 'w1',
      action: 'publish',
      zone: null,
    });
    expect(
      await access.simulate({ app, action: 'publish', topic: 'devices/valve-1/commands/ping' }),
    ).toMatchObject({
      allow: false,
      reason: 'no_matching_statement',
    });
    expect(await access.simulate({ app, action: 'connect' })).toMatchObject({
      allow: true,
      policy: 'app-default',
    });
    await expect(access.simulate({ app, action: 'publish' })).rejects.toMatchObject({
      code: 'validation_failed',
    });
    // The device form is unchanged.
    expect(
      await access.simulate({ deviceId: 'pump-1', action: 'publish', topic: 'devices/pump-1/x' }),
    ).toMatchObject({ allow: true, deviceId: 'pump-1' });
  });
});
