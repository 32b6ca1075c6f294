import { isIP } from 'node:net';
import type { DeviceMetricsReport } from '@bulwark/protocol';
import { deviceIdOf, subjectOf } from '../doors.ts';
import { addressIn } from '../doors.ts';
import type { DeviceState } from '../device-state.ts';
import { HOT, SIZE_BUCKETS, slot } from '../meter.ts';
import { builtinDetectors } from '../profile.ts';
import {
  accumulate,
  breachesAtClose,
  compare,
  hasNoData,
  isHotSum,
  newRule,
  nextWindow,
  valueOf,
  type RuleState,
} from '../rules.ts';
import { defineDetector, type DetectorContext, type DeviceTick, type Json } from './detector.ts';

/**
 * Rule behaviours (a profile's `behaviours`, as Device Defender names them): a metric over a window
 * against a threshold or an allow-list, evaluated on the offending message where the statistic allows,
 * otherwise when the window closes. Each behaviour is its own detector name.
 */

/** One device's rules at one moment: what every step below works on. */
interface Run {
  ctx: DetectorContext;
  state: DeviceState;
  at: number;
}

function breach(run: Run, r: RuleState, evidence: Record<string, Json>) {
  r.breached = true;
  r.consecutive += 1;
  r.clean = 0;
  if (r.alarmed || r.consecutive < r.b.toAlarm) return;
  r.alarmed = true;
  const { b } = r;
  const test = b.kind === 'set' ? 'outside its allow-list' : `${b.statistic} ${b.operator} ${b.threshold}`;
  run.ctx.raise({
    state: run.state,
    detector: b.name,
    subject: subjectOf.device(run.state.id),
    deviceId: run.state.id,
    severity: b.severity,
    title: `${b.name}: ${b.metric} ${test} on ${run.state.id}`,
    profile: b.profile,
    at: run.at,
    evidence: {
      metric: b.metric,
      statistic: b.statistic,
      windowMs: b.window,
      windowStart: r.start,
      consecutive: r.consecutive,
      ...(b.threshold !== undefined ? { operator: b.operator ?? 'gt', threshold: b.threshold } : {}),
      ...evidence,
    },
  });
}

/** Judges at once the statistics that can only grow within a window (sum, max, latest above a threshold). */
function checkNow(run: Run, r: RuleState) {
  const { operator, threshold, statistic } = r.b;
  if (r.breached || threshold === undefined || operator === undefined) return;
  if (
    (operator === 'gt' || operator === 'gte') &&
    (statistic === 'sum' || statistic === 'max' || statistic === 'latest')
  ) {
    const value = valueOf(run.state.meter.totals, r);
    if (compare(operator, value, threshold)) breach(run, r, { value });
  }
}

const hostOf = (v: string) => v.replace(/^\[?([^\]]*?)\]?(:\d+)?$/, (_m, ip: string) => (isIP(ip) ? ip : v));

function checkSet(run: Run, r: RuleState, values: readonly string[]) {
  const metric = r.b.metric;
  r.count += 1; // a datapoint, clean or not (see hasNoData)
  const allowed = (r.b.allowed ?? []).map(String);
  const outside = values.filter((v) =>
    metric === 'source_address' || metric === 'destinations'
      ? !addressIn(allowed, hostOf(v))
      : !allowed.includes(v),
  );
  if (outside.length === 0) return;
  for (const v of outside) if (r.violations.length < 20 && !r.violations.includes(v)) r.violations.push(v);
  // A copy: the sink keeps the evidence while this window's list goes on growing.
  if (!r.breached) breach(run, r, { outside: [...r.violations], allowed });
}

/** A number for a metric (event-driven or reported): accumulated into every rule that watches it. */
function observe(run: Run, metric: string, value: number) {
  for (const r of run.state.rules) {
    if (r.b.metric !== metric || r.b.kind !== 'number' || isHotSum(r)) continue;
    accumulate(r, value);
    checkNow(run, r);
  }
}

/** Values of a set metric: anything outside a rule's allow-list breaches it at once. */
function observeSet(run: Run, metric: string, values: readonly string[]) {
  for (const r of run.state.rules) if (r.b.metric === metric && r.b.kind === 'set') checkSet(run, r, values);
}

