import { describe, expect, it } from 'vitest';
import {
  APP_DEFAULT_POLICY,
  compilePolicies,
  grantsToPolicy,
  lintPolicy,
  parsePolicyDocument,
  POLICY_VERSION,
  type AttachedPolicy,
  type CompileInput,
  type DeviceFacts,
  type PolicyContext,
  type Segmentation,
  type Statement,
} from './index.ts';

/** A small fleet: pumps in plant-a, valves in plant-b, a sensor in no zone. */
const fleet: Record<string, DeviceFacts> = {
  'pump-1': { group: 'pumps', zone: 'plant-a' },
  'pump-2': { group: 'pumps', zone: 'plant-b' },
  'valve-1': { group: 'valves', zone: 'plant-a' },
  'valve-2': { group: 'valves', zone: 'plant-b' },
  'sensor-1': { group: null, zone: null },
};
const facts = (id: string) => fleet[id];
const noZones: Segmentation = { zones: [], conduits: [] };

function policy(name: string, statements: Statement[]): AttachedPolicy {
  const parsed = parsePolicyDocument({ version: POLICY_VERSION, statements });
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return { name, version: 1, document: parsed.document };
}

function grants(...lines: string[]): AttachedPolicy {
  const parsed = grantsToPolicy(lines);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return { name: 'app.dashboard', version: 1, document: parsed.document };
}

const appCtx = (
  app: Partial<NonNullable<PolicyContext['app']>> = {},
  zone: string | null = null,
): PolicyContext => ({
  principal: 'app',
  app: { name: 'dashboard', instance: null, purpose: 'analytics.reporting', ...app },
  deviceId: '',
  group: null,
  zone,
  attributes: {},
  cert: { cn: 'dashboard' },
  state: 'active',
  sourceAddress: '10.0.0.9',
});

const deviceCtx = (id: string): PolicyContext => ({
  deviceId: id,
  group: fleet[id]?.group ?? null,
  zone: fleet[id]?.zone ?? null,
  attributes: {},
  cert: { cn: id },
  state: 'active',
  sourceAddress: null,
});

function compile(ctx: PolicyContext, policies: AttachedPolicy[], segmentation: Segmentation = noZones) {
  const input: CompileInput = {
    ctx,
    policies,
    segmentation,
    deviceZone: (id) => fleet[id]?.zone,
    deviceFacts: facts,
  };
  return compilePolicies(input);
}

const app = (
  policies: AttachedPolicy[],
  opts: { zone?: string | null; seg?: Segmentation; purpose?: string | null } = {},
) =>
  compile(
    appCtx({ purpose: opts.purpose === undefined ? 'analytics.reporting' : opts.purpose }, opts.zone ?? null),
    [APP_DEFAULT_POLICY, ...policies],
    opts.seg,
  );

describe('statement targets: which devices a statement reaches', () => {
  it("a group target lets through only the topics of that group's devices", () => {
    const access = app([grants('subscribe devices/+/telemetry group:pumps')]);
    expect(access.receive('devices/pump-1/telemetry')).toBe(true);
    expect(access.receive('devices/pump-2/telemetry')).toBe(true);
    expect(access.receiveDecision('devices/valve-1/telemetry')).toMatchObject({
      allow: false,
      reason: 'no_matching_statement',
    });
    expect(access.receive('devices/pump-1/state')).toBe(false);
  });

  it('a zone target, a device target, and kinds that must all hold', () => {
    expect(
      app([grants('subscribe devices/+/telemetry zone:plant-a')]).receive('devices/valve-1/telemetry'),
    ).toBe(true);
    expect(
      app([grants('subscribe devices/+/telemetry zone:plant-a')]).receive('devices/pump-2/telemetry'),
    ).toBe(false);
    const byId = app([grants('publish devices/+/commands/+ device:pump-1 device:valve-2')]);
    expect(byId.publish('devices/pump-1/commands/ping').allow).toBe(true);
    expect(byId.publish('devices/valve-2/commands/ping').allow).toBe(true);
    expect(byId.publish('devices/pump-2/commands/ping').allow).toBe(false);
    const both = app([grants('subscribe devices/+/telemetry group:pumps zone:plant-a')]);
    expect(both.receive('devices/pump-1/telemetry')).toBe(true);
    expect(both.receive('devices/pump-2/telemetry')).toBe(false); // a pump, but in plant-b
    expect(both.receive('devices/valve-1/telemetry')).toBe(false); // plant-a, but not a pump
    const either = app([grants('subscribe devices/+/telemetry group:pumps group:valves')]);
    expect(either.receive('devices/valve-2/telemetry')).toBe(true);
    expect(either.receive('devices/sensor-1/telemetry')).toBe(false);
  });

  it('an unknown device is in no target, and topics outside devices/ are not reached', () => {
    const access = app([
      grants('pubsub # device:pump-1'),
      grants('subscribe devices/+/telemetry group:pumps'),
    ]);
    expect(access.receive('devices/ghost/telemetry')).toBe(false);
    expect(access.publish('alerts/x').allow).toBe(false);
    expect(access.publish('devices/pump-1/anything').allow).toBe(true);
  });

  it('a targeted deny removes only its devices', () => {
    const access = app([
      policy('app.dashboard', [
        {
          sid: 'all',
          effect: 'allow',
          actions: ['mqtt:subscribe', 'mqtt:receive'],
          resources: ['devices/+/telemetry'],
        },
        {
          sid: 'not-valves',
          effect: 'deny',
          actions: ['mqtt:receive'],
          resources: ['devices/+/telemetry'],
          conditions: { targets: { groups: ['valves'] } },
        },
      ]),
    ]);
    expect(access.receive('devices/pump-1/telemetry')).toBe(true);
    expect(access.receiveDecision('devices/valve-1/telemetry')).toMatchObject({
      allow: false,
      statement: 'not-valves',
    });
  });

  it('targets never apply to connect', () => {
    const access = compile(appCtx(), [
      policy('p', [
        {
          sid: 'c',
          effect: 'allow',
          actions: ['mqtt:connect'],
          resources: ['#'],
          conditions: { targets: { groups: ['pumps'] } },
        },
      ]),
    ]);
    expect(access.connect()).toMatchObject({ allow: false, reason: 'no_matching_statement' });
  });

  it('statements without targets decide as before for devices', () => {
    const access = compile(deviceCtx('pump-1'), [
      policy('p', [
        { sid: 'own', effect: 'allow', actions: ['mqtt:publish'], resources: ['devices/${device.id}/#'] },
        {
          sid: 'peers',
          effect: 'allow',
          actions: ['mqtt:publish'],
          resources: ['devices/+/peer'],
          conditions: { targets: { groups: ['pumps'] } },
        },
      ]),
    ]);
    expect(access.publish('devices/pump-1/x')).toMatchObject({ allow: true, statement: 'own' });
    expect(access.publish('devices/pump-2/peer')).toMatchObject({ allow: true, statement: 'peers' });
    expect(access.publish('devices/valve-1/peer').allow).toBe(false);
  });
});

