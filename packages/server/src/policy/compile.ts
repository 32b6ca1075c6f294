import type { PolicyAction, PolicyDocument, Statement, Targets } from './document.ts';
import { addressIn } from './document.ts';
import { reachOf, targetsHold, type DeviceFacts, type Reach } from './targets.ts';
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
  /** The device's id; empty for an app (an app's access is compiled by the same engine). */
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
  /** The devices the statement is limited to, when it is. */
  targets?: Targets;
}

interface Compiled {
  index: number;
  policy: string;
  sid: string;
  effect: 'allow' | 'deny';
  resource: string;
  timeWindow?: { from: number; to: number };
  /** Which devices' topics the statement reaches (absent: it is not limited to devices). */
  targets: Targets | undefined;
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

/** A lookup in progress: the topic's levels and where matches go (reused, no allocation per lookup). */
interface Query {
  levels: string[];
  out: Compiled[];
}

function collect(node: TrieNode, i: number, q: Query): void {
  for (const s of node.hash) q.out.push(s); // '#' also matches the parent level
  if (i === q.levels.length) {
    for (const s of node.end) q.out.push(s);
    return;
  }
  const child = node.children.get(q.levels[i] as string);
  if (child) collect(child, i + 1, q);
  if (node.plus) collect(node.plus, i + 1, q); // [MQTT-4.7.2-1]
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
  const standing = ctx.attestation ?? 'none';
  if (c.attestation && !c.attestation.includes(standing)) return `attestation standing is ${standing}`;
  return undefined;
}

export interface CompileInput {
  ctx: PolicyContext;
  policies: readonly AttachedPolicy[];
  segmentation: Segmentation;
  /** The zone of another device (for `devices/<id>/…` topics); undefined when unknown. */
  deviceZone(id: string): string | null | undefined;
  /** Group and zone of another device, for statements with `targets` (none: such statements never apply). */
  deviceFacts?: (id: string) => DeviceFacts | undefined;
  /** Minutes since midnight UTC, for time-window conditions. */
  clock?: () => number;
  /**
   * Statements left out before compiling, and why (a device held by attestation gets only the quarantine
   * policy: its own policies' statements are listed here), shown first by `describe()`.
   */
  leftOut?: readonly Dropped[];
}

type Dropped = { policy: string; statement: string; reason: string };

/** A compiled device access: statements in tries per action, caches per action. */
interface Program {
  input: CompileInput;
  clock: () => number;
  tries: Record<Exclude<PolicyAction, 'mqtt:connect'>, TrieNode>;
  subscribeStatements: Compiled[];
  connectStatements: Compiled[];
  applied: AppliedStatement[];
  dropped: Dropped[];
  /** A statement has a time window: decisions depend on the clock and are not cached. */
  timed: boolean;
  /** A statement has targets: matches are checked against the topic's device (else the plain path runs). */
  targeted: boolean;
  /** The principal is an app (wildcard subscriptions are checked per message, see `subscribe`). */
  app: boolean;
  facts: (id: string) => DeviceFacts | undefined;
  index: number;
  query: Query;
  caches: { 'mqtt:publish': Map<string, Decision>; 'mqtt:receive': Map<string, Decision> };
  subscribeCache: Map<string, Decision>;
}

/** A statement's resources with its variables filled in (a deny that cannot be filled in widens). */
function resourcesOf(s: Statement, policy: AttachedPolicy, p: Program): string[] {
  const resources: string[] = [];
  for (const r of s.resources) {
    const sub = substitute(r, p.input.ctx);
    if (sub.ok) {
      if (isValidFilter(sub.value)) resources.push(sub.value);
    } else if (s.effect === 'deny') {
      // A deny must never shrink: a variable that cannot be filled in stands for any level.
      const widened = r.replace(/\$\{[^}]*\}/g, '+');
      if (isValidFilter(widened)) resources.push(widened);
      p.dropped.push({
        policy: policy.name,
        statement: s.sid,
        reason: `${sub.reason}: deny widened to ${widened}`,
      });
    } else p.dropped.push({ policy: policy.name, statement: s.sid, reason: sub.reason });
  }
  return resources;
}

const NO_PURPOSE = 'app has no declared purpose';

/** An app without a declared purpose is granted nothing under `devices/` (issue 14: no purpose, no device data). */
function withoutPurpose(p: Program, s: Statement, resources: readonly string[]): boolean {
  const { ctx } = p.input;
  if (ctx.principal !== 'app' || ctx.app?.purpose || s.effect !== 'allow') return false;
  return resources.some((r) => intersects(r, 'devices/#'));
}

