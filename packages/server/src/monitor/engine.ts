import { isIP } from 'node:net';
import { deviceIdOf, isIn, subjectOf as subjects, type AuditEntry, type EventsIn } from '../events/index.ts';
import { addressIn } from '../policy/index.ts';
import type { DeviceMetricsReport } from '@bulwark/protocol';
import { createBaselines, type BaselineState } from './baseline.ts';
import { DeviceMeter, HOT, SIZE_BUCKETS, bucketMiddleBytes, hotMetrics } from './meter.ts';
import {
  builtinDetectors,
  builtinsSchema,
  type Behaviour,
  type EffectiveProfile,
  type Severity,
} from './profile.ts';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** What a detector found: one alert per detector and subject while it is not resolved. */
export interface Finding {
  detector: string;
  /** `device:<id>`, `address:<ip>`, `user:<name>` … */
  subject: string;
  deviceId: string | null;
  severity: Severity;
  title: string;
  evidence: Record<string, Json>;
  /** The profile whose behaviour fired (rule behaviours). */
  profile?: string | undefined;
  /** When the offending message or event happened (epoch ms). */
  at: number;
}

export interface EngineSink {
  raise(finding: Finding): void;
  /** The behaviour cleared: resolve the open alert for this detector and subject, if any. */
  clear(detector: string, subject: string, resolution: string): void;
}

export interface EngineDeps {
  sink: EngineSink;
  /** Built-in settings for subjects that are not devices (addresses, users): profiles attached to `all`. */
  globalProfile(): EffectiveProfile;
  /** The default silence threshold (config monitor.silentAfter); profiles may override it. */
  silentAfterMs: number;
  baselineIntervalMs: number;
  /** Start of this process: silence and baselines do not count time before it. */
  startedAt: number;
}

interface RuleState {
  b: Behaviour & { profile: string };
  /** HOT index for counters the broker bumps, -1 otherwise. */
  hot: number;
  start: number;
  base: number;
  sum: number;
  count: number;
  max: number;
  min: number;
  last: number;
  hist: Uint32Array | undefined;
  values: number[] | undefined;
  seen: Set<string> | undefined;
  violations: string[];
  breached: boolean;
  consecutive: number;
  clean: number;
  alarmed: boolean;
}

/** What a device was seen doing, kept across restarts (novelty detectors). */
export interface NoveltyState {
  networks: string[];
  topics: string[];
  hours: number[];
  connections: number;
  messages: number;
  lastPublishAt: number;
  /** An operator resolved its silence alert: no new one until the device is heard from again. */
  silenceDismissed?: boolean;
}

interface DeviceState {
  id: string;
  group: string | null;
  meter: DeviceMeter;
  profile: EffectiveProfile;
  rules: RuleState[];
  /** Live sessions by source address (two at once: a cloned identity). */
  sessions: Map<string, number>;
  disconnectedAt: number | null;
  lastTotals: Float64Array;
  baselineTotals: Float64Array;
  lastActivity: number;
  novelty: NoveltyState;
  dirty: boolean;
  lastThrottleAt: number;
  alarms: Set<string>;
  /** Where the device last connected from. */
  lastAddress: string | null;
  /** Totals every 10 s for the last minute and every minute for the last hour (rolling windows for the API). */
  history: History | undefined;
}

interface History {
  tens: Float64Array;
  minutes: Float64Array;
  tensAt: number[];
  minutesAt: number[];
  tenIndex: number;
  minuteIndex: number;
}

// One snapshot more than the longest window they serve needs (1 m, 1 h): with one fewer, the oldest
// snapshot is up to a step younger than the window and the figure falls short of it.
const TENS = 7;
const MINUTES = 61;
const WINDOWS: [string, number][] = [
  ['10s', 10_000],
  ['1m', 60_000],
  ['5m', 300_000],
  ['15m', 900_000],
  ['1h', 3_600_000],
];

function record(h: History, totals: Float64Array, at: number) {
  const lastTen = h.tensAt[(h.tenIndex + TENS - 1) % TENS] ?? 0;
  if (at - lastTen >= 10_000) {
    h.tens.set(totals, h.tenIndex * 4);
    h.tensAt[h.tenIndex] = at;
    h.tenIndex = (h.tenIndex + 1) % TENS;
  }
  const lastMinute = h.minutesAt[(h.minuteIndex + MINUTES - 1) % MINUTES] ?? 0;
  if (at - lastMinute >= 60_000) {
    h.minutes.set(totals, h.minuteIndex * 4);
    h.minutesAt[h.minuteIndex] = at;
    h.minuteIndex = (h.minuteIndex + 1) % MINUTES;
  }
}

/**
 * Sums over each rolling window: now minus the snapshot whose age is closest to the window's length, so
 * the span (reported as spanMs) is within half a snapshot step of it (5 s for 10 s and 1 m, 30 s beyond).
 * Taking the oldest snapshot inside the window instead made "10s" cover anything from 1 to 11 s.
 */
