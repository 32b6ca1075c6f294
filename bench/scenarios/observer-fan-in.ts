/**
 * (2b) Fan-in to one subscriber: 1,000 devices publish, one client subscribed to `devices/+/telemetry`
 * receives everything. The subscriber is the fixture's observer identity (`bench-observer`): in Bulwark an
 * app with purpose `analytics.reporting` and the grant `subscribe devices/+/telemetry`, connecting with its
 * app certificate (no device may read another device's topics); in Mosquitto the ACL user of that CN; bare
 * Aedes accepts anyone.
 */
import type { BenchContext, MetricSpec, SystemRun } from '../harness/index.ts';
import { checkIntegrity, observedThroughput, withObservedFleet } from './fleet-connect.ts';

const spec = (qos: number): MetricSpec => ({
  scenario: `2b fan-in to one subscriber, QoS ${qos}`,
  metric: 'delivered msgs/s',
  unit: '/s',
  better: 'higher',
  // Issue 19: fan-in to one app at least Mosquitto's.
  target: { kind: 'ratio', peer: 'mosquitto', min: 1.0 },
});

export async function observerFanIn(ctx: BenchContext, run: SystemRun): Promise<void> {
  const { results, log } = ctx;
  const name = run.system.name;
  await withObservedFleet(ctx, run, async () => {
    for (const qos of [0, 1] as const) {
      const res = await observedThroughput(ctx, qos);
      if (!res) continue;
      checkIntegrity(ctx, run, `fan-in to one subscriber QoS ${qos}`, res.tally);
      const rate = (res.windowDelivered / res.windowMs) * 1000;
      results.add(spec(qos), name, rate);
      results.add(
        { scenario: spec(qos).scenario, metric: 'lost after drain', unit: 'msgs', better: 'lower' },
        name,
        res.tally.lost,
      );
      log(`  ${name}: fan-in to one subscriber QoS ${qos} ${rate.toFixed(0)} msgs/s, lost ${res.tally.lost}`);
    }
  });
}
