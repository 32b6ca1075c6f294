import { describe, expect, it } from 'vitest';
import {
  compilePolicies,
  covers,
  intersects,
  isValidFilter,
  isValidTopic,
  matches,
  POLICY_VERSION,
  type AttachedPolicy,
  type PolicyAction,
  type PolicyContext,
  type Statement,
} from './index.ts';

/**
 * The compiled decisions (shared static tries per policy, per-connection tries, trie walks for subscriptions)
 * against a plain reading of the rules: every statement in order, filters compared with topic-filter.ts.
 * Seeded random policy sets over a small alphabet (so that wildcards, `$` topics, variables and conditions
 * meet often); every difference is a failure, printed with its inputs.
 */

/** mulberry32: a small seeded generator, so a failure reproduces. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ACTIONS: PolicyAction[] = ['mqtt:connect', 'mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'];
const LEVELS = ['a', 'b', 'c', 'd1', '', '$SYS'];

function generator(seed: number) {
  const r = rng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
  const level = () => pick(LEVELS);
  const topic = () => {
    const depth = 1 + Math.floor(r() * 4);
    return Array.from({ length: depth }, (_, i) => (i > 0 && level() === '$SYS' ? 'x' : level())).join('/');
  };
  const filter = () => {
    const depth = 1 + Math.floor(r() * 4);
    const parts = Array.from({ length: depth }, (_, i) => {
      const x = r();
      if (x < 0.2) return '+';
      if (x < 0.3 && i === depth - 1) return '#';
      return i > 0 && level() === '$SYS' ? 'x' : level();
    });
    return parts.join('/');
  };
  const resource = () => {
    const f = filter();
    const x = r();
    // Variables: one filled in (device.id), one that has no value (a deny widens, an allow drops).
    if (x < 0.15) return f.replace(/^[^/]*/, '${device.id}');
    if (x < 0.2) return `${f}/\${device.attr.site}`.replace('#/', '');
    return f;
  };
  const statement = (i: number): Statement => {
    const x = r();
    const conditions =
      x < 0.1
        ? { deviceState: ['active' as const] }
        : x < 0.2
          ? { deviceState: ['quarantined' as const] }
          : x < 0.25
            ? {}
            : undefined;
    const actions = ACTIONS.filter(() => r() < 0.5);
    return {
      sid: `s${i}`,
      effect: r() < 0.35 ? 'deny' : 'allow',
      actions: actions.length ? actions : [pick(ACTIONS)],
      resources: Array.from({ length: 1 + Math.floor(r() * 3) }, resource),
      ...(conditions ? { conditions } : {}),
    };
  };
  const policies = (): AttachedPolicy[] =>
    Array.from({ length: 1 + Math.floor(r() * 3) }, (_, k) => ({
      name: `p${k}`,
      version: 1,
      document: {
        version: POLICY_VERSION,
        statements: Array.from({ length: 1 + Math.floor(r() * 12) }, (_, i) => statement(i)),
      },
    }));
  return { topic, filter, policies };
}

const ctx: PolicyContext = {
  deviceId: 'd1',
  group: null,
  zone: null,
  attributes: {},
  cert: { cn: 'd1' },
  state: 'active',
  sourceAddress: null,
};

/** The statements that apply, in order, with their resources filled in (a deny widens, as compile.ts does). */
function effective(policies: readonly AttachedPolicy[]) {
  const out: {
    policy: string;
    sid: string;
    effect: 'allow' | 'deny';
    actions: PolicyAction[];
    resources: string[];
  }[] = [];
  for (const p of policies)
    for (const s of p.document.statements) {
      if (s.conditions?.deviceState && !s.conditions.deviceState.includes(ctx.state)) continue;
      const resources = s.resources.flatMap((res) => {
        const filled = res.replace('${device.id}', ctx.deviceId);
        if (!filled.includes('${')) return isValidFilter(filled) ? [filled] : [];
        if (s.effect !== 'deny') return [];
        const widened = res.replace(/\$\{[^}]*\}/g, '+').replace('${device.id}', '+');
        return isValidFilter(widened) ? [widened] : [];
      });
      out.push({ policy: p.name, sid: s.sid, effect: s.effect, actions: s.actions, resources });
    }
  return out;
}

type Oracle = ReturnType<typeof effective>;
const verdict = (deny: Oracle[number] | undefined, allow: Oracle[number] | undefined, none: string) =>
  deny
    ? { allow: false, statement: deny.sid, policy: deny.policy }
    : allow
      ? { allow: true, statement: allow.sid, policy: allow.policy }
      : { allow: false, reason: none };