function windows(h: History | undefined, totals: Float64Array, at: number) {
  const out: Record<
    string,
    {
      spanMs: number;
      messagesSent: number;
      bytesSent: number;
      messagesReceived: number;
      bytesReceived: number;
    }
  > = {};
  for (const [name, ms] of WINDOWS) {
    let best = -1;
    let bestAt = at;
    let source: Float64Array | undefined;
    if (h) {
      const [ring, times] = ms <= 60_000 ? [h.tens, h.tensAt] : [h.minutes, h.minutesAt];
      let bestError = Infinity;
      times.forEach((t, i) => {
        const error = Math.abs(at - t - ms);
        if (t > 0 && t < at && error < bestError) {
          best = i;
          bestAt = t;
          bestError = error;
          source = ring;
        }
      });
    }
    const base = (i: number) => (source && best >= 0 ? source[best * 4 + i]! : totals[i]!);
    out[name] = {
      spanMs: at - bestAt,
      messagesSent: totals[0]! - base(0),
      bytesSent: totals[1]! - base(1),
      messagesReceived: totals[2]! - base(2),
      bytesReceived: totals[3]! - base(3),
    };
  }
  return out;
}

const newNovelty = (): NoveltyState => ({
  networks: [],
  topics: [],
  hours: Array.from({ length: 24 }, () => 0),
  connections: 0,
  messages: 0,
  lastPublishAt: 0,
});

/** Until the service has resolved a device's profiles: built-in defaults, no behaviours. */
const EMPTY_PROFILE: EffectiveProfile = { behaviours: [], builtins: builtinsSchema.parse({}), responses: [] };

