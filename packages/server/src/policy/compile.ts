import type { PolicyAction, PolicyDocument, Statement } from './document.ts';
import { addressIn } from './document.ts';
import { covers, intersects, isValidFilter, isValidTopic } from './topic-filter.ts';
import { substitute, type PolicyContext } from './variables.ts';
import { conduitFor, ownerOf, type Segmentation } from './zones.ts';

export interface Decision {
  readonly allow: boolean;
  /** Machine-readable reason, carried into denial events. */
  readonly reason: string;
  /** The statement that decided, and its policy (absent when no statement matched). */
  readonly statement?: string;
  readonly policy?: string;
}

/** A device's access, compiled once per connection (and again when policies change). */
export interface DeviceAccess {
  readonly deviceId: string;
  readonly zone: string | null;
  connect(): Decision;
  publish(topic: string): Decision;
  subscribe(filter: string): Decision;
  /** For deliveries (authorizeForward). */
  receive(topic: string): boolean;
  receiveDecision(topic: string): Decision;
  /** What applies to this device after variables and conditions, and what was dropped and why. */
  describe(): {
    statements: AppliedStatement[];
    dropped: { policy: string; statement: string; reason: string }[];
  };
}

export interface AttachedPolicy {
  name: string;
  version: number;
  document: PolicyDocument;
}

export interface AppliedStatement {
  policy: string;
  sid: string;
  effect: 'allow' | 'deny';
  actions: PolicyAction[];
  resources: string[];
}

interface Compiled {
  index: number;
  policy: string;
  sid: string;
  effect: 'allow' | 'deny';
  resource: string;
  timeWindow?: { from: number; to: number };
  decision: Decision;
}

const DENY_RESERVED: Decision = Object.freeze({ allow: false, reason: 'reserved_topic' });
const DENY_INVALID: Decision = Object.freeze({ allow: false, reason: 'invalid_topic' });
const DENY_NO_MATCH: Decision = Object.freeze({ allow: false, reason: 'no_matching_statement' });
const DENY_NOT_COVERED: Decision = Object.freeze({
  allow: false,
  reason: 'subscription_broader_than_rights',
});
const DENY_CROSS_ZONE: Decision = Object.freeze({ allow: false, reason: 'cross_zone_no_conduit' });
const DENY_AMBIGUOUS_ZONE: Decision = Object.freeze({ allow: false, reason: 'cross_zone_wildcard' });
const CACHE_LIMIT = 4096;

class TrieNode {
  readonly children = new Map<string, TrieNode>();
  plus: TrieNode | undefined;
  readonly hash: Compiled[] = [];
  readonly end: Compiled[] = [];
}

function insert(root: TrieNode, st: Compiled): void {
  let node = root;
  for (const level of st.resource.split('/')) {
    if (level === '#') {
      node.hash.push(st);
      return;
    }
    if (level === '+') node = node.plus ??= new TrieNode();
    else {
      let next = node.children.get(level);
      if (!next) node.children.set(level, (next = new TrieNode()));
      node = next;
    }
  }
  node.end.push(st);
}

function collect(node: TrieNode, levels: string[], i: number, dollar: boolean, out: Compiled[]): void {
  if (!(i === 0 && dollar)) for (const s of node.hash) out.push(s); // '#' also matches the parent level
  if (i === levels.length) {
    for (const s of node.end) out.push(s);
    return;
  }
  const child = node.children.get(levels[i] as string);
  if (child) collect(child, levels, i + 1, dollar, out);
  if (node.plus && !(i === 0 && dollar)) collect(node.plus, levels, i + 1, dollar, out); // [MQTT-4.7.2-1]
}

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));

function conditionsHold(s: Statement, ctx: PolicyContext): string | undefined {
  const c = s.conditions;
  if (!c) return undefined;
  if (c.sourceAddress && !addressIn(c.sourceAddress, ctx.sourceAddress))
    return "source address not in the statement's set";
  if (c.deviceState && !c.deviceState.includes(ctx.state)) return `device state is ${ctx.state}`;
  if (c.certificate)
    for (const [k, v] of Object.entries(c.certificate))
      if (ctx.cert[k] !== v) return `certificate ${k} does not match`;
  return undefined;
}

