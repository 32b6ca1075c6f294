/**
 * (7) Detection latency (issue #5, acceptance 2): _with an auto-quarantine response, the flooding device
 * loses access within 1 s of crossing its threshold_, measured from the offending message to the broker's
 * enforcement. Bulwark only: bare Aedes and Mosquitto detect nothing and respond to nothing.
 *
 * Set-up, through the monitor's own services (what `bulwark security-profile put|attach` and the API do):
 * the offenders are moved into a group, and a security profile with one behaviour, `burst` (messages_sent
 * gt `threshold` within `window`, severity high), and one response (quarantine, automatic, for `burst`) is
 * attached to that group. The threshold is under the firewall's quota (100 messages/s, burst 200), so the
 * monitor, not the firewall, is what stops them.
 *
 * Under load: the fleet stays connected and publishes QoS 1 to its own topics at a calm rate throughout.
 * The offenders run in a load generator process of their own (the fleet's traffic never delays their
 * clock), one after the other; each is a device this broker has never seen, so its behaviour window opens
 * when it connects and the burst right after never straddles two windows. Each publishes up to and
 * including message `threshold + 1` (the offending message: the client knows which one it is), then one
 * message every couple of ms, so the first publish after the quarantine arrives at once; the broker closes
 * the connection at the first publish it refuses ([MQTT-3.3.5-2]), and the client's view of that close is
 * the enforcement. The audit log gives the server's side of the same story (`alert.raised`,
 * `device.quarantined`, `response.executed`, `mqtt.publish_denied`, stamped on the same machine's clock),
 * and every offender must have been quarantined: a miss is counted, never dropped from the figures.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DetectionEvidence, FirewallEvent } from '../brokers/index.ts';
import type {
  BenchContext,
  CpuProfile,
  LoadgenHandle,
  MetricSpec,
  NamedProfile,
  SystemRun,
} from '../harness/index.ts';
import { deviceId, offenderIndex, percentile, summarize, summarizeProfile } from '../harness/index.ts';
import type { OffenderResult, TallySummary } from '../load/index.ts';
import { checkIntegrity, type FleetParts } from './fleet-connect.ts';

const PROFILE = 'bench-burst';
const GROUP = 'bench-offenders';
const DETECTOR = 'burst';

const stages = ['detected', 'raised', 'quarantined', 'executed', 'refused'] as const;
type Stage = (typeof stages)[number];
const stageLabels: Record<Stage, string> = {
  detected: 'threshold crossed (alert first seen)',
  raised: 'alert.raised',
  quarantined: 'device.quarantined',
  executed: 'response.executed',
  refused: 'publish refused (mqtt.publish_denied)',
};

function scenarioLabel(ctx: BenchContext): string {
  const d = ctx.plan.detection;
  return `7 detection latency: ${d.offenders} offenders, burst > ${d.threshold} msgs in ${d.window}, automatic quarantine`;
}

function specs(ctx: BenchContext) {
  const d = ctx.plan.detection;
  const scenario = scenarioLabel(ctx);
  const oneSecond = { kind: 'absolute', max: 1000 } as const;
  return {
    enforced: (q: 'p50' | 'p99' | 'max'): MetricSpec => ({
      scenario,
      metric: `offending message → access lost (client sees the close), ${q}`,
      unit: 'ms',
      better: 'lower',
      ...(q === 'p50' ? {} : { target: oneSecond }),
    }),
    stage: (stage: Stage, q: 'p50' | 'max'): MetricSpec => ({
      scenario,
      metric: `offending message → ${stageLabels[stage]}, ${q}`,
      unit: 'ms',
      better: 'lower',
    }),
    quarantined: {
      scenario,
      metric: 'offenders quarantined (device.quarantined in the audit log)',
      unit: 'devices',
      better: 'higher',
      target: { kind: 'absolute', min: d.offenders },
    },
    missed: {
      scenario,
      metric: `offenders not cut off within ${d.maxMs / 1000} s of the offending message`,
      unit: 'devices',
      better: 'lower',
      target: { kind: 'absolute', max: 0 },
    },
    leaked: {
      scenario,
      metric: 'messages the broker accepted after the offending one, max',
      unit: 'msgs',
      better: 'lower',
    },
    fleetP99: {
      scenario,
      metric: `fleet end-to-end p99 while the offenders ran (${ctx.plan.fleet.toLocaleString('en-US')} devices, QoS 1, ${d.fleetRatePerDevice} msg/s each)`,
      unit: 'ms',
      better: 'none',
    },
    fleetSetupMax: {
      scenario,
      metric: 'fleet end-to-end max while the profile was put and attached',
      unit: 'ms',
      better: 'none',
    },
    fleetLost: {
      scenario,
      metric: 'fleet messages lost meanwhile',
      unit: 'msgs',
      better: 'lower',
      target: { kind: 'absolute', max: 0 },
    },
    cpu: { scenario, metric: 'broker CPU', unit: 'cores', better: 'none' },
    foreign: { scenario, metric: 'other processes on the machine', unit: 'cores', better: 'none' },
  } satisfies Record<string, MetricSpec | ((...args: never[]) => MetricSpec)>;
}

/** Every row of the scenario, for the peers' "not applicable" cells. */
function allSpecs(ctx: BenchContext): MetricSpec[] {
  const s = specs(ctx);
  return [
    s.enforced('p50'),
    s.enforced('p99'),
    s.enforced('max'),
    ...stages.flatMap((stage) => [s.stage(stage, 'p50'), s.stage(stage, 'max')]),
    s.quarantined,
    s.missed,
    s.leaked,
    s.fleetP99,
    s.fleetSetupMax,
    s.fleetLost,
  ];
}

