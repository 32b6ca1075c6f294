import { observerIndex, type BenchContext, type LoadgenPool, type SystemRun } from '../harness/index.ts';
import type { TallySummary } from '../load/index.ts';

export type FleetParts = ReturnType<LoadgenPool['ranges']>;

/** Deliveries that must never happen, whatever the load: a broker that makes them is not fast, it is wrong. */
export function checkIntegrity(ctx: BenchContext, run: SystemRun, what: string, t: TallySummary): void {
  const bad = t.corrupt + t.misrouted + t.outOfOrder;
  if (bad > 0) {
    ctx.results.note(
      `${run.system.name}, ${what}: ${t.corrupt} corrupt, ${t.misrouted} misrouted, ${t.outOfOrder} duplicated or reordered deliveries`,
    );
  }
}

/**
 * The fleet's connection storm over the load generators: `start()` launches it (not before, so a caller
 * can take readings first) and resolves with the raw results, for scenarios that time it.
 */
export function stormFleet(ctx: BenchContext, run: SystemRun) {
  const { plan, pool } = ctx;
  const parts = pool.ranges(0, plan.fleet);
  return {
    parts,
    start: () =>
      pool.each(
        parts,
        'connect',
        (part) => ({
          target: run.target,
          from: part.from,
          to: part.to,
          concurrency: Math.ceil(plan.stormConcurrency / parts.length),
          timeoutMs: 30_000,
          maxMs: 180_000,
        }),
        240_000,
      ),
  };
}

/** The fleet connected, each device subscribed to its own telemetry at QoS 1; undefined (noted) on failure. */
export async function connectFleet(ctx: BenchContext, run: SystemRun): Promise<FleetParts | undefined> {
  const { parts, start } = stormFleet(ctx, run);
  const storm = await start();
  const connected = storm.reduce((n, s) => n + s.connected, 0);
  if (connected !== ctx.plan.fleet) {
    ctx.results.note(
      `${run.system.name}: only ${connected}/${ctx.plan.fleet} devices connected (${storm.find((s) => s.firstError)?.firstError ?? '?'})`,
    );
    await ctx.pool.each(parts, 'disconnect', () => ({ timeoutMs: 5000 }), 60_000);
    return undefined;
  }
  await subscribeFleet(ctx, parts);
  return parts;
}

export async function subscribeFleet(ctx: BenchContext, parts: FleetParts): Promise<void> {
  await ctx.pool.each(parts, 'subscribe', () => ({ qos: 1, concurrency: 100, timeoutMs: 30_000 }), 120_000);
}

/**
 * The whole fleet on one load generator with the observer (the fixture's `bench-observer`, see 2b)
 * subscribed to `devices/+/telemetry` at QoS 1, so that deliveries can free the publishers' windows; runs
 * `work`, then disconnects everything.
 */
export async function withObservedFleet(
  ctx: BenchContext,
  run: SystemRun,
  work: () => Promise<void>,
): Promise<void> {
  const { plan, pool } = ctx;
  const handle = pool.first;
  const connected = await handle.call(
    'connect',
    {
      target: run.target,
      from: 0,
      to: plan.fleet,
      concurrency: plan.stormConcurrency,
      timeoutMs: 30_000,
      maxMs: 120_000,
    },
    180_000,
  );
  try {
    if (connected.connected !== plan.fleet) throw new Error(connected.firstError ?? 'fleet did not connect');
    await handle.call(
      'observe',
      { target: run.target, index: observerIndex(plan), qos: 1, timeoutMs: 30_000 },
      60_000,
    );
    await work();
  } finally {
    await handle.call('disconnect', { timeoutMs: 5000 }, 60_000);
  }
}

/** One throughput run of the observed fleet (every message to the observer): the load generator's result. */
export async function observedThroughput(ctx: BenchContext, qos: 0 | 1, json = false) {
  const { plan, pool } = ctx;
  const { warmupMs, durationMs, drainMs } = plan.throughput;
  const [res] = await pool.each(
    [{ handle: pool.first, from: 0, to: plan.fleet }],
    'throughput',
    () => ({
      qos,
      via: 'observer',
      window: plan.window,
      warmupMs,
      durationMs,
      drainMs,
      payloadSize: plan.payloadSize,
      ...(json ? { json: true } : {}),
    }),
    warmupMs + durationMs + drainMs + 60_000,
  );
  return res;
}