export interface CompileInput {
  ctx: PolicyContext;
  policies: readonly AttachedPolicy[];
  segmentation: Segmentation;
  /** The zone of another device (for `devices/<id>/…` topics); undefined when unknown. */
  deviceZone(id: string): string | null | undefined;
  /** Minutes since midnight UTC, for time-window conditions. */
  clock?: () => number;
}

/**
 * Compiles the policies attached to a device into per-action tries. Deny wins over allow; no match is deny.
 * A publish or delivery decision is a trie lookup, cached per topic (a cache hit allocates nothing); a
 * subscription must be covered by an allowed filter and overlap no denied one. Zones come first: a topic in
 * another zone's namespace needs a conduit.
 */
export function compilePolicies(input: CompileInput): DeviceAccess {
  const { ctx, segmentation } = input;
  const clock = input.clock ?? (() => Math.floor((Date.now() % 86_400_000) / 60_000));
  const tries: Record<Exclude<PolicyAction, 'mqtt:connect'>, TrieNode> = {
    'mqtt:publish': new TrieNode(),
    'mqtt:subscribe': new TrieNode(),
    'mqtt:receive': new TrieNode(),
  };
  const subscribeStatements: Compiled[] = [];
  const connectStatements: Compiled[] = [];
  const applied: AppliedStatement[] = [];
  const dropped: { policy: string; statement: string; reason: string }[] = [];
  let index = 0;
  let timed = false;

  for (const policy of input.policies) {
    for (const s of policy.document.statements) {
      const why = conditionsHold(s, ctx);
      if (why) {
        dropped.push({ policy: policy.name, statement: s.sid, reason: why });
        continue;
      }
      const resources: string[] = [];
      for (const r of s.resources) {
        const sub = substitute(r, ctx);
        if (sub.ok) {
          if (isValidFilter(sub.value)) resources.push(sub.value);
        } else if (s.effect === 'deny') {
          // A deny must never shrink: a variable that cannot be filled in stands for any level.
          const widened = r.replace(/\$\{[^}]*\}/g, '+');
          if (isValidFilter(widened)) resources.push(widened);
          dropped.push({
            policy: policy.name,
            statement: s.sid,
            reason: `${sub.reason}: deny widened to ${widened}`,
          });
        } else dropped.push({ policy: policy.name, statement: s.sid, reason: sub.reason });
      }
      applied.push({ policy: policy.name, sid: s.sid, effect: s.effect, actions: [...s.actions], resources });
      const timeWindow = s.conditions?.timeWindow && {
        from: minutes(s.conditions.timeWindow.from),
        to: minutes(s.conditions.timeWindow.to),
      };
      if (timeWindow) timed = true;
      const decision: Decision = Object.freeze({
        allow: s.effect === 'allow',
        reason: s.effect === 'allow' ? 'allowed' : 'denied_by_statement',
        statement: s.sid,
        policy: policy.name,
      });
      for (const action of s.actions) {
        if (action === 'mqtt:connect') {
          connectStatements.push({
            index: index++,
            policy: policy.name,
            sid: s.sid,
            effect: s.effect,
            resource: '#',
            timeWindow,
            decision,
          });
          continue;
        }
        for (const resource of resources) {
          const compiled: Compiled = {
            index: index++,
            policy: policy.name,
            sid: s.sid,
            effect: s.effect,
            resource,
            timeWindow,
            decision,
          };
          insert(tries[action], compiled);
          if (action === 'mqtt:subscribe') subscribeStatements.push(compiled);
        }
      }
    }
  }

  const active = (s: Compiled) => {
    if (!s.timeWindow) return true;
    const m = clock();
    return s.timeWindow.from <= s.timeWindow.to
      ? m >= s.timeWindow.from && m < s.timeWindow.to
      : m >= s.timeWindow.from || m < s.timeWindow.to;
  };

  function pick(matched: readonly Compiled[]): Decision {
    let deny: Compiled | undefined;
    let allow: Compiled | undefined;
    for (const s of matched) {
      if (!active(s)) continue;
      if (s.effect === 'deny') {
        if (!deny || s.index < deny.index) deny = s;
      } else if (!allow || s.index < allow.index) allow = s;
    }
    return deny?.decision ?? allow?.decision ?? DENY_NO_MATCH;
  }

  /** Zone rule: a topic owned by another zone needs a conduit in the right direction. */
  function zoneCheck(topic: string, outbound: boolean, isFilter: boolean): Decision | undefined {
    if (segmentation.zones.length === 0) return undefined;
    const owner = ownerOf(topic, (id) => input.deviceZone(id));
    if (owner.kind === 'none') return undefined;
    if (owner.kind === 'ambiguous') return DENY_AMBIGUOUS_ZONE;
    if (owner.zone === ctx.zone) return undefined;
    const conduit = outbound
      ? conduitFor(segmentation, ctx.zone, owner.zone, topic, isFilter)
      : conduitFor(segmentation, owner.zone, ctx.zone, topic, isFilter);
    return conduit ? undefined : DENY_CROSS_ZONE;
  }

  const scratch: Compiled[] = [];
  function lookup(
    action: 'mqtt:publish' | 'mqtt:receive',
    topic: string,
    cache: Map<string, Decision>,
  ): Decision {
    const hit = cache.get(topic);
    if (hit) return hit;
    let decision: Decision;
    if (!isValidTopic(topic)) decision = DENY_INVALID;
    else if (topic.charCodeAt(0) === 36 /* $ */) decision = DENY_RESERVED;
    else {
      decision = zoneCheck(topic, action === 'mqtt:publish', false) ?? DENY_NO_MATCH;
      if (decision === DENY_NO_MATCH) {
        scratch.length = 0;
        collect(tries[action], topic.split('/'), 0, false, scratch);
        decision = pick(scratch);
      }
    }
    if (!timed) {
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(topic, decision);
    }
    return decision;
  }

  const publishCache = new Map<string, Decision>();
  const receiveCache = new Map<string, Decision>();
  const subscribeCache = new Map<string, Decision>();

  return {
    deviceId: ctx.deviceId,
    zone: ctx.zone,
    connect: () => pick(connectStatements),
    publish: (topic) => lookup('mqtt:publish', topic, publishCache),
    receive: (topic) => lookup('mqtt:receive', topic, receiveCache).allow,
    receiveDecision: (topic) => lookup('mqtt:receive', topic, receiveCache),
    subscribe(filter) {
      const hit = subscribeCache.get(filter);
      if (hit) return hit;
      let decision: Decision;
      if (!isValidFilter(filter)) decision = DENY_INVALID;
      else if (filter.charCodeAt(0) === 36) decision = DENY_RESERVED;
      else {
        decision = zoneCheck(filter, false, true) ?? DENY_NO_MATCH;
        if (decision === DENY_NO_MATCH) {
          let deny: Compiled | undefined;
          let allow: Compiled | undefined;
          for (const s of subscribeStatements) {
            if (!active(s)) continue;
            if (s.effect === 'deny' && intersects(s.resource, filter) && (!deny || s.index < deny.index))
              deny = s;
            if (s.effect === 'allow' && covers(s.resource, filter) && (!allow || s.index < allow.index))
              allow = s;
          }
          const overlapsAllow = subscribeStatements.some(
            (s) => s.effect === 'allow' && intersects(s.resource, filter),
          );
          decision = deny?.decision ?? allow?.decision ?? (overlapsAllow ? DENY_NOT_COVERED : DENY_NO_MATCH);
        }
      }
      if (!timed) {
        if (subscribeCache.size >= CACHE_LIMIT) subscribeCache.clear();
        subscribeCache.set(filter, decision);
      }
      return decision;
    },
    describe: () => ({ statements: applied, dropped }),
  };
}
