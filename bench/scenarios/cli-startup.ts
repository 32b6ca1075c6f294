/**
 * Scenario 10, CLI start-up (issue 12): how long `bulwark` and `bulwark-agent` take from spawn to exit, as a
 * user runs them (`node bin/…js`, which loads the compiled bundle with its code cache). Each command runs
 * once to warm the cache and the page cache, then `plan.cli.runs` times one after the other
 * (hyperfine-style); the figure is the median wall time, with the p95. Target: under 500 ms each.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile, type BenchContext, type MetricSpec } from '../harness/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BULWARK = path.join(root, 'packages/server/bin/bulwark.js');
const AGENT = path.join(root, 'packages/device/bin/bulwark-agent.js');

/** Wall time of one run, in ms; a failed run throws with its stderr (a figure of a failure means nothing). */
function timeRun(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${args.slice(1).join(' ')} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

export async function cliStartup(ctx: BenchContext): Promise<void> {
  const { plan, results, log } = ctx;
  // The bundles as `npm install` builds them, from the sources being measured.
  const build = spawnSync(process.execPath, [path.join(root, 'scripts/build.js'), '--quiet'], {
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-bench-cli-'));
  try {
    await timeRun([BULWARK, 'init', '--data', dataDir]);
    const commands: [string, string[]][] = [
      ['bulwark --version', [BULWARK, '--version']],
      ['bulwark device list', [BULWARK, 'device', 'list', '--data', dataDir]],
      ['bulwark-agent --version', [AGENT, '--version']],
    ];
    for (const [name, args] of commands) {
      await timeRun(args); // warm-up: writes the code cache
      const times: number[] = [];
      for (let i = 0; i < plan.cli.runs; i++) times.push(await timeRun(args));
      times.sort((a, b) => a - b);
      const spec = (metric: string, target?: number): MetricSpec => ({
        scenario: `10 CLI start-up, ${name}`,
        metric,
        unit: 'ms',
        better: 'lower',
        ...(target ? { target: { kind: 'absolute', max: target } } : {}),
      });
      const p50 = percentile(times, 0.5);
      const p95 = percentile(times, 0.95);
      results.add(spec('median, spawn to exit', 500), 'bulwark', p50);
      results.add(spec('p95, spawn to exit'), 'bulwark', p95);
      log(`  ${name}: median ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms over ${times.length} runs`);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