function addStatement(p: Program, s: Statement, policy: AttachedPolicy): void {
  const why = conditionsHold(s, p.input.ctx);
  if (why) {
    p.dropped.push({ policy: policy.name, statement: s.sid, reason: why });
    return;
  }
  const resources = resourcesOf(s, policy, p);
  if (withoutPurpose(p, s, resources)) {
    p.dropped.push({ policy: policy.name, statement: s.sid, reason: NO_PURPOSE });
    return;
  }
  const targets = s.conditions?.targets;
  if (targets) p.targeted = true;
  const applied = { policy: policy.name, sid: s.sid, effect: s.effect, actions: [...s.actions], resources };
  p.applied.push(targets ? { ...applied, targets } : applied);
  const window = s.conditions?.timeWindow;
  const timeWindow = window && { from: minutes(window.from), to: minutes(window.to) };
  if (timeWindow) p.timed = true;
  const decision: Decision = Object.freeze({
    allow: s.effect === 'allow',
    reason: s.effect === 'allow' ? 'allowed' : 'denied_by_statement',
    statement: s.sid,
    policy: policy.name,
  });
  // One object literal in one field order for every compiled statement: the decision loops read them by
  // the hundred thousand, and objects of one shape keep those reads fast (a spread would not).
  const compiled = (resource: string): Compiled => ({
    index: p.index++,
    policy: policy.name,
    sid: s.sid,
    effect: s.effect,
    resource,
    timeWindow,
    targets,
    decision,
  });
  for (const action of s.actions) {
    if (action === 'mqtt:connect') {
      // Targets limit a statement to device topics: a connect has none, so it does not apply.
      if (!targets) p.connectStatements.push(compiled('#'));
      continue;
    }
    for (const resource of resources) {
      const statement = compiled(resource);
      insert(p.tries[action], statement);
      if (action === 'mqtt:subscribe') p.subscribeStatements.push(statement);
    }
  }
}

function buildProgram(input: CompileInput): Program {
  const p: Program = {
    input,
    clock: input.clock ?? (() => Math.floor((Date.now() % 86_400_000) / 60_000)),
    tries: {
      'mqtt:publish': new TrieNode(),
      'mqtt:subscribe': new TrieNode(),
      'mqtt:receive': new TrieNode(),
    },
    subscribeStatements: [],
    connectStatements: [],
    applied: [],
    dropped: [...(input.leftOut ?? [])],
    timed: false,
    targeted: false,
    app: input.ctx.principal === 'app',
    facts: input.deviceFacts ?? (() => undefined),
    index: 0,
    query: { levels: [], out: [] },
    caches: { 'mqtt:publish': new Map(), 'mqtt:receive': new Map() },
    subscribeCache: new Map(),
  };
  for (const policy of input.policies) for (const s of policy.document.statements) addStatement(p, s, policy);
  return p;
}

function active(p: Program, s: Compiled): boolean {
  if (!s.timeWindow) return true;
  const m = p.clock();
  return s.timeWindow.from <= s.timeWindow.to
    ? m >= s.timeWindow.from && m < s.timeWindow.to
    : m >= s.timeWindow.from || m < s.timeWindow.to;
}

function pick(p: Program, matched: readonly Compiled[]): Decision {
  let deny: Compiled | undefined;
  let allow: Compiled | undefined;
  for (const s of matched) {
    if (!active(p, s)) continue;
    if (s.effect === 'deny') {
      if (!deny || s.index < deny.index) deny = s;
    } else if (!allow || s.index < allow.index) allow = s;
  }
  return deny?.decision ?? allow?.decision ?? DENY_NO_MATCH;
}

/** Does a matched statement apply to the topic's device? (Only statements with targets can fail this.) */
function applies(p: Program, s: Compiled, reach: Reach): boolean {
  if (!s.targets) return true;
  return reach.kind === 'device' && targetsHold(s.targets, reach.id, p.facts);
}

/** `pick` for a program with targets: a statement whose targets leave out the topic's device is skipped. */
function pickTargeted(p: Program, matched: readonly Compiled[], levels: readonly string[]): Decision {
  const reach = reachOf(levels);
  let deny: Compiled | undefined;
  let allow: Compiled | undefined;
  for (const s of matched) {
    if (!active(p, s) || !applies(p, s, reach)) continue;
    if (s.effect === 'deny') {
      if (!deny || s.index < deny.index) deny = s;
    } else if (!allow || s.index < allow.index) allow = s;
  }
  return deny?.decision ?? allow?.decision ?? DENY_NO_MATCH;
}

/** Zone rule: a topic owned by another zone needs a conduit in the right direction. */
function zoneCheck(
  p: Program,
  topic: string,
  use: 'publish' | 'receive' | 'subscribe',
): Decision | undefined {
  const { segmentation, ctx } = p.input;
  if (segmentation.zones.length === 0) return undefined;
  const owner = ownerOf(topic, (id) => p.input.deviceZone(id));
  if (owner.kind === 'none') return undefined;
  // An app's wildcard subscription is checked against zones per message, on delivery (`receive`).
  if (owner.kind === 'ambiguous') return p.app && use === 'subscribe' ? undefined : DENY_AMBIGUOUS_ZONE;
  if (owner.zone === ctx.zone) return undefined;
  const outbound = use === 'publish';
  const conduit = conduitFor(segmentation, {
    from: outbound ? ctx.zone : owner.zone,
    to: outbound ? owner.zone : ctx.zone,
    topic,
    isFilter: use === 'subscribe',
  });
  return conduit ? undefined : DENY_CROSS_ZONE;
}

