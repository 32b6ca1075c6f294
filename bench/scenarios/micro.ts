/** Scenarios (5) policy decision and (6) audit log: Bulwark-only figures, run before any broker starts. */
import type { MicroApi } from '../micro/index.ts';
import type { BenchContext } from '../harness/index.ts';
import type { MetricSpec } from '../harness/index.ts';
import { spawnChild } from '../ipc/index.ts';

export async function microBenchmarks(ctx: BenchContext): Promise<void> {
  const { plan, results, log } = ctx;
  const child = spawnChild<MicroApi>('micro', new URL('../micro/micro.ts', import.meta.url));
  try {
    if (plan.scenarios.includes('policy')) {
      const rows = await child.call('policy', plan.policy, 600_000);
      for (const r of rows) {
        const scenario = `5 policy, ${r.statements.toLocaleString('en-US')} statements`;
        const spec = (metric: string, unit = 'ns', target?: number): MetricSpec => ({
          scenario,
          metric,
          unit,
          better: 'lower',
          ...(target !== undefined ? { target: { kind: 'absolute', max: target } } : {}),
        });
        const atScale = r.statements >= 100_000 ? 1000 : undefined;
        results.add(spec('publish decision, cached topic'), 'bulwark', r.publishCachedNs);
        results.add(spec('publish decision, new topic', 'ns', atScale), 'bulwark', r.publishUncachedNs);
        results.add(
          spec('subscribe decision, new filter', 'ns', r.statements >= 100_000 ? 10_000 : undefined),
          'bulwark',
          r.subscribeUncachedNs,
        );
        const compileTarget = r.statements >= 100_000 ? 20 : undefined;
        results.add(spec('compile at CONNECT', 'ms', compileTarget), 'bulwark', r.compileMs);
        results.add(spec('compile, first CONNECT after a policy change', 'ms'), 'bulwark', r.firstCompileMs);
        log(
          `  policy: ${r.statements} statements, publish ${r.publishCachedNs.toFixed(0)} ns cached / ${r.publishUncachedNs.toFixed(0)} ns new, subscribe ${r.subscribeUncachedNs.toFixed(0)} ns, compile ${r.compileMs.toFixed(2)} ms (first ${r.firstCompileMs.toFixed(0)} ms)`,
        );
      }
    }
    if (plan.scenarios.includes('audit')) {
      const a = await child.call('audit', plan.audit, 900_000);
      const scenario = '6 audit log (SQLite, synchronous=FULL)';
      const spec = (metric: string, target?: number): MetricSpec => ({
        scenario,
        metric,
        unit: '/s',
        better: 'higher',
        ...(target ? { target: { kind: 'absolute', min: target } } : {}),
      });
      results.add(spec('durable appends/s, one per transaction'), 'bulwark', a.singlePerSec);
      results.add(
        spec('durable appends/s, batched by the event bus (1,000 concurrent)', 50_000),
        'bulwark',
        a.busPerSec,
      );
      results.add(spec('durable appends/s, 5,000 per transaction'), 'bulwark', a.bulkPerSec);
      results.add(
        spec(`verify entries/s (${a.verified.toLocaleString('en-US')} entries)`, 1_000_000),
        'bulwark',
        a.verifyPerSec,
      );
      if (!a.ok) results.note('audit log: the verification of the benchmark chain FAILED');
      log(
        `  audit: single ${a.singlePerSec.toFixed(0)}/s, bus ${a.busPerSec.toFixed(0)}/s, bulk ${a.bulkPerSec.toFixed(0)}/s, verify ${a.verifyPerSec.toFixed(0)}/s over ${a.verified}`,
      );
    }
  } finally {
    await child.kill(3000);
  }
}