function closeWindow(run: Run, r: RuleState) {
  const { state, at } = run;
  // The source address is measured once, at connection: a session that goes on from a refused address
  // still breaches every window (before, the alert was auto-resolved one window after the connection).
  if (r.b.metric === 'source_address' && state.sessions.size > 0)
    checkSet(run, r, [...state.sessions.keys()]);
  if (!r.breached && !hasNoData(r)) {
    const value = valueOf(state.meter.totals, r);
    if (breachesAtClose(r, value)) breach(run, r, { value });
    else {
      r.consecutive = 0;
      r.clean += 1;
      if (r.alarmed && r.clean >= r.b.toClear) {
        r.alarmed = false;
        run.ctx.clear({
          state,
          detector: r.b.name,
          subject: subjectOf.device(state.id),
          resolution: `${r.b.metric} back to normal for ${r.b.toClear} window(s) (last value ${value})`,
        });
      }
    }
  }
  nextWindow(r, state.meter.totals, at);
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
    if (r.hot >= 0 && statistic === 'sum')
      m.triggers[r.hot] = Math.min(slot(m.triggers, r.hot), r.base + edge);
    else if (metric === 'message_size' && (statistic === 'max' || statistic === 'latest'))
      m.sizeTrigger = Math.min(m.sizeTrigger, edge);
  }
}

