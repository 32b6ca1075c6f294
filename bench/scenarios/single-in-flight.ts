/**
 * (3b) One message in flight: a device publishes to its own topic and sends the next message only once
 * the previous one is back (and, at QoS 1, acknowledged). Nothing else runs. This is where Nagle's
 * algorithm on the broker's socket meets the client's delayed ACK: see docs/performance.md.
 */
import type { BenchContext, SystemRun } from '../harness/index.ts';
import { pingerIndex } from '../harness/index.ts';
import type { MetricSpec } from '../harness/index.ts';
import { summarize } from '../harness/index.ts';

const spec = (qos: number, what: string, variant = ''): MetricSpec => ({
  scenario: `3b single message in flight, QoS ${qos}${variant}`,
  metric: what,
  unit: 'ms',
  better: 'lower',
  ...(what === 'p95' && !variant ? { target: { kind: 'absolute', max: 5 } } : {}),
  // Issue 19: the single-in-flight QoS 1 round trip, p50 ≤ 0.2 ms.
  ...(what === 'p50' && qos === 1 && !variant ? { target: { kind: 'absolute', max: 0.2 } } : {}),
});

async function measure(ctx: BenchContext, run: SystemRun, variant: string): Promise<void> {
  const { plan, pool, results, log } = ctx;
  const name = run.system.name;
  for (const qos of [0, 1] as const) {
    const res = await pool.first.call(
      'ping',
      {
        target: run.target,
        index: pingerIndex(plan),
        qos,
        count: plan.single.count,
        warmup: plan.single.warmup,
        maxMs: plan.single.maxMs,
        timeoutMs: 2000,
        minIntervalMs: plan.single.minIntervalMs,
        payloadSize: plan.payloadSize,
      },
      plan.single.maxMs + 30_000,
    );
    if (res.corrupt > 0) results.note(`${name}, single message in flight QoS ${qos}: ${res.corrupt} corrupt`);
    if (res.timeouts > 0)
      results.note(
        `${name}, single message in flight QoS ${qos}${variant}: ${res.timeouts} messages not back within 2 s`,
      );
    const d = summarize([res.delivery]);
    results.add(spec(qos, 'p50', variant), name, d.p50);
    results.add(spec(qos, 'p95', variant), name, d.p95);
    results.add(spec(qos, 'p99', variant), name, d.p99);
    if (qos === 1) results.add(spec(qos, 'PUBACK p95', variant), name, summarize([res.ack]).p95);
    log(
      `  ${name}${variant}: single in flight QoS ${qos} p50 ${d.p50.toFixed(2)} p95 ${d.p95.toFixed(2)} p99 ${d.p99.toFixed(2)} ms (${d.n} msgs)`,
    );
  }
}

export async function singleInFlight(ctx: BenchContext, run: SystemRun): Promise<void> {
  await measure(ctx, run, '');
  // The control experiment: the same broker with TCP_NODELAY on its sockets (only bare Aedes has the switch).
  if (await run.system.setNoDelay(true)) {
    try {
      await measure(ctx, run, ', broker socket TCP_NODELAY');
    } finally {
      await run.system.setNoDelay(false);
    }
  }
}
