import type { PolicyAction, PolicyDocument, Statement, Targets } from './document.ts';
import { addressIn } from './document.ts';
import { reachOf, targetsHold, type DeviceFacts, type Reach } from './targets.ts';
import { intersects, isValidFilter, isValidTopic } from './topic-filter.ts';
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
  /**
   * Its place in the principal's policies: statements earlier in the list decide first. A statement compiled
   * once for every connection (static) counts from its policy's start (`Part.base`); a statement compiled per
   * connection (dynamic) holds its whole rank (base 0).
   */
  ordinal: number;
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

/** Statements per action, in tries, and the connect statements: one policy's static part, or a connection's own. */
interface Part {
  /** Added to a statement's ordinal for its rank (see `Compiled.ordinal`). */
  base: number;
  tries: Record<TrieAction, TrieNode>;
  connect: Compiled[];
}

type TrieAction = Exclude<PolicyAction, 'mqtt:connect'>;

/** The first deny and the first allow a decision has seen so far (one per program, reset per decision). */
interface Best {
  deny: Compiled | undefined;
  denyRank: number;
  allow: Compiled | undefined;
  allowRank: number;
  /** Subscribe: an allow statement overlaps the filter (whether or not it covers it). */
  overlapsAllow: boolean;
}

const newPart = (base: number): Part => ({
  base,
  tries: { 'mqtt:publish': new TrieNode(), 'mqtt:subscribe': new TrieNode(), 'mqtt:receive': new TrieNode() },
  connect: [],
});

/** A walk of a trie: the topic's or filter's levels, and what to do with each statement found. */
interface Walk {
  levels: readonly string[];
  visit: (s: Compiled) => void;
}

/** Statements of `node`'s trie whose filter matches the topic `levels` from level `i` [MQTT-4.7.1-2]. */
function visitMatching(node: TrieNode, w: Walk, i: number): void {
  const { levels, visit } = w;
  for (const s of node.hash) visit(s); // '#' also matches the parent level
  if (i === levels.length) {
    for (const s of node.end) visit(s);
    return;
  }
  const child = node.children.get(levels[i] as string);
  if (child) visitMatching(child, w, i + 1);
  if (node.plus) visitMatching(node.plus, w, i + 1); // [MQTT-4.7.2-1]
}

const isEmpty = (n: TrieNode) =>
  n.children.size === 0 && !n.plus && n.hash.length === 0 && n.end.length === 0;

/** Every statement of the trie below `node` (its own end and '#' lists excluded: the caller has them). */
function visitBelow(node: TrieNode, top: boolean, visit: (s: Compiled) => void): void {
  const all = (n: TrieNode) => {
    for (const s of n.hash) visit(s);
    for (const s of n.end) visit(s);
    for (const c of n.children.values()) all(c);
    if (n.plus) all(n.plus);
  };
  // A filter starting with a wildcard matches no `$` topic, so a statement under `$…` cannot overlap it.
  for (const [key, c] of node.children) if (!(top && key.charCodeAt(0) === 36)) all(c);
  if (node.plus) all(node.plus);
}

/**
 * Statements whose filter has a topic in common with the filter `levels` (from level `i`): `intersects` of
 * topic-filter.ts as a walk of the trie, O(depth) for a filter without wildcards.
 */
function visitIntersecting(node: TrieNode, w: Walk, i: number): void {
  const { levels, visit } = w;
  for (const s of node.hash) visit(s);
  if (i === levels.length) {
    for (const s of node.end) visit(s);
    return;
  }
  const level = levels[i] as string;
  if (level === '#') {
    for (const s of node.end) visit(s); // '#' also matches the parent level
    visitBelow(node, i === 0, visit);
    return;
  }
  if (level === '+') {
    for (const [key, c] of node.children)
      if (!(i === 0 && key.charCodeAt(0) === 36)) visitIntersecting(c, w, i + 1);
  } else {
    const child = node.children.get(level);
    if (child) visitIntersecting(child, w, i + 1);
  }
  if (node.plus) visitIntersecting(node.plus, w, i + 1);
}

