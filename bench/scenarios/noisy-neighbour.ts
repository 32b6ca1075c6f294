/**
 * (9) Noisy neighbour (issue #4, acceptance 2): well-behaved devices publish QoS 1 at a steady rate to their
 * own topic and get it back; after a quiet baseline, one more device floods its own topic as fast as its
 * connection takes it. Bulwark's firewall, with its default quotas (100 messages/s, burst 200, five
 * throttles within a minute), must throttle and then disconnect the flooder while the others keep their
 * latency within 2× of the quiet baseline. Aedes and Mosquitto have no per-device quota: the flood goes on
 * for the whole phase, and their ratio shows what that costs the neighbours.
 *
 * The well-behaved devices run in the first load generator, the flooder in a process of its own, so the
 * flooder's CPU never delays the measuring side's event loop. Phases are split by each message's scheduled
 * send time against the flood's actual start, both on the wall clock.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext, LoadgenHandle, MetricSpec, SystemRun } from '../harness/index.ts';
import { deviceId, flooderIndex, summarize } from '../harness/index.ts';
import { checkIntegrity } from './fleet-connect.ts';

type Kind = 'end-to-end' | 'PUBACK';
type Quantile = 'p50' | 'p99';
type Phase = 'quiet' | 'flood';

function specs(ctx: BenchContext) {
  const n = ctx.plan.noisy;
  const devices = `9 noisy neighbour: ${n.devices} devices at ${n.ratePerDevice} msgs/s each, QoS 1`;
  const flooder = `9 noisy neighbour: the flooder (QoS 1, ${n.flood.payloadSize} B, ${n.flood.window} in flight)`;
  return {
    latency: (kind: Kind, q: Quantile, phase: Phase): MetricSpec => ({
      scenario: devices,
      metric: `${kind} ${q}, ${phase}`,
      unit: 'ms',
      better: 'lower',
    }),
    ratio: (kind: Kind, q: Quantile): MetricSpec => ({
      scenario: devices,
      metric: `${kind} ${q}, flood ÷ quiet`,
      unit: '×',
      better: 'lower',
      target: { kind: 'absolute', max: 2 },
    }),
    lost: {
      scenario: devices,
      metric: 'lost (not delivered back after the drain)',
      unit: 'msgs',
      better: 'lower',
      target: { kind: 'absolute', max: 0 },
    },
    dropped: {
      scenario: devices,
      metric: 'disconnected by the broker',
      unit: 'devices',
      better: 'lower',
      target: { kind: 'absolute', max: 0 },
    },
    cpu: (phase: Phase): MetricSpec => ({
      scenario: devices,
      metric: `broker CPU, ${phase}`,
      unit: 'cores',
      better: 'none',
    }),
    foreign: {
      scenario: devices,
      metric: 'other processes on the machine',
      unit: 'cores',
      better: 'none',
    },
    sent: { scenario: flooder, metric: 'messages sent', unit: 'msgs', better: 'none' },
    taken: { scenario: flooder, metric: 'messages in (PUBACKs received)', unit: 'msgs', better: 'none' },
    echoed: {
      scenario: flooder,
      metric: 'messages delivered back (its own subscription)',
      unit: 'msgs',
      better: 'none',
    },
    throttled: {
      scenario: flooder,
      metric: 'first throttled, after the flood started (audit log)',
      unit: 'ms',
      better: 'none',
    },
    disconnectedAfter: {
      scenario: flooder,
      metric: 'disconnected, after the flood started (client sees the close)',
      unit: 'ms',
      better: 'none',
    },
    disconnected: {
      scenario: flooder,
      metric: 'disconnected by the broker',
      unit: 'yes/no',
      better: 'none',
      target: { kind: 'absolute', min: 1 },
    },
  } satisfies Record<string, MetricSpec | ((...args: never[]) => MetricSpec)>;
}

/** The latencies of messages scheduled within [from, to) (wall clock). */
function within(at: Float64Array, ms: Float64Array, from: number, to: number): Float64Array {
  const out: number[] = [];
  for (let i = 0; i < at.length; i++) {
    const t = at[i] as number;
    if (t >= from && t < to) out.push(ms[i] as number);
  }
  return Float64Array.from(out);
}