/** The network a source address belongs to, for "new source network": /24 for IPv4, /48 for IPv6. */
export function networkOf(address: string): string {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(a) === 4) return `${a.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIP(a) === 6) {
    const [head = '', tail = ''] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    return `${groups.slice(0, 3).join(':')}::/48`;
  }
  return address;
}

/** Topic levels that vary per message (numbers, ids, hashes) are folded, so `new topic` means a new kind. */
export function topicShape(topic: string): string {
  return topic
    .split('/')
    .map((level) => (/^[0-9]+$/.test(level) || /^[0-9a-f-]{16,}$/i.test(level) ? '+' : level))
    .join('/');
}

const compare = (op: string, value: number, threshold: number) =>
  op === 'gt'
    ? value > threshold
    : op === 'gte'
      ? value >= threshold
      : op === 'lt'
        ? value < threshold
        : value <= threshold;

function percentileOfHist(hist: Uint32Array, p: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i]!;
  if (total === 0) return 0;
  const rank = Math.ceil(total * p);
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i]!;
    if (acc >= rank) return bucketMiddleBytes(i);
  }
  return bucketMiddleBytes(hist.length - 1);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] ?? 0;
}

/** A sliding record of who tried what from where, for the guessing and scanning detectors. */
class Attempts {
  private readonly byKey = new Map<string, { list: { at: number; what: string }[]; over: boolean }>();
  /**
   * Records an attempt. `crossed` is set on the attempt that brings the distinct count in the window to
   * `threshold`: one finding per episode, which lasts until the count falls below it again (before, every
   * further attempt of a run raised again: a database write per attempt of an attack).
   */
  add(
    key: string,
    what: string,
    at: number,
    windowMs: number,
    threshold: number,
  ): { distinct: string[]; total: number; crossed: boolean } {
    let record = this.byKey.get(key);
    if (!record) {
      record = { list: [], over: false };
      this.byKey.set(key, record);
      if (this.byKey.size > 50_000) this.prune(at, windowMs);
    }
    const { list } = record;
    list.push({ at, what });
    while (list.length > 0 && list[0]!.at < at - windowMs) list.shift();
    if (list.length > 1000) list.splice(0, list.length - 1000);
    const distinct = [...new Set(list.map((a) => a.what))];
    const over = distinct.length >= threshold;
    const crossed = over && !record.over;
    record.over = over;
    return { distinct, total: list.length, crossed };
  }
  prune(now: number, windowMs: number) {
    for (const [key, { list }] of this.byKey)
      if ((list.at(-1)?.at ?? 0) < now - windowMs) this.byKey.delete(key);
  }
}

const isGuessing = (entry: AuditEntry): entry is AuditEntry<EventsIn<'guessing'>> =>
  isIn('guessing', entry.type);
const DOWNGRADE_REASONS = new Set(['security_version_lower', 'metadata_rollback']);
/** A device whose firewall quota was not hit for this long no longer floods. */
const FLOOD_CLEAR_MS = 60_000;

/**
 * The detection engine: per-device windows and rule behaviours (evaluated on the offending message where
 * the statistic allows, otherwise when the window closes), learned baselines, and the built-in detectors.
 * No I/O: it reports findings to the sink; the monitor service turns them into alerts and responses.
 */
export function createEngine(deps: EngineDeps) {
  const { sink } = deps;
  const devices = new Map<string, DeviceState>();
  const baselines = createBaselines();
  const guessing = new Attempts();
  const scans = new Attempts();
  let lastBaselineAt = deps.startedAt;
  let lastTickAt = deps.startedAt;
  let now = deps.startedAt;

  const subjectOf = (id: string): string => subjects.device(id);

  function raise(state: DeviceState | undefined, finding: Omit<Finding, 'at'> & { at?: number }) {
    if (state) state.alarms.add(finding.detector);
    sink.raise({ ...finding, at: finding.at ?? now });
  }
  function clear(state: DeviceState | undefined, detector: string, subject: string, resolution: string) {
    if (state && !state.alarms.delete(detector)) return;
    sink.clear(detector, subject, resolution);
  }

  function newRule(b: Behaviour & { profile: string }, state: DeviceState, at: number): RuleState {
    const hot = (hotMetrics as readonly string[]).indexOf(b.metric);
    const rule: RuleState = {
      b,
      hot,
      start: at,
      base: hot >= 0 ? state.meter.totals[hot]! : 0,
      sum: 0,
      count: 0,
      max: -Infinity,
      min: Infinity,
      last: 0,
      hist:
        b.metric === 'message_size' && b.statistic.startsWith('p')
          ? new Uint32Array(SIZE_BUCKETS)
          : undefined,
      values: b.statistic.startsWith('p') && b.metric !== 'message_size' ? [] : undefined,
      seen:
        b.metric === 'distinct_topics' || b.metric === 'distinct_source_addresses' ? new Set() : undefined,
      violations: [],
      breached: false,
      consecutive: 0,
      clean: 0,
      alarmed: false,
    };
    return rule;
  }

  function compile(state: DeviceState) {
    const previous = new Map(state.rules.map((r) => [r.b.name, r]));
    state.rules = state.profile.behaviours.map((b) => {
      const rule = newRule(b, state, now);
      const old = previous.get(b.name);
      if (old) {
        rule.alarmed = old.alarmed;
        rule.consecutive = old.consecutive;
      } else {
        // First compile after a restart: the alert may still be open (restore() put it in alarms). Without
        // this the rule raised it again, and never cleared it when the behaviour ended.
        rule.alarmed = state.alarms.has(b.name);
      }
      return rule;
    });
    // Alarms of behaviours this profile no longer has, whether held by the previous rules or restored
    // from open alerts (every alarm that is not a built-in detector's is a behaviour's).
    for (const detector of [...state.alarms])
      if (
        !(builtinDetectors as readonly string[]).includes(detector) &&
        !state.rules.some((r) => r.b.name === detector)
      )
        clear(state, detector, subjectOf(state.id), 'behaviour removed from the profile');
    const needsSizes = state.rules.some((r) => r.hist !== undefined);
    state.meter.sizes = needsSizes ? (state.meter.sizes ?? new Uint32Array(SIZE_BUCKETS)) : undefined;
    setTriggers(state);
  }

  /** Where the hot path has to call back: the lowest total (or message size) at which a rule breaches. */
  function setTriggers(state: DeviceState) {
    const m = state.meter;
    m.triggers.fill(Infinity);
    m.sizeTrigger = Infinity;
    for (const r of state.rules) {
      const { operator, threshold, statistic, metric } = r.b;
      if (r.breached || threshold === undefined || (operator !== 'gt' && operator !== 'gte')) continue;
      const edge = operator === 'gte' ? threshold - 0.5 : threshold;
      if (r.hot >= 0 && statistic === 'sum') m.triggers[r.hot] = Math.min(m.triggers[r.hot]!, r.base + edge);
      else if (metric === 'message_size' && (statistic === 'max' || statistic === 'latest'))
        m.sizeTrigger = Math.min(m.sizeTrigger, edge);
    }
  }

  function valueOf(state: DeviceState, r: RuleState): number {
    if (r.hot >= 0 && r.b.statistic === 'sum') return state.meter.totals[r.hot]! - r.base;
    if (r.seen) return r.seen.size;
    // max and min are set by tripped() on the offending message, before the tick counts the message.
    switch (r.b.statistic) {
      case 'sum':
        return r.sum;
      case 'max':
        return r.max === -Infinity ? 0 : r.max;
      case 'min':
        return r.min === Infinity ? 0 : r.min;
      case 'avg':
        return r.count === 0 ? 0 : r.sum / r.count;
      case 'latest':
        return r.last;
      default: {
        const p = r.b.statistic === 'p50' ? 0.5 : r.b.statistic === 'p90' ? 0.9 : 0.99;
        return r.hist ? percentileOfHist(r.hist, p) : percentile(r.values ?? [], p);
      }
    }
  }

  function breach(state: DeviceState, r: RuleState, evidence: Record<string, Json>, at: number) {
    r.breached = true;
    r.consecutive += 1;
    r.clean = 0;
    if (r.alarmed || r.consecutive < r.b.toAlarm) return;
    r.alarmed = true;
    raise(state, {
      detector: r.b.name,
      subject: subjectOf(state.id),
      deviceId: state.id,
      severity: r.b.severity,
      title: `${r.b.name}: ${r.b.metric} ${r.b.kind === 'set' ? 'outside its allow-list' : `${r.b.statistic} ${r.b.operator} ${r.b.threshold}`} on ${state.id}`,
      profile: r.b.profile,
      at,
      evidence: {
        metric: r.b.metric,
        statistic: r.b.statistic,
        windowMs: r.b.window,
        windowStart: r.start,
        consecutive: r.consecutive,
        ...(r.b.threshold !== undefined ? { operator: r.b.operator ?? 'gt', threshold: r.b.threshold } : {}),
        ...evidence,
      },
    });
  }

  function checkNow(state: DeviceState, r: RuleState, at: number) {
    const { operator, threshold, statistic } = r.b;
    if (r.breached || threshold === undefined || operator === undefined) return;
    if (
      (operator === 'gt' || operator === 'gte') &&
      (statistic === 'sum' || statistic === 'max' || statistic === 'latest')
    ) {
      const value = valueOf(state, r);
      if (compare(operator, value, threshold)) breach(state, r, { value }, at);
    }
  }

  function closeWindow(state: DeviceState, r: RuleState, at: number) {
    // The source address is measured once, at connection: a session that goes on from a refused address
    // still breaches every window (before, the alert was auto-resolved one window after the connection).
    if (r.b.metric === 'source_address' && state.sessions.size > 0)
      checkSet(state, r, [...state.sessions.keys()], at);
    // A window without a single datapoint (no report, no message) says nothing about a max, min, avg,
    // latest or percentile, nor about an allow-list: it neither breaches nor counts as clean. Before, a
    // device reporting less often than the window had its alert resolved and raised again at each report.
    // Sums of nothing are 0, and are judged (messages_sent lt 1 is silence by rule).
    const noData = r.count === 0 && r.hot < 0 && !r.seen && (r.b.kind === 'set' || r.b.statistic !== 'sum');
    if (!r.breached && !noData) {
      const value = valueOf(state, r);
      const bad =
        r.b.kind === 'set'
          ? false
          : r.b.threshold !== undefined &&
            r.b.operator !== undefined &&
            compare(r.b.operator, value, r.b.threshold);
      if (bad) breach(state, r, { value }, at);
      else {
        r.consecutive = 0;
        r.clean += 1;
        if (r.alarmed && r.clean >= r.b.toClear) {
          r.alarmed = false;
          clear(
            state,
            r.b.name,
            subjectOf(state.id),
            `${r.b.metric} back to normal for ${r.b.toClear} window(s) (last value ${value})`,
          );
        }
      }
    }
    const windows = Math.max(1, Math.floor((at - r.start) / r.b.window));
    r.start += windows * r.b.window;
    if (r.hot >= 0) r.base = state.meter.totals[r.hot]!;
    r.sum = 0;
    r.count = 0;
    r.max = -Infinity;
    r.min = Infinity;
    r.hist?.fill(0);
    if (r.values) r.values.length = 0;
    r.seen?.clear();
    r.violations = [];
    r.breached = false;
  }

  /** A number for a metric (event-driven or reported): accumulated into every rule that watches it. */
  function observe(state: DeviceState, metric: string, value: number, at: number) {
    for (const r of state.rules) {
      if (r.b.metric !== metric || r.b.kind !== 'number' || (r.hot >= 0 && r.b.statistic === 'sum')) continue;
      r.sum += value;
      r.count += 1;
      if (value > r.max) r.max = value;
      if (value < r.min) r.min = value;
      r.last = value;
      if (r.values && r.values.length < 1000) r.values.push(value);
      checkNow(state, r, at);
    }
  }

  /** Values of a set metric: anything outside a rule's allow-list breaches it at once. */
  function observeSet(state: DeviceState, metric: string, values: readonly string[], at: number) {
    for (const r of state.rules)
      if (r.b.metric === metric && r.b.kind === 'set') checkSet(state, r, values, at);
  }

  function checkSet(state: DeviceState, r: RuleState, values: readonly string[], at: number) {
    const metric = r.b.metric;
    r.count += 1; // a datapoint, clean or not (see closeWindow)
    const allowed = (r.b.allowed ?? []).map(String);
    const outside = values.filter((v) =>
      metric === 'source_address' || metric === 'destinations'
        ? !addressIn(
            allowed,
            v.replace(/^\[?([^\]]*?)\]?(:\d+)?$/, (_m, ip: string) => (isIP(ip) ? ip : v)),
          )
        : !allowed.includes(v),
    );
    if (outside.length === 0) return;
    for (const v of outside) if (r.violations.length < 20 && !r.violations.includes(v)) r.violations.push(v);
    // A copy: the sink keeps the evidence while this window's list goes on growing.
    if (!r.breached) breach(state, r, { outside: [...r.violations], allowed }, at);
  }

  function device(id: string, at = now): DeviceState {
    let state = devices.get(id);
    if (!state) {
      state = {
        id,
        group: null,
        meter: new DeviceMeter(id, tripped),
        profile: EMPTY_PROFILE,
        rules: [],
        sessions: new Map(),
        disconnectedAt: null,
        lastTotals: new Float64Array(4),
        baselineTotals: new Float64Array(4),
        lastActivity: at,
        novelty: newNovelty(),
        dirty: false,
        lastThrottleAt: 0,
        alarms: new Set(),
        history: undefined,
        lastAddress: null,
      };
      devices.set(id, state);
    }
    return state;
  }

  function tripped(meter: DeviceMeter) {
    const state = devices.get(meter.deviceId);
    if (!state) return;
    const at = Date.now();
    for (const r of state.rules) {
      if (r.breached || r.b.threshold === undefined) continue;
      if (r.hot >= 0 && r.b.statistic === 'sum') checkNow(state, r, at);
      else if (r.b.metric === 'message_size' && (r.b.statistic === 'max' || r.b.statistic === 'latest')) {
        // Not counted here: the next tick counts every message of the window (avg needs the exact count).
        r.max = Math.max(r.max, meter.maxSize);
        r.last = meter.lastSize;
        checkNow(state, r, at);
      }
    }
    setTriggers(state);
  }

  // Until the service has resolved a device's profiles (a device restored at start that has not connected
  // yet), the profiles attached to `all` apply, not the built-in defaults.
  const builtins = (state: DeviceState | undefined) =>
    (state && state.profile !== EMPTY_PROFILE ? state.profile : deps.globalProfile()).builtins;

  function onConnected(id: string, address: string, at: number, serial: string) {
    const state = device(id, at);
    const b = builtins(state);
    const others = [...state.sessions.keys()].filter(
      (a) => a !== address && (state.sessions.get(a) ?? 0) > 0,
    );
    // Once per episode: until the alert is resolved by hand (forget()).
    if (others.length > 0 && b.cloned_identity.enabled && !state.alarms.has('cloned_identity'))
      raise(state, {
        detector: 'cloned_identity',
        subject: subjectOf(id),
        deviceId: id,
        severity: 'critical',
        title: `${id}: its identity is in use from two addresses at once`,
        at,
        evidence: { addresses: [...others, address], certSerial: serial },
      });
    state.sessions.set(address, (state.sessions.get(address) ?? 0) + 1);
    state.lastAddress = address;
    state.disconnectedAt = null;
    state.lastActivity = at;
    observe(state, 'connection_attempts', 1, at);
    for (const r of state.rules)
      if (r.seen && r.b.metric === 'distinct_source_addresses') {
        r.seen.add(address);
        checkNow(state, r, at);
      }
    observeSet(state, 'source_address', [address], at);
    const n = state.novelty;
    const net = networkOf(address);
    if (!n.networks.includes(net)) {
      if (n.connections >= b.new_source_network.warmupConnections && b.new_source_network.enabled)
        raise(state, {
          detector: 'new_source_network',
          subject: subjectOf(id),
          deviceId: id,
          severity: 'medium',
          title: `${id} connected from a network it never used: ${net}`,
          at,
          evidence: { network: net, address, known: n.networks.slice(-10), connections: n.connections },
        });
      n.networks.push(net);
      if (n.networks.length > 32) n.networks.shift();
    }
    const hour = new Date(at).getUTCHours();
    const quiet = (h: number) => (n.hours[(h + 24) % 24] ?? 0) === 0;
    if (
      n.connections >= b.unusual_hour.warmupConnections &&
      b.unusual_hour.enabled &&
      quiet(hour) &&
      quiet(hour - 1) &&
      quiet(hour + 1)
    )
      raise(state, {
        detector: 'unusual_hour',
        subject: subjectOf(id),
        deviceId: id,
        severity: 'low',
        title: `${id} connected at an hour it never connects (${hour}:00 UTC)`,
        at,
        evidence: { hourUtc: hour, connections: n.connections, hours: n.hours },
      });
    n.hours[hour] = (n.hours[hour] ?? 0) + 1;
    n.connections += 1;
    state.dirty = true;
  }

  function onDisconnected(id: string, address: string | undefined, at: number) {
    const state = devices.get(id);
    if (!state) return;
    if (address === undefined) state.sessions.clear();
    else {
      const n = (state.sessions.get(address) ?? 1) - 1;
      if (n <= 0) state.sessions.delete(address);
      else state.sessions.set(address, n);
    }
    if (state.sessions.size === 0) state.disconnectedAt = at;
    observe(state, 'disconnects', 1, at);
  }

  function guess(entry: AuditEntry<EventsIn<'guessing'>>) {
    const data = entry.data;
    const address = entry.type === 'auth.sign_in_failed' ? entry.data.address : entry.data.remoteAddress;
    if (!address || address === 'unknown') return;
    const b = deps.globalProfile().builtins.guessing;
    if (!b.enabled) return;
    // A TLS failure names no identity: count it once per reason, so one device retrying with an expired
    // certificate is not mistaken for someone trying many.
    const identity =
      entry.subject ??
      (entry.type === 'tls.handshake_failed' ? `tls:${data.reason}` : `unknown#${entry.seq}`);
    const { distinct, total, crossed } = guessing.add(address, identity, entry.ts, b.window, b.identities);
    if (crossed)
      raise(undefined, {
        detector: 'guessing',
        subject: `address:${address}`,
        deviceId: null,
        severity: 'high',
        title: `Credential guessing from ${address}: ${distinct.length} identities tried`,
        at: entry.ts,
        evidence: {
          address,
          identities: distinct.slice(0, 20),
          distinctIdentities: distinct.length,
          failures: total,
          windowMs: b.window,
          lastReason: data.reason,
        },
      });
  }

  function scan(entry: AuditEntry<'mqtt.publish_denied' | 'mqtt.subscribe_denied'>) {
    const id = deviceIdOf(entry.subject);
    const state = id ? device(id, entry.ts) : undefined;
    if (state) observe(state, 'authorization_failures', 1, entry.ts);
    const b = builtins(state).topic_scan;
    if (!b.enabled) return;
    const subject = entry.subject ?? entry.actor;
    const topic = entry.data.topic;
    const { distinct, total, crossed } = scans.add(subject, topic, entry.ts, b.window, b.deniedTopics);
    if (crossed)
      raise(state, {
        detector: 'topic_scan',
        subject,
        deviceId: id ?? null,
        severity: 'high',
        title: `Topic scanning by ${subject}: ${distinct.length} denied topics`,
        at: entry.ts,
        evidence: {
          deniedTopics: distinct.slice(0, 30),
          distinctTopics: distinct.length,
          denials: total,
          windowMs: b.window,
        },
      });
  }

  /** One learned-baseline datapoint (a device's or a group's message count): raise or clear on a transition. */
  function baselineDatapoint(
    state: DeviceState | undefined,
    subject: string,
    who: string,
    value: number,
    at: number,
  ) {
    const v = baselines.observe(`${subject}:messages_sent`, value, at);
    if (v.transition === 'raised')
      raise(state, {
        detector: 'baseline_anomaly',
        subject,
        deviceId: state?.id ?? null,
        severity: 'medium',
        title: `${who} sends ${v.ratio.toFixed(1)}× its learned normal`,
        at,
        evidence: {
          metric: 'messages_sent',
          intervalMs: deps.baselineIntervalMs,
          value,
          expected: v.expected,
          score: v.score,
          ratio: v.ratio,
        },
      });
    else if (v.transition === 'cleared')
      clear(state, 'baseline_anomaly', subject, 'back within its learned normal');
  }

  return {
    /** The hot-path recorder for a device (the broker keeps it on the session). */
    meter(deviceId: string): DeviceMeter {
      return device(deviceId).meter;
    },
    /** Which profile applies to a device (resolved by the service; recompiles its rules). */
    setProfile(deviceId: string, profile: EffectiveProfile, group: string | null) {
      const state = device(deviceId);
      state.profile = profile;
      state.group = group;
      compile(state);
    },
    hasProfile: (deviceId: string) => (devices.get(deviceId)?.profile ?? EMPTY_PROFILE) !== EMPTY_PROFILE,
    knownDevices: () => [...devices.keys()],

    /** Every security event: the built-in detectors and event-counted metrics. */
    onEvent(entry: AuditEntry) {
      now = Math.max(now, entry.ts);
      const id = deviceIdOf(entry.subject);
      if (isGuessing(entry)) guess(entry);
      switch (entry.type) {
        case 'mqtt.connected':
          if (id) onConnected(id, entry.data.remoteAddress, entry.ts, entry.data.certSerial);
          break;
        case 'mqtt.disconnected':
          if (id) onDisconnected(id, entry.data.remoteAddress, entry.ts);
          break;
        case 'mqtt.session_dropped':
          if (id) onDisconnected(id, undefined, entry.ts);
          break;
        case 'mqtt.identity_conflict': {
          // The broker saw the identity's sessions take each other over again and again: two agents run with
          // it, from one address (behind one NAT) or several. Once per episode, like the two-address case.
          if (!id) break;
          const state = device(id, entry.ts);
          if (!builtins(state).cloned_identity.enabled || state.alarms.has('cloned_identity')) break;
          const addresses = entry.data.remoteAddresses.map(String);
          raise(state, {
            detector: 'cloned_identity',
            subject: entry.subject ?? '',
            deviceId: id,
            severity: 'critical',
            title: `${id}: two agents run with its identity (their sessions kept taking each other over)`,
            at: entry.ts,
            evidence: { addresses, certSerial: entry.data.certSerial, takeovers: entry.data.takeovers },
          });
          break;
        }
        case 'mqtt.connect_refused':
          if (id && devices.has(id)) {
            const state = device(id, entry.ts);
            observe(state, 'connection_attempts', 1, entry.ts);
            observe(state, 'authorization_failures', 1, entry.ts);
          }
          break;
        case 'mqtt.publish_denied':
        case 'mqtt.subscribe_denied':
          scan(entry);
          break;
        case 'firewall.throttled':
        case 'firewall.disconnected': {
          if (!id) break;
          const state = device(id, entry.ts);
          state.lastThrottleAt = entry.ts;
          // Once per episode: the episode ends after FLOOD_CLEAR_MS without throttling (tick()).
          if (!builtins(state).payload_flood.enabled || state.alarms.has('payload_flood')) break;
          raise(state, {
            detector: 'payload_flood',
            subject: entry.subject ?? '',
            deviceId: id,
            severity: 'high',
            title: `${id} floods the broker (${entry.data.reason})`,
            at: entry.ts,
            evidence: {
              reason: entry.data.reason,
              firewall: entry.type === 'firewall.disconnected' ? 'disconnected' : 'throttled',
              messagesSent: state.meter.totals[HOT.messagesSent]!,
              bytesSent: state.meter.totals[HOT.bytesSent]!,
            },
          });
          break;
        }
        case 'firmware.update_failed': {
          const reason = entry.data.reason;
          if (!id || !DOWNGRADE_REASONS.has(reason)) break;
          const state = device(id, entry.ts);
          // Once per episode: until the alert is resolved by hand (forget()).
          if (!builtins(state).firmware_downgrade.enabled || state.alarms.has('firmware_downgrade')) break;
          raise(state, {
            detector: 'firmware_downgrade',
            subject: entry.subject ?? '',
            deviceId: id,
            severity: 'high',
            title: `${id} was offered a firmware or metadata downgrade (${reason})`,
            at: entry.ts,
            evidence: { reason, target: entry.data.target, detail: entry.data.detail ?? '' },
          });
          break;
        }
        case 'device.revoked':
        case 'device.disabled':
          if (id) devices.delete(id);
          break;
      }
    },

    /** A device's own report on `devices/{id}/metrics` (validated by the caller). */
    onReport(deviceId: string, report: DeviceMetricsReport, at: number) {
      const state = device(deviceId, at);
      if (report.listeningTcpPorts)
        observeSet(state, 'listening_tcp_ports', report.listeningTcpPorts.map(String), at);
      if (report.listeningUdpPorts)
        observeSet(state, 'listening_udp_ports', report.listeningUdpPorts.map(String), at);
      if (report.destinations) observeSet(state, 'destinations', report.destinations, at);
      const numbers: [string, number | undefined][] = [
        ['established_connections', report.establishedConnections],
        ['bytes_in', report.bytesIn],
        ['bytes_out', report.bytesOut],
        ['packets_in', report.packetsIn],
        ['packets_out', report.packetsOut],
      ];
      for (const [metric, value] of numbers) if (value !== undefined) observe(state, metric, value, at);
      for (const [name, value] of Object.entries(report.custom ?? {})) {
        if (typeof value === 'number') observe(state, `custom:${name}`, value, at);
        else observeSet(state, `custom:${name}`, typeof value === 'string' ? [value] : value, at);
      }
    },

    /** Closes windows, folds what the hot path recorded, looks for silent devices and baseline anomalies. */
    tick(at: number) {
      now = Math.max(now, at);
      const baselineDue = at - lastBaselineAt >= deps.baselineIntervalMs;
      const groupSums = new Map<string, number>();
      for (const state of devices.values()) {
        const m = state.meter;
        const b = builtins(state);
        const sent = m.totals[HOT.messagesSent]! - state.lastTotals[HOT.messagesSent]!;
        // Fold message sizes and topics since the last tick. Sizes: every message counts (before, one
        // datapoint per tick, and no sum: avg was always 0, min never set, latest was the tick's largest).
        for (const r of state.rules) {
          if (r.b.metric === 'message_size') {
            if (sent === 0) continue;
            r.sum += m.totals[HOT.bytesSent]! - state.lastTotals[HOT.bytesSent]!;
            r.count += sent;
            if (m.maxSize > r.max) r.max = m.maxSize;
            if (m.minSize < r.min) r.min = m.minSize;
            r.last = m.lastSize;
            if (r.hist && m.sizes) for (let i = 0; i < SIZE_BUCKETS; i++) r.hist[i]! += m.sizes[i]!;
          } else if (r.seen && r.b.metric === 'distinct_topics') for (const t of m.topics) r.seen.add(t);
        }
        if (m.topics.size > 0) {
          const n = state.novelty;
          for (const topic of m.topics) {
            const shape = topicShape(topic);
            if (n.topics.includes(shape)) continue;
            if (n.messages >= b.new_topic.warmupMessages && b.new_topic.enabled)
              raise(state, {
                detector: 'new_topic',
                subject: subjectOf(state.id),
                deviceId: state.id,
                severity: 'low',
                title: `${state.id} published to a topic it never used: ${shape}`,
                at,
                evidence: { topic, shape, known: n.topics.slice(-10), messages: n.messages },
              });
            if (n.topics.length < 256) n.topics.push(shape);
            state.dirty = true;
          }
        }
        m.maxSize = 0;
        m.minSize = Infinity;
        m.sizes?.fill(0);
        m.topics.clear();
        for (const r of state.rules) if (r.seen) checkNow(state, r, at);
        // Activity: anything sent since the last tick.
        if (sent > 0) {
          state.novelty.messages += sent;
          state.novelty.lastPublishAt = at;
          state.lastActivity = at;
          state.dirty = true;
          state.novelty.silenceDismissed = undefined;
          if (state.alarms.has('device_silent'))
            clear(state, 'device_silent', subjectOf(state.id), 'the device is heard from again');
        }
        // Rolling windows, from the first traffic either way (a device that only receives has figures too).
        if (
          !state.history &&
          (sent > 0 || m.totals[HOT.messagesReceived] !== state.lastTotals[HOT.messagesReceived])
        ) {
          state.history = {
            tens: new Float64Array(TENS * 4),
            minutes: new Float64Array(MINUTES * 4),
            tensAt: Array.from({ length: TENS }, () => 0),
            minutesAt: Array.from({ length: MINUTES }, () => 0),
            tenIndex: 0,
            minuteIndex: 0,
          };
          // The totals before this traffic, at the previous tick: else what was sent before the first
          // snapshot was in no window.
          record(state.history, state.lastTotals, lastTickAt);
        }
        if (state.history) record(state.history, m.totals, at);
        state.lastTotals.set(m.totals);
        // Disconnect duration: while connected it is 0 (a datapoint, so that an alarm on it can clear).
        if (state.disconnectedAt !== null)
          observe(state, 'disconnect_duration', (at - state.disconnectedAt) / 1000, at);
        else if (state.sessions.size > 0) observe(state, 'disconnect_duration', 0, at);
        if (state.sessions.size > 0) observe(state, 'subscriptions', m.subscriptions, at);
        for (const r of state.rules) if (at >= r.start + r.b.window) closeWindow(state, r, at);
        setTriggers(state);
        // Silence: heard from before, and nothing for longer than allowed (time before this process started does not count).
        const after = b.device_silent.after ?? deps.silentAfterMs;
        const lastPublish = state.novelty.lastPublishAt;
        if (
          b.device_silent.enabled &&
          lastPublish > 0 &&
          !state.novelty.silenceDismissed &&
          !state.alarms.has('device_silent') &&
          at - Math.max(lastPublish, deps.startedAt) > after
        )
          raise(state, {
            detector: 'device_silent',
            subject: subjectOf(state.id),
            deviceId: state.id,
            severity: 'medium',
            title: `${state.id} has been silent for more than ${Math.round(after / 1000)} s`,
            at,
            evidence: {
              lastHeardAt: lastPublish,
              silentForMs: at - lastPublish,
              allowedMs: after,
              connected: state.sessions.size > 0,
            },
          });
        if (state.alarms.has('payload_flood') && at - state.lastThrottleAt > FLOOD_CLEAR_MS)
          clear(
            state,
            'payload_flood',
            subjectOf(state.id),
            `within its publish quota for ${FLOOD_CLEAR_MS / 1000} s`,
          );
        // No datapoints while disconnected: hours of zeros would teach the baseline that silence is normal.
        if (baselineDue && lastPublish > 0 && state.sessions.size > 0) {
          const value = m.totals[HOT.messagesSent]! - state.baselineTotals[HOT.messagesSent]!;
          state.baselineTotals.set(m.totals);
          if (state.group) groupSums.set(state.group, (groupSums.get(state.group) ?? 0) + value);
          if (b.baseline_anomaly.enabled) {
            baselineDatapoint(state, subjectOf(state.id), state.id, value, at);
          }
        }
        // Forget devices that are gone: disconnected, nothing open, quiet for two hours (their novelty is saved).
        if (
          state.sessions.size === 0 &&
          state.alarms.size === 0 &&
          !state.dirty &&
          at - state.lastActivity > 7_200_000
        )
          devices.delete(state.id);
      }
      if (baselineDue) {
        lastBaselineAt = at;
        for (const [group, value] of groupSums) {
          baselineDatapoint(undefined, `group:${group}`, `Group ${group}`, value, at);
        }
      }
      if (devices.size > 0 && at % 60_000 < 1000) {
        guessing.prune(at, 86_400_000);
        scans.prune(at, 3_600_000);
      }
      lastTickAt = at;
    },

    /** Per-device figures for the API: totals, what the rules see now, and the device's novelty profile. */
    describe(deviceId: string) {
      const state = devices.get(deviceId);
      if (!state) return undefined;
      const t = state.meter.totals;
      return {
        totals: {
          messagesSent: t[HOT.messagesSent]!,
          bytesSent: t[HOT.bytesSent]!,
          messagesReceived: t[HOT.messagesReceived]!,
          bytesReceived: t[HOT.bytesReceived]!,
        },
        windows: windows(state.history, t, now),
        connectedFrom: [...state.sessions.keys()],
        lastAddress: state.lastAddress,
        disconnectedAt: state.disconnectedAt,
        lastPublishAt: state.novelty.lastPublishAt || null,
        behaviours: state.rules.map((r) => ({
          name: r.b.name,
          profile: r.b.profile,
          metric: r.b.metric,
          statistic: r.b.statistic,
          windowMs: r.b.window,
          windowStart: r.start,
          value: r.b.kind === 'set' ? r.violations.length : valueOf(state, r),
          breachedThisWindow: r.breached,
          consecutive: r.consecutive,
          alarmed: r.alarmed,
        })),
        novelty: {
          networks: state.novelty.networks,
          topics: state.novelty.topics.length,
          connections: state.novelty.connections,
        },
        openDetectors: [...state.alarms],
      };
    },

    /** Totals over all devices (Prometheus). */
    totals() {
      const sum = new Float64Array(4);
      for (const s of devices.values()) for (let i = 0; i < 4; i++) sum[i]! += s.meter.totals[i]!;
      return {
        devices: devices.size,
        messagesSent: sum[0]!,
        bytesSent: sum[1]!,
        messagesReceived: sum[2]!,
        bytesReceived: sum[3]!,
      };
    },

    /** Detector state to save: novelty per device (changed since the last save) and the learned baselines. */
    dirtyState(): { novelty: [string, NoveltyState][]; baselines: Record<string, BaselineState> } {
      const novelty: [string, NoveltyState][] = [];
      for (const s of devices.values())
        if (s.dirty) {
          s.dirty = false;
          novelty.push([s.id, s.novelty]);
        }
      return { novelty, baselines: baselines.export() };
    },
    /** Restores saved state at start (before any event). Open alarms are known from open alerts. */
    restore(input: {
      novelty: [string, NoveltyState][];
      baselines: Record<string, BaselineState>;
      openAlarms: [string, string][];
    }) {
      baselines.restore(input.baselines);
      for (const [id, n] of input.novelty) device(id).novelty = { ...newNovelty(), ...n };
      for (const [detector, subject] of input.openAlarms)
        if (subject.startsWith('device:')) {
          const state = device(subject.slice(7));
          state.alarms.add(detector);
          // Quota time before the start does not count: else the flood alert was resolved at the first
          // tick, and raised again (responses included) if the device went on flooding.
          if (detector === 'payload_flood') state.lastThrottleAt = deps.startedAt;
        }
    },
    /** An alert was resolved by an operator: the detector may fire again for this subject. */
    forget(detector: string, subject: string) {
      if (!subject.startsWith('device:')) return;
      const state = devices.get(subject.slice(7));
      if (!state) return;
      state.alarms.delete(detector);
      if (detector === 'device_silent') {
        state.novelty.silenceDismissed = true;
        state.dirty = true;
      }
      for (const r of state.rules)
        if (r.b.name === detector) {
          r.alarmed = false;
          r.consecutive = 0;
        }
    },
  };
}

export type Engine = ReturnType<typeof createEngine>;