/** Caches a decision (never one that depends on the clock: the caller checks `timed`). */
function remember(cache: Map<string, Decision>, key: string, decision: Decision): Decision {
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, decision);
  return decision;
}

function lookup(p: Program, action: 'mqtt:publish' | 'mqtt:receive', topic: string): Decision {
  const cache = p.caches[action];
  const hit = cache.get(topic);
  if (hit) return hit;
  let decision: Decision;
  if (!isValidTopic(topic)) decision = DENY_INVALID;
  else if (topic.charCodeAt(0) === 36 /* $ */) decision = DENY_RESERVED;
  else {
    decision = zoneCheck(p, topic, action === 'mqtt:publish' ? 'publish' : 'receive') ?? DENY_NO_MATCH;
    if (decision === DENY_NO_MATCH) {
      p.query.levels = topic.split('/');
      p.query.out.length = 0;
      collect(p.tries[action], 0, p.query);
      decision = p.targeted ? pickTargeted(p, p.query.out, p.query.levels) : pick(p, p.query.out);
    }
  }
  return p.timed ? decision : remember(cache, topic, decision);
}

/**
 * Does a subscribe statement apply to a filter? Without targets, always. With targets: for a filter naming one
 * device, when that device is targeted; for a filter that may reach any device (`devices/+/…`), an app's
 * allow covers it (targets are then checked per message, on delivery) while a device's allow does not, and
 * a deny applies to a device (a deny never shrinks) but not to an app (checked on delivery too).
 */
function appliesToFilter(p: Program, s: Compiled, reach: Reach): boolean {
  if (!s.targets || reach.kind !== 'wildcard') return applies(p, s, reach);
  return p.app === (s.effect === 'allow');
}

/** A subscription must be covered by an allowed filter and overlap no denied one. */
function subscribeStatementsDecide(p: Program, filter: string): Decision {
  let deny: Compiled | undefined;
  let allow: Compiled | undefined;
  let statements = p.subscribeStatements;
  if (p.targeted) {
    const reach = reachOf(filter.split('/'));
    statements = statements.filter((s) => appliesToFilter(p, s, reach));
  }
  for (const s of statements) {
    if (!active(p, s)) continue;
    if (s.effect === 'deny' && intersects(s.resource, filter) && (!deny || s.index < deny.index)) deny = s;
    if (s.effect === 'allow' && covers(s.resource, filter) && (!allow || s.index < allow.index)) allow = s;
  }
  const overlapsAllow = statements.some((s) => s.effect === 'allow' && intersects(s.resource, filter));
  return deny?.decision ?? allow?.decision ?? (overlapsAllow ? DENY_NOT_COVERED : DENY_NO_MATCH);
}

function subscribe(p: Program, filter: string): Decision {
  const hit = p.subscribeCache.get(filter);
  if (hit) return hit;
  let decision: Decision;
  if (!isValidFilter(filter)) decision = DENY_INVALID;
  else if (filter.charCodeAt(0) === 36) decision = DENY_RESERVED;
  else {
    decision = zoneCheck(p, filter, 'subscribe') ?? DENY_NO_MATCH;
    if (decision === DENY_NO_MATCH) decision = subscribeStatementsDecide(p, filter);
  }
  return p.timed ? decision : remember(p.subscribeCache, filter, decision);
}

/**
 * Compiles the policies attached to a device (or an app) into per-action tries. Deny wins over allow; no
 * match is deny. A publish or delivery decision is a trie lookup, cached per topic (a cache hit allocates
 * nothing); a subscription must be covered by an allowed filter and overlap no denied one. Zones come first:
 * a topic in another zone's namespace needs a conduit. A statement with `targets` applies only to topics of
 * the devices it names (checked after the trie lookup, only when some statement has targets). For an app, a
 * subscription that may reach any device is checked against zones and targets per message, on delivery.
 */
export function compilePolicies(input: CompileInput): DeviceAccess {
  const p = buildProgram(input);
  return {
    deviceId: input.ctx.deviceId,
    zone: input.ctx.zone,
    connect: () => pick(p, p.connectStatements),
    publish: (topic) => lookup(p, 'mqtt:publish', topic),
    receive: (topic) => lookup(p, 'mqtt:receive', topic).allow,
    receiveDecision: (topic) => lookup(p, 'mqtt:receive', topic),
    subscribe: (filter) => subscribe(p, filter),
    describe: () => ({ statements: p.applied, dropped: p.dropped }),
  };
}
