/**
 * (8) Soak: a QoS 0 flood from every device, QoS 1 traffic right behind it, then: how long until the
 * broker serves a new device again, and whether it survives the flooded fleet disconnecting. Aedes 1.2
 * with its in-memory emitter crashes here (`RangeError: Maximum call stack size exceeded`, mqemitter PR
 * #204). Counts what was delivered, not only what was acknowledged.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext, MetricSpec, SystemRun } from '../harness/index.ts';
import { probeIndex } from '../harness/index.ts';
import { checkIntegrity, connectFleet, type FleetParts } from './fleet-connect.ts';

const scenario = '8 soak: QoS 0 flood, then QoS 1';
const specs = {
  floodDelivered: { scenario, metric: 'QoS 0 flood delivered', unit: '%', better: 'none' },
  qos1Acked: { scenario, metric: 'QoS 1 acknowledged', unit: '%', better: 'higher' },
  qos1Delivered: {
    scenario,
    metric: 'QoS 1 delivered',
    unit: '%',
    better: 'higher',
    target: { kind: 'absolute', min: 100 },
  },
  recovered: {
    scenario,
    metric: 'serves a new device again after',
    unit: 's',
    better: 'lower',
  },
  alive: {
    scenario,
    metric: 'alive after the fleet disconnects (1 = yes)',
    unit: '',
    better: 'higher',
    target: { kind: 'absolute', min: 1 },
  },
  peakRss: { scenario, metric: 'peak broker RSS', unit: 'MiB', better: 'lower' },
} satisfies Record<string, MetricSpec>;

let probes = 0;

/** A device not seen for a while connects and sends three QoS 1 messages to itself: true when all come back. */
async function serves(ctx: BenchContext, run: SystemRun): Promise<boolean> {
  const probe = await ctx.pool.first
    .call(
      'ping',
      {
        target: run.target,
        index: probeIndex(ctx.plan, probes++),
        qos: 1,
        count: 3,
        warmup: 0,
        maxMs: 3000,
        timeoutMs: 1000,
        minIntervalMs: 0,
        payloadSize: ctx.plan.payloadSize,
      },
      15_000,
    )
    .catch(() => undefined);
  return probe?.delivery.length === 3;
}

function crashLine(run: SystemRun): string {
  const line = run.system
    .stderrTail()
    .split('\n')
    .find((l) => /^\w*Error\b|RangeError|FATAL|Segmentation/.test(l));
  return line ? `: ${line.trim().slice(0, 200)}` : '';
}

/** The soak on a fleet that is connected and subscribed; disconnects it. */
export async function soakFleet(ctx: BenchContext, run: SystemRun, parts: FleetParts): Promise<void> {
  const { plan, pool, results, log } = ctx;
  const name = run.system.name;
  const started = Date.now();
  const s = plan.soak;
  await pool.each(
    parts,
    'soak',
    () => ({
      floodPerDevice: s.floodPerDevice,
      floodMaxMs: s.floodMaxMs,
      qos1PerDevice: s.qos1PerDevice,
      qos1Window: s.qos1Window,
      qos1MaxMs: s.qos1MaxMs,
      payloadSize: plan.payloadSize,
    }),
    s.floodMaxMs + s.qos1MaxMs + 60_000,
  );
  // From the end of the QoS 1 phase: when does a new device get served, while the fleet's messages drain?
  const soaked = Date.now();
  let recoveredMs: number | undefined;
  for (let attempt = 0; Date.now() - soaked < s.recoveryMaxMs && attempt < 100; attempt++) {
    if (run.system.exitStatus()) break;
    if (await serves(ctx, run)) {
      recoveredMs = Date.now() - soaked;
      break;
    }
    await sleep(250);
  }
  const res = await pool.each(parts, 'soakCollect', () => ({ drainMs: s.drainMs }), s.drainMs + 30_000);
  await pool.each(parts, 'disconnect', () => ({ timeoutMs: 5000 }), 60_000);
  await sleep(2000); // a crash on disconnect comes within this
  // Up to three probes (each a different device): on a busy shared machine one probe's 1 s timeouts can
  // miss a broker that is up, and "down" must mean down.
  let alive = false;
  for (let attempt = 0; attempt < 3 && !alive && !run.system.exitStatus(); attempt++) {
    alive = await serves(ctx, run);
  }
  const ended = Date.now();

  const flood = { sent: 0, delivered: 0 };
  const q1 = { sent: 0, delivered: 0, acked: 0 };
  for (const r of res) {
    checkIntegrity(ctx, run, 'soak flood', r.flood);
    checkIntegrity(ctx, run, 'soak QoS 1', r.qos1);
    flood.sent += r.flood.sent;
    flood.delivered += r.flood.delivered;
    q1.sent += r.qos1.sent;
    q1.delivered += r.qos1.delivered;
    q1.acked += r.qos1.acked;
  }
  const pct = (a: number, b: number) => (b > 0 ? (100 * a) / b : undefined);
  results.add(specs.floodDelivered, name, pct(flood.delivered, flood.sent));
  results.add(specs.qos1Acked, name, pct(q1.acked, q1.sent));
  results.add(specs.qos1Delivered, name, pct(q1.delivered, q1.sent));
  if (recoveredMs !== undefined) results.add(specs.recovered, name, recoveredMs / 1000);
  else
    results.note(
      `${name}, soak: no new device was served within ${s.recoveryMaxMs / 1000} s after the QoS 1 phase${run.system.exitStatus() ? ` (it stopped: ${run.system.exitStatus()}${crashLine(run)})` : ''}`,
    );
  results.add(specs.alive, name, alive ? 1 : 0);
  if (!alive) {
    results.note(
      `${name}, soak: ${run.system.exitStatus() ? `crashed (${run.system.exitStatus()})${crashLine(run)}` : 'not serving'} after the flooded fleet disconnected`,
    );
  }
  const peak = run.broker.peakRss(started, ended);
  results.add(specs.peakRss, name, peak !== undefined ? peak / 2 ** 20 : undefined);
  log(
    `  ${name}: soak flood ${flood.delivered}/${flood.sent} delivered, QoS 1 ${q1.delivered}/${q1.sent} delivered (${q1.acked} acked), serving again after ${recoveredMs !== undefined ? `${(recoveredMs / 1000).toFixed(1)} s` : 'never (bounded)'}, ${alive ? 'alive' : 'DOWN'} after disconnect`,
  );
}

/** The separate soak of a full run: a fresh broker, the fleet connected and subscribed, then the soak. */
export async function soak(ctx: BenchContext, run: SystemRun): Promise<void> {
  const parts = await connectFleet(ctx, run);
  if (!parts) return;
  await soakFleet(ctx, run, parts);
}
