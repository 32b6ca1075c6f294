/**
 * (2b) Fan-in to one subscriber: 1,000 devices publish, one client subscribed to `devices/+/telemetry`
 * receives everything. Bulwark's policy lets no device read another device's topics (deny by default),
 * and the broker offers no server-side subscriber yet, so Bulwark is reported as skipped here.
 */
import type { BenchContext, SystemRun } from '../harness/index.ts';
import { observerIndex } from '../harness/index.ts';
import type { MetricSpec } from '../harness/index.ts';
import { checkIntegrity } from './fleet-connect.ts';

const spec = (qos: number): MetricSpec => ({
  scenario: `2b fan-in to one subscriber, QoS ${qos}`,
  metric: 'delivered msgs/s',
  unit: '/s',
  better: 'higher',
});

export const bulwarkObserverSkip =
  'no principal may subscribe to other devices’ topics (own subtree only) and the broker has no server-side subscriber hook';

export async function observerFanIn(ctx: BenchContext, run: SystemRun): Promise<void> {
  const { plan, pool, results, log } = ctx;
  const name = run.system.name;
  if (name === 'bulwark') {
    for (const qos of [0, 1]) results.skip(spec(qos), name, bulwarkObserverSkip);
    return;
  }
  // One load generator holds the whole fleet and the observer, so deliveries can free publishers' windows.
  const handle = pool.first;
  const part = [{ handle, from: 0, to: plan.fleet }];
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
    for (const qos of [0, 1] as const) {
      const { warmupMs, durationMs, drainMs } = plan.throughput;
      const [res] = await pool.each(
        part,
        'throughput',
        () => ({
          qos,
          via: 'observer',
          window: plan.window,
          warmupMs,
          durationMs,
          drainMs,
          payloadSize: plan.payloadSize,
        }),
        warmupMs + durationMs + drainMs + 60_000,
      );
      if (!res) continue;
      checkIntegrity(ctx, run, `fan-in to one subscriber QoS ${qos}`, res.tally);
      const rate = (res.windowDelivered / res.windowMs) * 1000;
      results.add(spec(qos), name, rate);
      results.add(
        { ...spec(qos), metric: 'lost after drain', unit: 'msgs', better: 'lower' },
        name,
        res.tally.lost,
      );
      log(`  ${name}: fan-in to one subscriber QoS ${qos} ${rate.toFixed(0)} msgs/s, lost ${res.tally.lost}`);
    }
  } finally {
    await handle.call('disconnect', { timeoutMs: 5000 }, 60_000);
  }
}