/** Aedes and Mosquitto: nothing to measure, and the table says why. */
export function detectionNotApplicable(ctx: BenchContext, system: 'aedes' | 'mosquitto'): void {
  const why =
    system === 'aedes'
      ? 'not applicable: bare Aedes has no misbehaviour detection and no automatic response'
      : 'not applicable: Mosquitto has no misbehaviour detection and no automatic response';
  for (const spec of allSpecs(ctx)) ctx.results.skip(spec, system, why);
}

function sum(parts: TallySummary[]): TallySummary {
  return parts.reduce((a, b) => ({
    sent: a.sent + b.sent,
    delivered: a.delivered + b.delivered,
    acked: a.acked + b.acked,
    lost: a.lost + b.lost,
    corrupt: a.corrupt + b.corrupt,
    misrouted: a.misrouted + b.misrouted,
    outOfOrder: a.outOfOrder + b.outOfOrder,
    stale: a.stale + b.stale,
  }));
}

interface Outcome {
  offender: OffenderResult;
  evidence: DetectionEvidence | undefined;
  /** ms from the offending message; undefined when it did not happen. */
  enforced: number | undefined;
  stages: Partial<Record<Stage, number>>;
  quarantined: boolean;
  leaked: number | undefined;
  problems: string[];
}

function first(events: FirewallEvent[], type: string, from = -Infinity): FirewallEvent | undefined {
  return events.find((e) => e.type === type && e.ts >= from);
}