export async function noisyNeighbour(
  ctx: BenchContext,
  run: SystemRun,
  flooder: LoadgenHandle,
): Promise<void> {
  const { plan, pool, results, log } = ctx;
  const n = plan.noisy;
  const name = run.system.name;
  const spec = specs(ctx);
  const handle = pool.first;
  const flooderId = deviceId(flooderIndex(plan));

  const connected = await handle.call(
    'connect',
    { target: run.target, from: 0, to: n.devices, concurrency: 50, timeoutMs: 30_000, maxMs: 60_000 },
    90_000,
  );
  try {
    if (connected.connected !== n.devices) {
      results.note(
        `${name}, noisy neighbour: only ${connected.connected}/${n.devices} devices connected (${connected.firstError ?? '?'}); skipped`,
      );
      return;
    }
    await handle.call('subscribe', { qos: 1, concurrency: 50, timeoutMs: 30_000 }, 60_000);
    await flooder.call(
      'floodConnect',
      { target: run.target, index: flooderIndex(plan), subscribe: n.flood.subscribe, timeoutMs: 30_000 },
      60_000,
    );

    const total = n.warmupMs + n.quietMs + n.floodMs;
    const steadyCall = handle.call(
      'steady',
      { ratePerDevice: n.ratePerDevice, durationMs: total, drainMs: n.drainMs, payloadSize: n.payloadSize },
      total + n.drainMs + 60_000,
    );
    steadyCall.catch(() => undefined); // awaited below; this keeps an early failure from going unhandled
    await sleep(n.warmupMs + n.quietMs);
    const flood = await flooder.call(
      'flood',
      {
        payloadSize: n.flood.payloadSize,
        window: n.flood.window,
        batch: n.flood.batch,
        durationMs: n.floodMs,
        graceMs: 500,
      },
      n.floodMs + 60_000,
    );
    const steady = await steadyCall;

    const quiet = { from: steady.start + n.warmupMs, to: flood.start };
    const flooded = { from: flood.start, to: Math.min(flood.start + n.floodMs, steady.end) };
    const lat = (kind: Kind, phase: Phase) => {
      const w = phase === 'quiet' ? quiet : flooded;
      return kind === 'end-to-end'
        ? summarize([within(steady.deliveredAt, steady.deliveredMs, w.from, w.to)])
        : summarize([within(steady.ackedAt, steady.ackedMs, w.from, w.to)]);
    };
    for (const kind of ['end-to-end', 'PUBACK'] as const) {
      const q = lat(kind, 'quiet');
      const f = lat(kind, 'flood');
      for (const quantile of ['p50', 'p99'] as const) {
        results.add(spec.latency(kind, quantile, 'quiet'), name, q[quantile]);
        results.add(spec.latency(kind, quantile, 'flood'), name, f[quantile]);
        if (q[quantile] > 0) results.add(spec.ratio(kind, quantile), name, f[quantile] / q[quantile]);
      }
      log(
        `  ${name}: noisy neighbour ${kind} quiet p50 ${q.p50.toFixed(2)} p99 ${q.p99.toFixed(2)} ms (${q.n}), flood p50 ${f.p50.toFixed(2)} p99 ${f.p99.toFixed(2)} ms (${f.n})`,
      );
    }
    checkIntegrity(ctx, run, 'noisy neighbour', steady.tally);
    results.add(spec.lost, name, steady.tally.lost);
    results.add(spec.dropped, name, steady.dropped);
    results.add(spec.cpu('quiet'), name, run.broker.cpuShare(quiet.from, quiet.to));
    results.add(spec.cpu('flood'), name, run.broker.cpuShare(flooded.from, flooded.to));
    results.add(spec.foreign, name, ctx.machine.foreignCores(quiet.from, flooded.to));
    if (steady.dropped > 0)
      results.note(
        `${name}, noisy neighbour: the broker disconnected ${steady.dropped} well-behaved devices (the first ${((steady.firstDroppedAt ?? 0) - flood.start).toFixed(0)} ms after the flood started); ${steady.unsent} of their scheduled messages were never sent`,
      );
    if (steady.behind > 0)
      results.note(
        `${name}, noisy neighbour: the pacer fell behind by ${steady.behind} messages (load generator saturated)`,
      );

    // The flooder: what got in, and when the broker stopped it (Bulwark: from its audit log too).
    const dropped = flood.droppedAt !== undefined;
    const at = (ts: number) => `${ts - flood.start >= 0 ? '+' : ''}${(ts - flood.start).toFixed(0)} ms`;
    const events = run.system.firewallEvents
      ? await run.system.firewallEvents(flooderId, Math.floor(flood.start) - 1000)
      : undefined;
    const throttled = events?.find((e) => e.type === 'firewall.throttled');
    const out = events?.find((e) => e.type === 'firewall.disconnected');
    results.add(spec.sent, name, flood.sent);
    results.add(spec.taken, name, flood.acked);
    if (n.flood.subscribe) results.add(spec.echoed, name, flood.delivered);
    if (!events) results.skip(spec.throttled, name, 'no per-device publish quota');
    else if (throttled) results.add(spec.throttled, name, throttled.ts - flood.start);
    if (dropped) results.add(spec.disconnectedAfter, name, (flood.droppedAt as number) - flood.start);
    results.add(spec.disconnected, name, dropped ? 1 : 0);
    let firewall = '';
    if (events) {
      firewall = [
        throttled
          ? `firewall.throttled at ${at(throttled.ts)} (wait ${String(throttled.data.waitMs)} ms)`
          : 'no firewall.throttled',
        out
          ? `firewall.disconnected at ${at(out.ts)} (${String(out.data.reason)})`
          : 'no firewall.disconnected',
      ].join(', ');
      results.note(
        `${name}, noisy neighbour: the audit log holds, from the flood's start, ${firewall}; the flooder saw its connection close ${dropped ? at(flood.droppedAt as number) : 'never'}`,
      );
      if (!throttled || !out || throttled.ts > out.ts)
        results.note(`${name}, noisy neighbour: the flooder was not throttled and then disconnected`);
    }
    log(
      `  ${name}: flooder sent ${flood.sent}, ${flood.acked} acknowledged, ${flood.delivered} delivered back, ${dropped ? `disconnected after ${((flood.droppedAt as number) - flood.start).toFixed(0)} ms` : 'never disconnected'}${firewall ? `; ${firewall}` : ''}; well-behaved: ${steady.tally.delivered}/${steady.tally.sent} delivered, ${steady.dropped} disconnected`,
    );
  } finally {
    await flooder.call('disconnect', { timeoutMs: 2000 }, 30_000).catch(() => undefined);
    await handle.call('disconnect', { timeoutMs: 5000 }, 60_000);
  }
}
