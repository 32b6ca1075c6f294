/**
 * (2c) Fan-out: a few devices publish to their own telemetry topic and many subscribers receive every
 * message. The subscribers are instances of the fixture's observer identity (`bench-observer`, see 2b),
 * client ids `bench-observer/<n>`, each from its own source address and subscribed to each publisher's
 * topic: in Bulwark the instances of an app whose one grant is `subscribe devices/+/telemetry` (every
 * delivery passes the app's per-message receive check); in Mosquitto the ACL user of that CN (any client
 * id); bare Aedes accepts anyone. The figure is deliveries per second summed over the subscribers.
 */
import { fixtureSize, type BenchContext, type MetricSpec, type SystemRun } from '../harness/index.ts';
import { checkIntegrity } from './fleet-connect.ts';

const scenario = (ctx: BenchContext, qos: number) =>
  `2c fan-out to ${ctx.plan.fanout.subscribers} subscribers, QoS ${qos}`;

const specs = {
  rate: (ctx: BenchContext, qos: number): MetricSpec => ({
    scenario: scenario(ctx, qos),
    metric: 'delivered msgs/s',
    unit: '/s',
    better: 'higher',
    // Issue 19: at least Mosquitto's, with mTLS, per-message authorization and quotas on.
    target: { kind: 'ratio', peer: 'mosquitto', min: 1.0 },
  }),
  lost: (ctx: BenchContext, qos: number): MetricSpec => ({
    scenario: scenario(ctx, qos),
    metric: 'lost after drain',
    unit: 'msgs',
    better: 'lower',
  }),
  brokerCpu: (ctx: BenchContext, qos: number): MetricSpec => ({
    scenario: scenario(ctx, qos),
    metric: 'broker CPU',
    unit: 'cores',
    better: 'none',
  }),
  foreign: (ctx: BenchContext, qos: number): MetricSpec => ({
    scenario: scenario(ctx, qos),
    metric: 'other processes on the machine',
    unit: 'cores',
    better: 'none',
  }),
  loadgenBusy: (ctx: BenchContext, qos: number): MetricSpec => ({
    scenario: scenario(ctx, qos),
    metric: 'load generator busy',
    unit: 'ELU',
    better: 'none',
  }),
} satisfies Record<string, (ctx: BenchContext, qos: number) => MetricSpec>;

export async function fanOut(ctx: BenchContext, run: SystemRun): Promise<void> {
  const { plan, pool, results, log } = ctx;
  const { publishers, subscribers, window, minIntervalMs } = plan.fanout;
  const name = run.system.name;
  // Publishers and subscribers in one load generator: each delivery frees its publisher's window.
  const handle = pool.first;
  const connected = await handle.call(
    'connect',
    {
      target: run.target,
      from: 0,
      to: publishers,
      concurrency: publishers,
      timeoutMs: 30_000,
      maxMs: 60_000,
    },
    90_000,
  );
  try {
    if (connected.connected !== publishers)
      throw new Error(connected.firstError ?? 'the publishing devices did not connect');
    await handle.call(
      'observe',
      {
        target: run.target,
        index: fixtureSize(plan),
        qos: 1,
        timeoutMs: 30_000,
        instances: subscribers,
        concurrency: 10,
      },
      120_000,
    );
    // What the publishers may offer at most: every subscriber's share of their capped rate.
    const offered = publishers * (1000 / minIntervalMs) * subscribers;
    const { warmupMs, durationMs, drainMs } = plan.throughput;
    for (const qos of [0, 1] as const) {
      const res = await handle.call(
        'throughput',
        {
          qos,
          via: 'fanout',
          window,
          minIntervalMs,
          warmupMs,
          durationMs,
          drainMs,
          payloadSize: plan.payloadSize,
        },
        warmupMs + durationMs + drainMs + 60_000,
      );
      checkIntegrity(ctx, run, `fan-out QoS ${qos}`, res.tally);
      const rate = (res.windowDelivered / res.windowMs) * 1000;
      const cpu = run.broker.cpuShare(res.windowStart, res.windowEnd);
      results.add(specs.foreign(ctx, qos), name, ctx.machine.foreignCores(res.windowStart, res.windowEnd));
      results.add(specs.rate(ctx, qos), name, rate);
      results.add(specs.lost(ctx, qos), name, res.tally.lost);
      results.add(specs.brokerCpu(ctx, qos), name, cpu);
      results.add(specs.loadgenBusy(ctx, qos), name, res.elu);
      if (res.dropped > 0)
        results.note(`${name}, fan-out QoS ${qos}: the broker closed ${res.dropped} connections`);
      if (res.elu > 0.9 && (cpu ?? 0) < 0.9) {
        results.lowerBound(specs.rate(ctx, qos), name);
        results.note(
          `${name}, fan-out QoS ${qos}: the load generator was saturated while the broker had CPU to spare (see the busy and CPU rows): the figure is a lower bound`,
        );
      } else if (rate > 0.9 * offered) {
        results.lowerBound(specs.rate(ctx, qos), name);
        results.note(
          `${name}, fan-out QoS ${qos}: delivered ${rate.toFixed(0)}/s of the ${offered.toFixed(0)}/s the publishers may offer under the per-device quota: the figure is a lower bound`,
        );
      }
      log(
        `  ${name}: fan-out QoS ${qos} ${rate.toFixed(0)} msgs/s (${res.tally.sent} published × ${subscribers}, ${res.tally.delivered} delivered), lost ${res.tally.lost}, broker ${cpu?.toFixed(2) ?? '?'} cores, loadgen busy ${res.elu.toFixed(2)}`,
      );
    }
  } catch (err) {
    results.note(`${name}, fan-out: ${err instanceof Error ? err.message : String(err)}`);
    log(`  ${name}: fan-out failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await handle.call('disconnect', { timeoutMs: 5000 }, 60_000);
  }
}