function judge(
  ctx: BenchContext,
  offender: OffenderResult,
  evidence: DetectionEvidence | undefined,
): Outcome {
  const d = ctx.plan.detection;
  const problems: string[] = [];
  const t0 = offender.offendingAt;
  const events = evidence?.events ?? [];
  const raised = events.find((e) => e.type === 'alert.raised' && e.data.detector === DETECTOR);
  const quarantine = first(events, 'device.quarantined');
  const executed = events.find((e) => e.type === 'response.executed' && e.data.action === 'quarantine');
  const failed = first(events, 'response.failed');
  const firewall = events.filter((e) => e.type.startsWith('firewall.'));
  // Audit times are whole ms, the client's are not: a refusal stamped in the same ms as the offending
  // message still counts as after it.
  const refused = t0 === undefined ? undefined : first(events, 'mqtt.publish_denied', Math.floor(t0));
  const since = (ts: number | undefined) => (ts === undefined || t0 === undefined ? undefined : ts - t0);
  const stages: Partial<Record<Stage, number>> = {
    detected: since(evidence?.alert?.firstSeen),
    raised: since(raised?.ts),
    quarantined: since(quarantine?.ts),
    executed: since(executed?.ts),
    refused: since(refused?.ts),
  };
  const enforced =
    offender.closedAt !== undefined && t0 !== undefined && offender.closedAt - t0 <= d.maxMs
      ? offender.closedAt - t0
      : undefined;
  if (offender.error) problems.push(offender.error);
  if (t0 !== undefined && enforced === undefined)
    problems.push(`still connected ${d.maxMs} ms after the offending message`);
  if (!evidence?.alert) problems.push(`no ${DETECTOR} alert`);
  if (!quarantine) problems.push('no device.quarantined');
  if (quarantine && !executed) problems.push('no response.executed for the quarantine');
  if (failed) problems.push(`response.failed: ${String(failed.data.reason)}`);
  if (t0 !== undefined && quarantine && !refused)
    problems.push('no mqtt.publish_denied after the quarantine');
  if (firewall.length > 0)
    problems.push(`the firewall stepped in too (${[...new Set(firewall.map((e) => e.type))].join(', ')})`);
  const value = evidence?.alert?.evidence.value;
  if (evidence?.alert && value !== d.threshold + 1)
    problems.push(`the alert's evidence counts ${String(value)} messages, not ${d.threshold + 1}`);
  const windowStart = evidence?.alert?.evidence.windowStart;
  if (typeof windowStart === 'number' && windowStart > offender.firstSentAt)
    problems.push(
      'its behaviour window rolled over during the burst (the offending message is misidentified)',
    );
  return {
    offender,
    evidence,
    enforced,
    stages,
    quarantined: quarantine !== undefined,
    leaked: evidence ? evidence.accepted - (d.threshold + 1) : undefined,
    problems,
  };
}

const ms = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(1));

/**
 * Returns, when the plan profiles, a CPU profile of Bulwark restricted to the moments that count: from each
 * of `profiled` further offenders' offending message to its close (taken after the measured offenders, so
 * the profiler never slows the figures).
 */