function oracleTopic(list: Oracle, action: PolicyAction, topic: string) {
  if (!isValidTopic(topic)) return { allow: false, reason: 'invalid_topic' };
  if (topic.startsWith('$')) return { allow: false, reason: 'reserved_topic' };
  const hit = (s: Oracle[number]) => s.actions.includes(action) && s.resources.some((f) => matches(f, topic));
  return verdict(
    list.find((s) => s.effect === 'deny' && hit(s)),
    list.find((s) => s.effect === 'allow' && hit(s)),
    'no_matching_statement',
  );
}

function oracleSubscribe(list: Oracle, filter: string) {
  if (!isValidFilter(filter)) return { allow: false, reason: 'invalid_topic' };
  if (filter.startsWith('$')) return { allow: false, reason: 'reserved_topic' };
  const subs = list.filter((s) => s.actions.includes('mqtt:subscribe'));
  const deny = subs.find((s) => s.effect === 'deny' && s.resources.some((f) => intersects(f, filter)));
  const allow = subs.find((s) => s.effect === 'allow' && s.resources.some((f) => covers(f, filter)));
  const overlaps = subs.some((s) => s.effect === 'allow' && s.resources.some((f) => intersects(f, filter)));
  return verdict(deny, allow, overlaps ? 'subscription_broader_than_rights' : 'no_matching_statement');
}

function oracleConnect(list: Oracle) {
  const connects = list.filter((s) => s.actions.includes('mqtt:connect'));
  return verdict(
    connects.find((s) => s.effect === 'deny'),
    connects.find((s) => s.effect === 'allow'),
    'no_matching_statement',
  );
}

const shape = (d: { allow: boolean; reason: string; statement?: string; policy?: string }) =>
  d.statement
    ? { allow: d.allow, statement: d.statement, policy: d.policy }
    : { allow: d.allow, reason: d.reason };

describe('compiled decisions equal a plain reading of the rules', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: 150 policy sets, 40 topics and 40 filters each', (seed) => {
    const g = generator(seed);
    for (let set = 0; set < 150; set++) {
      const policies = g.policies();
      const list = effective(policies);
      // Twice: the second compile reuses the static parts the first one built (and must decide the same).
      for (const round of [1, 2]) {
        const access = compilePolicies({
          ctx,
          policies,
          segmentation: { zones: [], conduits: [] },
          deviceZone: () => undefined,
        });
        const where = {
          seed,
          set,
          round,
          policies: JSON.stringify(policies.map((p) => p.document.statements)),
        };
        expect({ ...where, d: shape(access.connect()) }).toEqual({ ...where, d: oracleConnect(list) });
        for (let q = 0; q < 40; q++) {
          const topic = g.topic();
          for (const action of ['mqtt:publish', 'mqtt:receive'] as const) {
            const got = action === 'mqtt:publish' ? access.publish(topic) : access.receiveDecision(topic);
            expect({ ...where, action, topic, d: shape(got) }).toEqual({
              ...where,
              action,
              topic,
              d: oracleTopic(list, action, topic),
            });
          }
          const filter = g.filter();
          expect({ ...where, filter, d: shape(access.subscribe(filter)) }).toEqual({
            ...where,
            filter,
            d: oracleSubscribe(list, filter),
          });
        }
      }
    }
  });

  it('lists what applies in policy order, static and per-connection statements interleaved', () => {
    const policies: AttachedPolicy[] = [
      {
        name: 'mixed',
        version: 1,
        document: {
          version: POLICY_VERSION,
          statements: [
            { sid: 'static-1', effect: 'allow', actions: ['mqtt:publish'], resources: ['a/#'] },
            {
              sid: 'own-1',
              effect: 'allow',
              actions: ['mqtt:publish'],
              resources: ['devices/${device.id}/#'],
            },
            { sid: 'static-2', effect: 'deny', actions: ['mqtt:publish'], resources: ['a/b'] },
          ],
        },
      },
    ];
    const access = compilePolicies({
      ctx,
      policies,
      segmentation: { zones: [], conduits: [] },
      deviceZone: () => undefined,
    });
    expect(access.describe().statements.map((s) => s.sid)).toEqual(['static-1', 'own-1', 'static-2']);
    expect(access.publish('a/b')).toMatchObject({ allow: false, statement: 'static-2' });
    expect(access.publish('devices/d1/x')).toMatchObject({ allow: true, statement: 'own-1' });
    expect(access.publish('devices/d2/x')).toMatchObject({ allow: false, reason: 'no_matching_statement' });
  });
});
