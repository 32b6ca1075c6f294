/**
 * (2b) Fan-in to one subscriber: 1,000 devices publish, one client subscribed to `devices/+/telemetry`
 * receives everything. The subscriber is the fixture's observer identity (`bench-observer`): in Bulwark an
 * app with purpose `analytics.reporting` and the grant `subscribe devices/+/telemetry`, connecting with its
 * app certificate (no device may read another device's topics); in Mosquitto the ACL user of that CN; bare
 * Aedes accepts anyone.
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

export async function observerFanIn(ctx: BenchContext, run: SystemRun): Promise<void> {
  const { plan, pool, results, log } = ctx;
  const name = run.system.name;
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