export async function detectionLatency(
  ctx: BenchContext,
  run: SystemRun,
  solo: LoadgenHandle,
  parts: FleetParts,
): Promise<NamedProfile | undefined> {
  const { plan, pool, results, log } = ctx;
  const d = plan.detection;
  const name = run.system.name;
  const spec = specs(ctx);
  const system = run.system;
  if (!system.monitorSetup || !system.detectionEvidence) {
    for (const s of allSpecs(ctx)) results.skip(s, name, 'no monitor');
    return undefined;
  }
  const indices = Array.from({ length: d.offenders }, (_, k) => offenderIndex(plan, k));
  const ids = indices.map(deviceId);

  // The fleet publishes calmly from before the set-up until the offenders are done (then it is stopped).
  const profiling = plan.scenarios.includes('profile') && d.profiled > 0 && system.profileStart !== undefined;
  // The profiled offenders come after the measured ones, in the same group.
  const extra = profiling
    ? Array.from({ length: d.profiled }, (_, k) => offenderIndex(plan, d.offenders + k))
    : [];
  const budgetMs =
    2 * d.warmupMs +
    (d.offenders + (profiling ? d.profiled : 0)) *
      (2 * d.pauseMs + d.maxMs + ((d.threshold + 1) / d.ratePerSec) * 1000 + 2000);
  const steadyCall = pool.each(
    parts,
    'steady',
    () => ({
      ratePerDevice: d.fleetRatePerDevice,
      durationMs: budgetMs,
      drainMs: 5000,
      payloadSize: plan.payloadSize,
    }),
    budgetMs + 60_000,
  );
  steadyCall.catch(() => undefined); // awaited below; this keeps an early failure from going unhandled
  const offend = (list: number[]) =>
    solo.call(
      'offenders',
      {
        target: run.target,
        indices: list,
        threshold: d.threshold,
        ratePerSec: d.ratePerSec,
        afterIntervalMs: d.afterIntervalMs,
        maxMs: d.maxMs,
        pauseMs: d.pauseMs,
        payloadSize: plan.payloadSize,
        timeoutMs: 10_000,
      },
      budgetMs + 60_000,
    );
  let offenders: OffenderResult[] | undefined;
  let profiled: { file: string; offenders: OffenderResult[] } | undefined;
  let failure: string | undefined;
  let setupAt = Date.now();
  let setupDone = setupAt;
  let offendersFrom = setupAt;
  try {
    await sleep(d.warmupMs / 2);
    // With the fleet already publishing: a profile change is itself something the broker has to absorb.
    setupAt = Date.now();
    await system.monitorSetup({
      profile: PROFILE,
      group: GROUP,
      deviceIds: [...indices, ...extra].map(deviceId),
      document: {
        description: 'bench: detection latency (issue #5, acceptance 2)',
        behaviours: [
          {
            name: DETECTOR,
            metric: 'messages_sent',
            operator: 'gt',
            threshold: d.threshold,
            window: d.window,
            severity: 'high',
          },
        ],
        responses: [{ action: 'quarantine', detectors: [DETECTOR], mode: 'automatic' }],
      },
    });
    setupDone = Date.now();
    await sleep(d.warmupMs);
    offendersFrom = Date.now();
    ({ offenders } = await offend(indices));
    if (profiling && system.profileStart && system.profileStop) {
      const dir = path.join(plan.outDir, 'profiles');
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${plan.mode}-detection.cpuprofile`);
      await system.profileStart(100);
      try {
        profiled = { file, offenders: (await offend(extra)).offenders };
      } finally {
        await system.profileStop(file);
      }
    }
  } catch (err) {
    failure = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  } finally {
    await Promise.all(parts.map((part) => part.handle.call('steadyStop', {}, 10_000).catch(() => undefined)));
  }
  const steady = await steadyCall;
  const to = Date.now();
  if (!offenders) {
    results.note(`${name}, detection latency: not measured (${failure ?? 'no result'})`);
    log(`  ${name}: detection latency not measured: ${failure ?? 'no result'}`);
    return undefined;
  }

  const evidence = await system.detectionEvidence(ids, DETECTOR, setupAt);
  const outcomes = offenders.map((o) =>
    judge(
      ctx,
      o,
      evidence.find((e) => e.deviceId === o.id),
    ),
  );

  // Headline: offending message → the client sees the broker close its connection. An offender not cut
  // off within maxMs counts as maxMs, shown as a lower bound (≥) wherever a quantile lands on one.
  const caught = outcomes.flatMap((o) => (o.enforced === undefined ? [] : [o.enforced]));
  const missed = outcomes.length - caught.length;
  const distribution = [...caught, ...Array.from({ length: missed }, () => d.maxMs)].sort((a, b) => a - b);
  const e = {
    p50: percentile(distribution, 0.5),
    p99: percentile(distribution, 0.99),
    max: distribution.at(-1) ?? Number.NaN,
  };
  for (const q of ['p50', 'p99', 'max'] as const) {
    results.add(spec.enforced(q), name, e[q]);
    if (missed > 0 && e[q] >= d.maxMs) results.lowerBound(spec.enforced(q), name);
  }
  if (missed > 0)
    results.note(
      `${name}, detection latency: ${missed} of ${outcomes.length} offenders were not cut off within ${d.maxMs} ms of the offending message; they count as ≥ ${d.maxMs} ms`,
    );
  const stageSummary: string[] = [];
  for (const stage of stages) {
    const values = outcomes
      .map((o) => o.stages[stage])
      .filter((v): v is number => v !== undefined)
      .sort((a, b) => a - b);
    if (values.length === 0) continue;
    const p50 = percentile(values, 0.5);
    const max = values.at(-1) as number;
    results.add(spec.stage(stage, 'p50'), name, p50);
    results.add(spec.stage(stage, 'max'), name, max);
    stageSummary.push(`${stage} ${p50.toFixed(1)} (max ${max.toFixed(1)})`);
  }
  const quarantined = outcomes.filter((o) => o.quarantined).length;
  results.add(spec.quarantined, name, quarantined);
  results.add(spec.missed, name, missed);
  const leaked = outcomes.flatMap((o) => (o.leaked === undefined ? [] : [o.leaked]));
  if (leaked.length) results.add(spec.leaked, name, Math.max(...leaked));

  // The calm fleet: while the offenders were cut off, and while the profile was put and attached.
  const fleet = sum(steady.map((s) => s.tally));
  checkIntegrity(ctx, run, 'detection latency (fleet)', fleet);
  const fleetBetween = (lo: number, hi: number) =>
    summarize(
      steady.map((s) => {
        const out: number[] = [];
        for (let i = 0; i < s.deliveredAt.length; i++) {
          const at = s.deliveredAt[i] as number;
          if (at >= lo && at < hi) out.push(s.deliveredMs[i] as number);
        }
        return Float64Array.from(out);
      }),
    );
  const during = fleetBetween(offendersFrom, to);
  const atSetup = fleetBetween(setupAt, offendersFrom);
  if (during.n > 0) results.add(spec.fleetP99, name, during.p99);
  if (atSetup.n > 0) results.add(spec.fleetSetupMax, name, atSetup.max);
  results.add(spec.fleetLost, name, fleet.lost);
  const dropped = steady.reduce((n, s) => n + s.dropped, 0);
  if (dropped > 0)
    results.note(`${name}, detection latency: the broker disconnected ${dropped} devices of the calm fleet`);
  results.add(spec.cpu, name, run.broker.cpuShare(offendersFrom, to));
  results.add(spec.foreign, name, ctx.machine.foreignCores(offendersFrom, to));
  log(
    `  ${name}: profile put and attached in ${setupDone - setupAt} ms; fleet max ${atSetup.max.toFixed(1)} ms around it, p99 ${during.p99.toFixed(1)} ms while the offenders ran`,
  );

  // What a reader needs to trust the figures: every offender's times, and anything that went wrong.
  results.note(
    `${name}, detection latency: per offender, ms from the offending message (message ${d.threshold + 1}, sent at ${d.ratePerSec}/s after ${d.pauseMs} ms connected) to the close the client saw: ${outcomes.map((o) => ms(o.enforced)).join(', ')}; messages the broker accepted after the offending one: ${outcomes.map((o) => (o.leaked === undefined ? '—' : String(o.leaked))).join(', ')}`,
  );
  for (const o of outcomes)
    if (o.problems.length)
      results.note(`${name}, detection latency, ${o.offender.id}: ${o.problems.join('; ')}`);
  for (const o of outcomes)
    log(
      `  ${name}: ${o.offender.id} offending message → ${stages.map((s) => `${s} ${ms(o.stages[s])}`).join(', ')}, close seen ${ms(o.enforced)} ms; accepted after ${o.leaked ?? '—'}, sent after ${o.offender.sentAfter}${o.problems.length ? `; ${o.problems.join('; ')}` : ''}`,
    );
  log(
    `  ${name}: detection latency p50 ${e.p50.toFixed(1)} p99 ${e.p99.toFixed(1)} max ${e.max.toFixed(1)} ms (${caught.length}/${outcomes.length} cut off, ${quarantined} quarantined); ${stageSummary.join(', ')}; fleet ${fleet.delivered}/${fleet.sent} delivered`,
  );

  if (!profiled) return undefined;
  const profiledEvidence = await system.detectionEvidence(
    profiled.offenders.map((o) => o.id),
    DETECTOR,
    setupAt,
  );
  for (const o of profiled.offenders) {
    const out = judge(
      ctx,
      o,
      profiledEvidence.find((x) => x.deviceId === o.id),
    );
    log(
      `  ${name}: ${o.id} (profiled) offending message → ${stages.map((st) => `${st} ${ms(out.stages[st])}`).join(', ')}, close seen ${ms(out.enforced)} ms${out.problems.length ? `; ${out.problems.join('; ')}` : ''}`,
    );
  }
  const windows = profiled.offenders.flatMap((o) =>
    o.offendingAt !== undefined && o.closedAt !== undefined ? [{ from: o.offendingAt, to: o.closedAt }] : [],
  );
  if (windows.length === 0) return undefined;
  const summary = summarizeProfile(
    JSON.parse(readFileSync(profiled.file, 'utf8')) as CpuProfile,
    15,
    windows,
  );
  const spans = windows.map((w) => (w.to - w.from).toFixed(0)).join(', ');
  log(
    `  profile detection latency (${spans} ms): ${summary.topSelf
      .slice(0, 3)
      .map((f) => `${f.frame} ${f.pct}%`)
      .join(', ')}`,
  );
  return {
    scenario: `detection latency, from the offending message to the close only (${windows.length} more offenders: ${spans} ms)`,
    file: path.relative(process.cwd(), profiled.file),
    summary,
  };
}
