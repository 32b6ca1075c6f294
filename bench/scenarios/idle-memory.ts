/** (4) Memory: RSS per idle connection, from the broker's RSS before and after N idle devices connect. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext, MetricSpec, SystemRun } from '../harness/index.ts';
import { readRss } from '../harness/index.ts';

const settle = async (run: SystemRun) => {
  await sleep(1000);
  await run.system.gc(); // Node brokers: a full GC before both readings, so garbage is not counted as cost
  await sleep(500);
};

/**
 * Reads the broker's RSS around `connect` (which leaves `n` idle devices connected) and records the
 * difference per connection. Meant for a freshly started broker: RSS that earlier load left behind would
 * hide what new connections cost.
 */
export async function measureIdleMemory(
  ctx: BenchContext,
  run: SystemRun,
  n: number,
  connect: () => Promise<number>,
): Promise<void> {
  const { results, log } = ctx;
  const name = run.system.name;
  const perConnection: MetricSpec = {
    scenario: `4 memory, ${n.toLocaleString('en-US')} idle connections`,
    metric: 'RSS per idle connection',
    unit: 'KiB',
    better: 'lower',
    // Issue 19: 32 KiB per idle mTLS connection (Mosquitto needs about 31).
    target: { kind: 'absolute', max: 32 },
  };
  const total: MetricSpec = {
    scenario: perConnection.scenario,
    metric: 'broker RSS with all connected',
    unit: 'MiB',
    better: 'lower',
  };
  await settle(run);
  const before = readRss(run.system.pid);
  const connected = await connect();
  if (connected !== n) {
    results.note(`${name}: memory not measured, ${connected}/${n} devices connected`);
    return;
  }
  await settle(run);
  const after = readRss(run.system.pid);
  if (before === undefined || after === undefined) {
    results.note(`${name}: cannot read RSS from /proc`);
    return;
  }
  results.add(perConnection, name, (after - before) / n / 1024);
  results.add(total, name, after / 2 ** 20);
  log(
    `  ${name}: ${n} idle connections, RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB, ${((after - before) / n / 1024).toFixed(1)} KiB each`,
  );
}

/** The separate memory scenario of a full run: N idle devices on a freshly started broker. */
export async function idleMemory(ctx: BenchContext, run: SystemRun): Promise<void> {
  const { plan, pool } = ctx;
  const n = plan.memoryConnections;
  const parts = pool.ranges(0, n);
  try {
    await measureIdleMemory(ctx, run, n, async () => {
      const res = await pool.each(
        parts,
        'connect',
        (part) => ({
          target: run.target,
          from: part.from,
          to: part.to,
          concurrency: Math.ceil(plan.stormConcurrency / parts.length),
          timeoutMs: 60_000,
          maxMs: 600_000,
        }),
        700_000,
      );
      return res.reduce((k, r) => k + r.connected, 0);
    });
  } finally {
    await pool.each(parts, 'disconnect', () => ({ timeoutMs: 10_000 }), 120_000);
  }
}