describe('targets in the policy document', () => {
  const doc = (targets: unknown) => ({
    version: POLICY_VERSION,
    statements: [
      {
        sid: 's',
        effect: 'allow',
        actions: ['mqtt:subscribe'],
        resources: ['devices/+/telemetry'],
        conditions: { targets },
      },
    ],
  });

  it('refuses empty, unknown and badly named targets, naming the statement', () => {
    expect(parsePolicyDocument(doc({}))).toMatchObject({
      ok: false,
      problems: [expect.stringMatching(/statement 1 \(s\).*targets must name/)],
    });
    expect(parsePolicyDocument(doc({ groups: [] }))).toMatchObject({ ok: false });
    const unknownKey = parsePolicyDocument(doc({ sites: ['a'] }));
    expect(!unknownKey.ok && unknownKey.problems[0]).toMatch(/Unrecognized key: "sites"/);
    expect(parsePolicyDocument(doc({ groups: ['a/b'] }))).toMatchObject({ ok: false });
    expect(
      parsePolicyDocument(doc({ groups: Array.from({ length: 257 }, (_, i) => `g${i}`) })),
    ).toMatchObject({ ok: false });
    expect(parsePolicyDocument(doc({ groups: ['pumps'], zones: ['plant-a'], devices: ['pump-1'] })).ok).toBe(
      true,
    );
  });

  it('a devices/+/… grant bounded by targets is not a grants_everything warning', () => {
    const scoped = parsePolicyDocument(doc({ groups: ['pumps'] }));
    const open = parsePolicyDocument({
      ...doc({ groups: ['pumps'] }),
      statements: [
        { sid: 's', effect: 'allow', actions: ['mqtt:subscribe'], resources: ['devices/+/telemetry'] },
      ],
    });
    if (!scoped.ok || !open.ok) throw new Error('invalid');
    expect(lintPolicy(scoped.document)).toEqual([]);
    expect(lintPolicy(open.document).map((w) => w.code)).toEqual(['grants_everything']);
  });
});

