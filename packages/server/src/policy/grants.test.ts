import { describe, expect, it } from 'vitest';
import { formatGrant, grantsToPolicy, parseGrant, type Statement } from './index.ts';

describe('grants: the short form of an app policy statement', () => {
  it.each([
    [
      'subscribe devices/+/telemetry group:pumps',
      {
        sid: 'grant-1',
        effect: 'allow',
        actions: ['mqtt:subscribe', 'mqtt:receive'],
        resources: ['devices/+/telemetry'],
        conditions: { targets: { groups: ['pumps'] } },
      },
    ],
    [
      '  publish   devices/+/commands/#  zone:plant-a ',
      {
        sid: 'grant-1',
        effect: 'allow',
        actions: ['mqtt:publish'],
        resources: ['devices/+/commands/#'],
        conditions: { targets: { zones: ['plant-a'] } },
      },
    ],
    [
      'pubsub apps/${app.name}/shared/#',
      {
        sid: 'grant-1',
        effect: 'allow',
        actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
        resources: ['apps/${app.name}/shared/#'],
      },
    ],
    [
      'subscribe devices/+/state group:pumps device:valve-1 group:fans group:pumps',
      {
        sid: 'grant-1',
        effect: 'allow',
        actions: ['mqtt:subscribe', 'mqtt:receive'],
        resources: ['devices/+/state'],
        conditions: { targets: { groups: ['pumps', 'fans'], devices: ['valve-1'] } },
      },
    ],
  ])('%s', (text, statement) => {
    expect(parseGrant(text)).toEqual({ ok: true, statement });
  });

  it.each([
    ['', /^empty grant: expected "<subscribe\|publish\|pubsub> <filter>/],
    [
      'read devices/+/telemetry',
      /^"read" is not an action: a grant starts with subscribe, publish or pubsub$/,
    ],
    ['subscribe', /^subscribe of what\? a topic filter follows "subscribe"$/],
    [
      'subscribe devices/+/telemetry grop:pumps',
      /^"grop:pumps" is not a scope \(expected group:NAME, zone:NAME or device:ID\)$/,
    ],
    ['subscribe devices/+/telemetry pumps', /^"pumps" is not a scope/],
    ['subscribe devices/+/telemetry group:', /^"group:" is not a scope/],
    [
      'subscribe devices/#/telemetry',
      /^topic filter: "devices\/#\/telemetry" is not a valid MQTT topic filter$/,
    ],
    ['publish devices/${device.nope}/x', /^topic filter: unknown variable \$\{device\.nope\}$/],
    ['subscribe devices/+/telemetry group:a/b', /^group scope: must be a group, zone or device name$/],
    ['subscribe devices/+/telemetry zone:plant+a', /^zone scope: must be a group, zone or device name$/],
  ])('refuses %j', (text, problem) => {
    const parsed = parseGrant(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(problem);
  });

  it('writes a statement back as the grant it came from', () => {
    for (const text of [
      'subscribe devices/+/telemetry group:pumps',
      'publish devices/+/commands/# zone:plant-a device:pump-1',
      'pubsub apps/x/#',
      'subscribe devices/+/state group:pumps group:fans zone:a device:d',
    ]) {
      const parsed = parseGrant(text);
      if (!parsed.ok) throw new Error(parsed.problem);
      expect(formatGrant(parsed.statement)).toBe(text);
    }
  });

  it('does not write a statement that is no grant', () => {
    const base: Statement = { sid: 's', effect: 'allow', actions: ['mqtt:publish'], resources: ['a/b'] };
    expect(formatGrant({ ...base, actions: ['mqtt:publish'] })).toBe('publish a/b');
    expect(formatGrant({ ...base, effect: 'deny', actions: ['mqtt:publish'] })).toBeUndefined();
    expect(formatGrant({ ...base, actions: ['mqtt:connect'] })).toBeUndefined();
    expect(formatGrant({ ...base, actions: ['mqtt:receive'] })).toBeUndefined();
    expect(formatGrant({ ...base, actions: ['mqtt:publish'], resources: ['a', 'b'] })).toBeUndefined();
    expect(
      formatGrant({ ...base, actions: ['mqtt:publish'], conditions: { sourceAddress: ['10.0.0.0/8'] } }),
    ).toBeUndefined();
  });

  it('builds an app policy: one statement per grant, grant-1… in order; every bad grant named', () => {
    const good = grantsToPolicy([
      'subscribe devices/+/telemetry group:pumps',
      'publish devices/+/commands/+',
    ]);
    expect(good.ok && good.document.statements.map((s) => [s.sid, s.resources[0]])).toEqual([
      ['grant-1', 'devices/+/telemetry'],
      ['grant-2', 'devices/+/commands/+'],
    ]);
    expect(grantsToPolicy(['subscribe a/#', 'watch b', 'publish c group:x y'])).toEqual({
      ok: false,
      problems: [
        'grant 2 ("watch b"): "watch" is not an action: a grant starts with subscribe, publish or pubsub',
        'grant 3 ("publish c group:x y"): "y" is not a scope (expected group:NAME, zone:NAME or device:ID)',
      ],
    });
    expect(grantsToPolicy([])).toEqual({ ok: false, problems: ['no grants'] });
  });
});