/** Statements whose filter covers the filter `levels` (every topic it matches): `covers` as a trie walk. */
function visitCovering(node: TrieNode, w: Walk, i: number): void {
  const { levels, visit } = w;
  for (const s of node.hash) visit(s); // '…/#' covers anything from here, the parent level and a '#' too
  if (i === levels.length) {
    for (const s of node.end) visit(s);
    return;
  }
  const level = levels[i] as string;
  if (level === '#') return; // only a '#' covers a '#'
  if (level !== '+') {
    const child = node.children.get(level);
    if (child) visitCovering(child, w, i + 1);
  }
  if (node.plus) visitCovering(node.plus, w, i + 1); // '+' covers one level, or a '+'
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

/** A compiled device access: statements in tries per action (shared static parts and its own), caches per action. */
interface Program {
  input: CompileInput;
  clock: () => number;
  /** The policies' static parts (compiled once for every connection), then this connection's own statements. */
  parts: Part[];
  /** This connection's own statements (variables, conditions, or an app's): base 0, ordinal = rank. */
  own: Part;
  /** What applies of this connection's own statements, each with its rank (describe() lists all in policy order). */
  applied: { rank: number; statement: AppliedStatement }[];
  /** The static statements that apply, per policy, listed only when describe() asks (compiling stays O(own)). */
  sharedApplied: { base: number; list: StaticPolicy['applied'] }[];
  dropped: Dropped[];
  /** A statement has a time window: decisions depend on the clock and are not cached. */
  timed: boolean;
  /** A statement has targets: matches are checked against the topic's device (else the plain path runs). */
  targeted: boolean;
  /** The principal is an app (wildcard subscriptions are checked per message, see `subscribe`). */
  app: boolean;
  facts: (id: string) => DeviceFacts | undefined;
  best: Best;
  /** The topic's device, for statements with targets (set per decision when the program has any). */
  reach: Reach | undefined;
  /** The base of the part being walked, and the topic walk (one per program: no allocation per decision). */
  base: number;
  walk: Walk;
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

const decisionOf = (s: Statement, policy: string): Decision =>
  Object.freeze({
    allow: s.effect === 'allow',
    reason: s.effect === 'allow' ? 'allowed' : 'denied_by_statement',
    statement: s.sid,
    policy,
  });

/** Puts a statement's resources into a part's tries, per action (one compiled object per resource and action). */
function place(
  part: Part,
  st: { s: Statement; policy: string; ordinal: number; resources: readonly string[] },
  extra: { timeWindow: { from: number; to: number } | undefined; targets: Targets | undefined },
): void {
  const { s, policy, ordinal } = st;
  const decision = decisionOf(s, policy);
  // One object literal in one field order for every compiled statement: the decision loops read them by
  // the hundred thousand, and objects of one shape keep those reads fast (a spread would not).
  const compiled = (resource: string): Compiled => ({
    ordinal,
    policy,
    sid: s.sid,
    effect: s.effect,
    resource,
    timeWindow: extra.timeWindow,
    targets: extra.targets,
    decision,
  });
  for (const action of s.actions) {
    if (action === 'mqtt:connect') {
      // Targets limit a statement to device topics: a connect has none, so it does not apply.
      if (!extra.targets) part.connect.push(compiled('#'));
      continue;
    }
    for (const resource of st.resources) insert(part.tries[action], compiled(resource));
  }
}

/** Ranks: policy position × RANK_SPAN + the statement's place in its policy (a document holds ≤ 10,000). */
const RANK_SPAN = 1 << 20;

function addStatement(p: Program, s: Statement, at: { policy: AttachedPolicy; rank: number }): void {
  const { policy, rank } = at;
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
  p.applied.push({ rank, statement: appliedOf(s, policy.name, resources) });
  const window = s.conditions?.timeWindow;
  const timeWindow = window && { from: minutes(window.from), to: minutes(window.to) };
  if (timeWindow) p.timed = true;
  place(p.own, { s, policy: policy.name, ordinal: rank, resources }, { timeWindow, targets });
}

const appliedOf = (s: Statement, policy: string, resources: string[]): AppliedStatement => {
  const applied = { policy, sid: s.sid, effect: s.effect, actions: [...s.actions], resources };
  const targets = s.conditions?.targets;
  return targets ? { ...applied, targets } : applied;
};

/**
 * A statement the same for every device: no condition and no variable. Such statements are compiled once per
 * policy document and shared by every connection (an app's are always its own: a purpose may drop them).
 */
const isStatic = (s: Statement) =>
  (s.conditions === undefined || Object.keys(s.conditions).length === 0) &&
  s.resources.every((r) => !r.includes('${'));

/** A static statement as placed: what `place` needs to put it into another part's tries (a merged part). */
interface Placed {
  s: Statement;
  policy: string;
  ordinal: number;
  resources: readonly string[];
}

/** One policy's static statements and what describe() lists for them (their tries: `mergedPart`). */
interface StaticPolicy {
  applied: { ordinal: number; statement: AppliedStatement }[];
  count: number;
  /** The statements compiled per connection (conditions or variables), by their place in the document. */
  dynamic: number[];
  /** The static statements, to build a merged part for a list of policies (see `mergedPart`). */
  placed: Placed[];
}

/** Per policy document and name, its static part (documents are immutable; a new version is a new object). */
const staticParts = new WeakMap<PolicyDocument, Map<string, StaticPolicy>>();

function staticPolicy(policy: AttachedPolicy): StaticPolicy {
  let byName = staticParts.get(policy.document);
  if (!byName) staticParts.set(policy.document, (byName = new Map<string, StaticPolicy>()));
  const known = byName.get(policy.name);
  if (known) return known;
  const built: StaticPolicy = {
    applied: [],
    count: 0,
    dynamic: [],
    placed: [],
  };
  policy.document.statements.forEach((s, ordinal) => {
    if (!isStatic(s)) {
      built.dynamic.push(ordinal);
      return;
    }
    const resources = s.resources.filter((r) => isValidFilter(r));
    built.applied.push({ ordinal, statement: appliedOf(s, policy.name, resources) });
    built.placed.push({ s, policy: policy.name, ordinal, resources });
    built.count += 1;
  });
  byName.set(policy.name, built);
  return built;
}

const NO_EXTRA = { timeWindow: undefined, targets: undefined } as const;

/**
 * The static parts of a list of policies merged into one part (base 0, each statement ranked by its policy's
 * base plus its ordinal), so a decision walks one trie instead of one per policy. Built once per distinct list
 * (the first connection with those policies at those places) and kept in WeakMaps keyed by each policy's static
 * part in turn: when any of them is let go (a new version), the merged part goes with it.
 */
interface MergeNode {
  merged: Part | undefined;
  next: WeakMap<StaticPolicy, Map<number, MergeNode>>;
}

const mergeRoot: MergeNode = { merged: undefined, next: new WeakMap() };

function mergedPart(list: readonly { base: number; shared: StaticPolicy }[]): Part {
  let node = mergeRoot;
  for (const { base, shared } of list) {
    let byBase = node.next.get(shared);
    if (!byBase) node.next.set(shared, (byBase = new Map<number, MergeNode>()));
    let child = byBase.get(base);
    if (!child) byBase.set(base, (child = { merged: undefined, next: new WeakMap() }));
    node = child;
  }
  if (node.merged) return node.merged;
  const part = newPart(0);
  for (const { base, shared } of list)
    for (const placed of shared.placed) place(part, { ...placed, ordinal: base + placed.ordinal }, NO_EXTRA);
  node.merged = part;
  return part;
}

function buildProgram(input: CompileInput): Program {
  const own = newPart(0);
  const p: Program = {
    input,
    clock: input.clock ?? (() => Math.floor((Date.now() % 86_400_000) / 60_000)),
    parts: [],
    own,
    applied: [],
    sharedApplied: [],
    dropped: [...(input.leftOut ?? [])],
    timed: false,
    targeted: false,
    app: input.ctx.principal === 'app',
    facts: input.deviceFacts ?? (() => undefined),
    best: { deny: undefined, denyRank: 0, allow: undefined, allowRank: 0, overlapsAllow: false },
    reach: undefined,
    base: 0,
    walk: { levels: [], visit: () => undefined },
    caches: { 'mqtt:publish': new Map(), 'mqtt:receive': new Map() },
    subscribeCache: new Map(),
  };
  const statics: { base: number; shared: StaticPolicy }[] = [];
  input.policies.forEach((policy, position) => {
    const base = position * RANK_SPAN;
    const shared = p.app ? undefined : staticPolicy(policy);
    if (!shared) {
      policy.document.statements.forEach((s, ordinal) =>
        addStatement(p, s, { policy, rank: base + ordinal }),
      );
      return;
    }
    if (shared.count > 0) {
      statics.push({ base, shared });
      p.sharedApplied.push({ base, list: shared.applied });
    }
    for (const ordinal of shared.dynamic) {
      const s = policy.document.statements[ordinal];
      if (s) addStatement(p, s, { policy, rank: base + ordinal });
    }
  });
  // One static policy is walked as it is; several, as one merged part (one walk per decision, not one per policy).
  const [first] = statics;
  if (statics.length === 1 && first) {
    // Ranked from the policy's start (base 0) and shared wherever the policy is in the list.
    p.parts.push({ ...mergedPart([{ base: 0, shared: first.shared }]), base: first.base });
  } else if (statics.length > 1) p.parts.push(mergedPart(statics));
  p.parts.push(own);
  p.walk.visit = (s) => consider(p, s);
  return p;
}

function active(p: Program, s: Compiled): boolean {
  if (!s.timeWindow) return true;
  const m = p.clock();
  return s.timeWindow.from <= s.timeWindow.to
    ? m >= s.timeWindow.from && m < s.timeWindow.to
    : m >= s.timeWindow.from || m < s.timeWindow.to;
}

/** Does a matched statement apply to the topic's device? (Only statements with targets can fail this.) */
function applies(p: Program, s: Compiled, reach: Reach): boolean {
  if (!s.targets) return true;
  return reach.kind === 'device' && targetsHold(s.targets, reach.id, p.facts);
}

function resetBest(b: Best): void {
  b.deny = undefined;
  b.denyRank = Infinity;
  b.allow = undefined;
  b.allowRank = Infinity;
  b.overlapsAllow = false;
}

/** Deny wins over allow; among each, the statement earliest in the policies decides. */
const decided = (b: Best): Decision => b.deny?.decision ?? b.allow?.decision ?? DENY_NO_MATCH;

/** Takes a matched statement into account: its rank is the part's base (`p.base`) plus its ordinal. */
function consider(p: Program, s: Compiled): void {
  if (!active(p, s) || (p.reach && !applies(p, s, p.reach))) return;
  const rank = p.base + s.ordinal;
  const b = p.best;
  if (s.effect === 'deny') {
    if (rank < b.denyRank) {
      b.deny = s;
      b.denyRank = rank;
    }
  } else if (rank < b.allowRank) {
    b.allow = s;
    b.allowRank = rank;
  }
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

/** The statements matching a topic, across the parts: O(topic depth) per part. */
function decideTopic(p: Program, action: 'mqtt:publish' | 'mqtt:receive', topic: string): Decision {
  const levels = topic.split('/');
  p.walk.levels = levels;
  p.reach = p.targeted ? reachOf(levels) : undefined;
  resetBest(p.best);
  for (const part of p.parts) {
    const trie = part.tries[action];
    if (isEmpty(trie)) continue;
    p.base = part.base;
    visitMatching(trie, p.walk, 0);
  }
  return decided(p.best);
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
    if (decision === DENY_NO_MATCH) decision = decideTopic(p, action, topic);
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

/**
 * A subscription must be covered by an allowed filter and overlap no denied one: two walks of each part's
 * subscribe trie (the filters intersecting it, the filters covering it), O(filter depth) for a filter without
 * wildcards, never a scan of every statement.
 */
function subscribeStatementsDecide(p: Program, filter: string): Decision {
  const levels = filter.split('/');
  const reach = p.targeted ? reachOf(levels) : undefined;
  const b = p.best;
  resetBest(b);
  const applicable = (s: Compiled) => !reach || appliesToFilter(p, s, reach);
  let base = 0;
  const overlapping: Walk = {
    levels,
    visit: (s) => {
      if (!applicable(s)) return;
      if (s.effect === 'allow') {
        b.overlapsAllow = true;
        return;
      }
      const rank = base + s.ordinal;
      if (active(p, s) && rank < b.denyRank) {
        b.deny = s;
        b.denyRank = rank;
      }
    },
  };
  const covering: Walk = {
    levels,
    visit: (s) => {
      if (s.effect !== 'allow' || !applicable(s) || !active(p, s)) return;
      const rank = base + s.ordinal;
      if (rank < b.allowRank) {
        b.allow = s;
        b.allowRank = rank;
      }
    },
  };
  for (const part of p.parts) {
    base = part.base;
    visitIntersecting(part.tries['mqtt:subscribe'], overlapping, 0);
    visitCovering(part.tries['mqtt:subscribe'], covering, 0);
  }
  return b.deny?.decision ?? b.allow?.decision ?? (b.overlapsAllow ? DENY_NOT_COVERED : DENY_NO_MATCH);
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

function connect(p: Program): Decision {
  p.reach = undefined;
  resetBest(p.best);
  for (const part of p.parts) {
    p.base = part.base;
    for (const s of part.connect) consider(p, s);
  }
  return decided(p.best);
}

/**
 * Compiles the policies attached to a device (or an app) into per-action tries. Deny wins over allow; no
 * match is deny. Statements without variables or conditions are compiled once per policy document and shared
 * by every device's connection; the rest (and all of an app's) per connection. A publish or delivery decision
 * is a walk of the tries, O(topic depth), cached per topic (a cache hit allocates nothing); a subscription
 * must be covered by an allowed filter and overlap no denied one, found by walking the same tries. Zones come
 * first: a topic in another zone's namespace needs a conduit. A statement with `targets` applies only to
 * topics of the devices it names (checked as the walk finds it, only when some statement has targets). For
 * an app, a subscription that may reach any device is checked against zones and targets per message, on
 * delivery.
 */
export function compilePolicies(input: CompileInput): DeviceAccess {
  const p = buildProgram(input);
  return {
    deviceId: input.ctx.deviceId,
    zone: input.ctx.zone,
    connect: () => connect(p),
    publish: (topic) => lookup(p, 'mqtt:publish', topic),
    receive: (topic) => lookup(p, 'mqtt:receive', topic).allow,
    receiveDecision: (topic) => lookup(p, 'mqtt:receive', topic),
    subscribe: (filter) => subscribe(p, filter),
    describe: () => ({
      statements: [
        ...p.applied,
        ...p.sharedApplied.flatMap(({ base, list }) =>
          list.map((a) => ({ rank: base + a.ordinal, statement: a.statement })),
        ),
      ]
        .sort((a, b) => a.rank - b.rank)
        .map((a) => a.statement),
      dropped: p.dropped,
    }),
  };
}