/** The device's profile changed: its rules are rebuilt, keeping the alarm state of those that remain. */
function compile(state: DeviceState, ctx: DetectorContext) {
  const previous = new Map(state.rules.map((r) => [r.b.name, r]));
  state.rules = state.profile.behaviours.map((b) => {
    const rule = newRule(b, state.meter.totals, ctx.now());
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
      ctx.clear({
        state,
        detector,
        subject: subjectOf.device(state.id),
        resolution: 'behaviour removed from the profile',
      });
  const needsSizes = state.rules.some((r) => r.hist !== undefined);
  state.meter.sizes = needsSizes ? (state.meter.sizes ?? new Uint32Array(SIZE_BUCKETS)) : undefined;
  setTriggers(state);
}

/** The hot path passed a level some rule set: judge those rules on the offending message. */
function tripped(state: DeviceState, ctx: DetectorContext) {
  const run = { ctx, state, at: Date.now() };
  const meter = state.meter;
  for (const r of state.rules) {
    if (r.breached || r.b.threshold === undefined) continue;
    if (isHotSum(r)) checkNow(run, r);
    else if (r.b.metric === 'message_size' && (r.b.statistic === 'max' || r.b.statistic === 'latest')) {
      // Not counted here: the next tick counts every message of the window (avg needs the exact count).
      r.max = Math.max(r.max, meter.maxSize);
      r.last = meter.lastSize;
      checkNow(run, r);
    }
  }
  setTriggers(state);
}

/** Message sizes and topics since the last tick, folded into the rules that watch them. */
function fold(state: DeviceState, sent: number) {
  const m = state.meter;
  for (const r of state.rules) {
    if (r.b.metric === 'message_size') {
      // Every message counts (before, one datapoint per tick, and no sum: avg was always 0, min never
      // set, latest was the tick's largest).
      if (sent === 0) continue;
      r.sum += slot(m.totals, HOT.bytesSent) - slot(state.lastTotals, HOT.bytesSent);
      r.count += sent;
      if (m.maxSize > r.max) r.max = m.maxSize;
      if (m.minSize < r.min) r.min = m.minSize;
      r.last = m.lastSize;
      const { hist } = r;
      if (hist && m.sizes) m.sizes.forEach((n, i) => (hist[i] = slot(hist, i) + n));
    } else if (r.seen && r.b.metric === 'distinct_topics') for (const t of m.topics) r.seen.add(t);
  }
}

function onDeviceTick(state: DeviceState, tick: DeviceTick, ctx: DetectorContext) {
  const run = { ctx, state, at: tick.at };
  fold(state, tick.sent);
  for (const r of state.rules) if (r.seen) checkNow(run, r);
  // Disconnect duration: while connected it is 0 (a datapoint, so that an alarm on it can clear).
  if (state.disconnectedAt !== null)
    observe(run, 'disconnect_duration', (tick.at - state.disconnectedAt) / 1000);
  else if (state.sessions.size > 0) observe(run, 'disconnect_duration', 0);
  if (state.sessions.size > 0) observe(run, 'subscriptions', state.meter.subscriptions);
  for (const r of state.rules) if (tick.at >= r.start + r.b.window) closeWindow(run, r);
  setTriggers(state);
}

function onReport(
  state: DeviceState,
  { report, at }: { report: DeviceMetricsReport; at: number },
  ctx: DetectorContext,
) {
  const run = { ctx, state, at };
  if (report.listeningTcpPorts) observeSet(run, 'listening_tcp_ports', report.listeningTcpPorts.map(String));
  if (report.listeningUdpPorts) observeSet(run, 'listening_udp_ports', report.listeningUdpPorts.map(String));
  if (report.destinations) observeSet(run, 'destinations', report.destinations);
  const numbers: [string, number | undefined][] = [
    ['established_connections', report.establishedConnections],
    ['bytes_in', report.bytesIn],
    ['bytes_out', report.bytesOut],
    ['packets_in', report.packetsIn],
    ['packets_out', report.packetsOut],
  ];
  for (const [metric, value] of numbers) if (value !== undefined) observe(run, metric, value);
  for (const [name, value] of Object.entries(report.custom ?? {})) {
    if (typeof value === 'number') observe(run, `custom:${name}`, value);
    else observeSet(run, `custom:${name}`, typeof value === 'string' ? [value] : value);
  }
}

export const behaviours = defineDetector({
  name: 'behaviours',
  consumes: [
    'mqtt.connected',
    'mqtt.disconnected',
    'mqtt.session_dropped',
    'mqtt.connect_refused',
    'mqtt.publish_denied',
    'mqtt.subscribe_denied',
    'privacy.payload_refused',
  ],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    if (!id) return;
    const state =
      entry.type === 'mqtt.publish_denied' ||
      entry.type === 'mqtt.subscribe_denied' ||
      entry.type === 'privacy.payload_refused'
        ? ctx.device(id, entry.ts)
        : ctx.known(id);
    if (!state) return;
    const run = { ctx, state, at: entry.ts };
    switch (entry.type) {
      case 'mqtt.connected': {
        const address = entry.data.remoteAddress;
        observe(run, 'connection_attempts', 1);
        for (const r of state.rules)
          if (r.seen && r.b.metric === 'distinct_source_addresses') {
            r.seen.add(address);
            checkNow(run, r);
          }
        observeSet(run, 'source_address', [address]);
        break;
      }
      case 'mqtt.disconnected':
      case 'mqtt.session_dropped':
        observe(run, 'disconnects', 1);
        break;
      case 'mqtt.connect_refused':
        observe(run, 'connection_attempts', 1);
        observe(run, 'authorization_failures', 1);
        break;
      case 'privacy.payload_refused':
        // A payload that broke its topic's data schema (privacy/): refused at the broker.
        observe(run, 'schema_violations', 1);
        break;
      default:
        observe(run, 'authorization_failures', 1);
    }
  },
  onReport,
  onProfile: compile,
  onTrip: tripped,
  onDeviceTick,
  onForget(state, detector) {
    for (const r of state.rules)
      if (r.b.name === detector) {
        r.alarmed = false;
        r.consecutive = 0;
      }
  },
});

/** What each rule sees now (the API's per-device figures). */
export function describeRules(state: DeviceState) {
  return state.rules.map((r) => ({
    name: r.b.name,
    profile: r.b.profile,
    metric: r.b.metric,
    statistic: r.b.statistic,
    windowMs: r.b.window,
    windowStart: r.start,
    value: r.b.kind === 'set' ? r.violations.length : valueOf(state.meter.totals, r),
    breachedThisWindow: r.breached,
    consecutive: r.consecutive,
    alarmed: r.alarmed,
  }));
}