describe('app principals', () => {
  it('the app default: its own apps/NAME/# subtree, nothing of devices or other apps', () => {
    const access = app([]);
    expect(access.connect()).toMatchObject({ allow: true, statement: 'app-own-topics' });
    expect(access.publish('apps/dashboard/state').allow).toBe(true);
    expect(access.subscribe('apps/dashboard/#').allow).toBe(true);
    expect(access.publish('apps/other/state').allow).toBe(false);
    expect(access.subscribe('devices/+/telemetry').allow).toBe(false);
    expect(access.receive('devices/pump-1/telemetry')).toBe(false);
  });

  it('${app.name} and ${app.instance} fill in; device variables have no value for an app', () => {
    const p = policy('app.dashboard', [
      {
        sid: 'inst',
        effect: 'allow',
        actions: ['mqtt:publish'],
        resources: ['apps/${app.name}/${app.instance}/out'],
      },
      { sid: 'dev', effect: 'allow', actions: ['mqtt:publish'], resources: ['devices/${device.id}/#'] },
      {
        sid: 'no-dev',
        effect: 'deny',
        actions: ['mqtt:publish'],
        resources: ['fleet/${device.group}/secret'],
      },
      { sid: 'fleet', effect: 'allow', actions: ['mqtt:publish'], resources: ['fleet/#'] },
    ]);
    const access = compile(appCtx({ instance: 'w1' }), [p]);
    expect(access.publish('apps/dashboard/w1/out').allow).toBe(true);
    expect(access.publish('apps/dashboard/w2/out').allow).toBe(false);
    expect(access.publish('fleet/pumps/secret')).toMatchObject({ allow: false, statement: 'no-dev' }); // widened
    expect(access.publish('fleet/pumps/open').allow).toBe(true);
    expect(access.describe().dropped.map((d) => `${d.statement}: ${d.reason}`)).toEqual([
      'dev: ${device.id} has no value for this app',
      'no-dev: ${device.group} has no value for this app: deny widened to fleet/+/secret',
    ]);
    // Without an instance, a statement naming ${app.instance} does not apply.
    expect(compile(appCtx(), [p]).publish('apps/dashboard/w1/out').allow).toBe(false);
    // And a device has no ${app.name}.
    const device = compile(deviceCtx('pump-1'), [p]);
    expect(device.publish('apps/dashboard/w1/out').allow).toBe(false);
  });

  it('an app without a purpose gets no grant under devices/', () => {
    const access = app(
      [grants('subscribe devices/+/telemetry group:pumps', 'pubsub #', 'publish apps/shared/x')],
      { purpose: null },
    );
    expect(access.subscribe('devices/+/telemetry').allow).toBe(false);
    expect(access.receive('devices/pump-1/telemetry')).toBe(false);
    expect(access.publish('apps/shared/x').allow).toBe(true);
    expect(access.describe().dropped).toEqual([
      { policy: 'app.dashboard', statement: 'grant-1', reason: 'app has no declared purpose' },
      { policy: 'app.dashboard', statement: 'grant-2', reason: 'app has no declared purpose' },
    ]);
  });

  it('wildcard subscriptions: an app is checked per message, a device is not granted one by targets', () => {
    const pumps = grants('subscribe devices/+/telemetry group:pumps');
    const access = app([pumps]);
    expect(access.subscribe('devices/+/telemetry')).toMatchObject({ allow: true, statement: 'grant-1' });
    expect(access.subscribe('devices/pump-1/telemetry').allow).toBe(true);
    expect(access.subscribe('devices/valve-1/telemetry')).toMatchObject({
      allow: false,
      reason: 'no_matching_statement',
    });
    expect(access.subscribe('devices/+/state').allow).toBe(false);
    expect(access.subscribe('devices/#')).toMatchObject({
      allow: false,
      reason: 'subscription_broader_than_rights',
    });
    const device = compile(deviceCtx('valve-1'), [{ ...pumps, name: 'peers' }]);
    expect(device.subscribe('devices/+/telemetry').allow).toBe(false);
    expect(device.subscribe('devices/pump-1/telemetry').allow).toBe(true);
    expect(device.subscribe('devices/valve-2/telemetry').allow).toBe(false);
  });
});

describe('an app in a zone', () => {
  const seg: Segmentation = {
    zones: [
      { name: 'plant-a', securityLevel: 2, members: { groups: [] }, addresses: [] },
      { name: 'plant-b', securityLevel: 2, members: { groups: [] }, addresses: [] },
      { name: 'ops', securityLevel: 3, members: { groups: [] }, addresses: [] },
    ],
    conduits: [
      {
        name: 'a-to-ops',
        from: 'plant-a',
        to: 'ops',
        topics: ['devices/+/telemetry'],
        direction: 'one-way',
        ports: [8883],
      },
    ],
  };
  const telemetry = grants('subscribe devices/+/telemetry', 'publish devices/+/commands/+');

  it('receives across zones only through a conduit, checked per message', () => {
    const access = app([telemetry], { zone: 'ops', seg });
    expect(access.subscribe('devices/+/telemetry').allow).toBe(true);
    expect(access.receive('devices/pump-1/telemetry')).toBe(true); // plant-a → ops conduit
    expect(access.receiveDecision('devices/pump-2/telemetry')).toMatchObject({
      allow: false,
      reason: 'cross_zone_no_conduit',
    });
    expect(access.subscribe('devices/pump-2/telemetry')).toMatchObject({
      allow: false,
      reason: 'cross_zone_no_conduit',
    });
    expect(access.publish('devices/pump-1/commands/ping')).toMatchObject({
      allow: false,
      reason: 'cross_zone_no_conduit',
    });
  });

  it("an app in the devices' zone needs no conduit; a device still may not subscribe with a wildcard", () => {
    const access = app([telemetry], { zone: 'plant-a', seg });
    expect(access.receive('devices/valve-1/telemetry')).toBe(true);
    expect(access.publish('devices/valve-1/commands/ping').allow).toBe(true);
    expect(access.receive('devices/valve-2/telemetry')).toBe(false);
    const device = compile(deviceCtx('pump-1'), [{ ...telemetry, name: 'wide' }], seg);
    expect(device.subscribe('devices/+/telemetry')).toMatchObject({
      allow: false,
      reason: 'cross_zone_wildcard',
    });
  });
});
