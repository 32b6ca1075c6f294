/**
 * `npm run bench [-- --quick]`: Bulwark's secured broker, bare Aedes and Mosquitto 2 side by side under
 * the same load, plus Bulwark's policy and audit-log micro-benchmarks. Writes bench/results/<mode>.json
 * and .md and prints the table. Never part of `npm test`. See docs/performance.md.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  boundedRun,
  buildReport,
  describeMachine,
  ensureFixture,
  ensureMosquitto,
  fixtureSize,
  LoadgenPool,
  MachineSampler,
  OBSERVER_APP,
  parsePlan,
  ProcessSampler,
  Results,
  startLoadgen,
  startSystem,
  summarizeProfile,
  writeReport,
  type BenchContext,
  type CpuProfile,
  type NamedProfile,
  type Plan,
  type SystemInfo,
  type SystemName,
  type SystemRun,
} from './harness/index.ts';
import {
  cliStartup,
  detectionLatency,
  detectionNotApplicable,
  fanOut,
  fleetRound,
  idleMemory,
  microBenchmarks,
  noisyNeighbour,
  observerFanIn,
  privacyThroughput,
  soak,
} from './scenarios/index.ts';

const descriptions: Record<SystemName, string> = {
  bulwark: `the real server on Bulwark's own MQTT core: mTLS, certificate checked against the store at CONNECT, per-message policy on publish, subscribe and delivery, durable audit of connects and denials`,
  aedes: 'bare Aedes (the engine Bulwark ran on before its own core), same TLS listener settings, no hooks',
  mosquitto:
    'require_certificate, use_identity_as_username, ACL pattern readwrite devices/%u/#, persistence off',
};

const started = new Date();
const { log, cleanup, onCleanup, run: runBounded } = boundedRun('bench');

async function profileBulwark(ctx: BenchContext, run: SystemRun): Promise<NamedProfile[]> {
  const { plan, pool } = ctx;
  const dir = path.join(plan.outDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const system = run.system;
  if (!system.profileStart || !system.profileStop) return [];
  const parts = pool.ranges(0, plan.fleet);
  const out: NamedProfile[] = [];
  const capture = async (scenario: string, slug: string, work: () => Promise<unknown>) => {
    const file = path.join(dir, `${plan.mode}-${slug}.cpuprofile`);
    await system.profileStart?.(200);
    await work();
    await system.profileStop?.(file);
    const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
    out.push({ scenario, file: path.relative(process.cwd(), file), summary });
    ctx.log(
      `  profile ${scenario}: ${summary.topSelf
        .slice(0, 3)
        .map((f) => `${f.frame} ${f.pct}%`)
        .join(', ')}`,
    );
  };
  try {
    await capture('connection storm (1,000 devices)', 'storm', () =>
      pool.each(
        parts,
        'connect',
        (part) => ({
          target: run.target,
          from: part.from,
          to: part.to,
          concurrency: Math.ceil(plan.stormConcurrency / parts.length),
          timeoutMs: 30_000,
          maxMs: 120_000,
        }),
        180_000,
      ),
    );
    await pool.each(parts, 'subscribe', () => ({ qos: 1, concurrency: 100, timeoutMs: 30_000 }), 120_000);
    const { warmupMs, durationMs, drainMs } = plan.throughput;
    await capture('throughput QoS 1 (1,000 devices)', 'throughput-qos1', () =>
      pool.each(
        parts,
        'throughput',
        () => ({
          qos: 1,
          via: 'own',
          window: plan.window,
          warmupMs,
          durationMs,
          drainMs,
          payloadSize: plan.payloadSize,
        }),
        warmupMs + durationMs + drainMs + 60_000,
      ),
    );
  } finally {
    await pool.each(parts, 'disconnect', () => ({ timeoutMs: 5000 }), 60_000);
  }
  return out;
}

async function main(plan: Plan): Promise<number> {
  const machine = describeMachine();
  log(
    `${plan.mode} run: ${plan.systems.join(', ')}; ${plan.rounds} round(s); ${machine.cpu} x${machine.cores}, Node ${machine.node}`,
  );
  const results = new Results();
  const infos: SystemInfo[] = [];

  let mosquitto: { binary: string; version: string } | undefined;
  if (plan.systems.includes('mosquitto')) {
    const found = ensureMosquitto(log);
    if ('skipped' in found) {
      infos.push({ name: 'mosquitto', description: descriptions.mosquitto, skipped: found.skipped });
      log(`mosquitto skipped: ${found.skipped}`);
    } else mosquitto = found;
  }
  const fixture = await ensureFixture(fixtureSize(plan), { fresh: plan.freshFixture, log });
  const pool = LoadgenPool.start(plan.loadgens);
  onCleanup(() => pool.stop());
  const machineLoad = new MachineSampler();
  onCleanup(() => Promise.resolve(machineLoad.stop()));
  machineLoad.track(process.pid);
  for (const h of pool.handles) machineLoad.track(h.pid);
  // The noisy neighbour's flooder and the detection scenario's offenders run in a process of their own,
  // apart from the devices whose latency counts (and whose traffic would delay the offenders' clock).
  const detecting = plan.scenarios.includes('detection') && plan.systems.includes('bulwark');
  const solo = plan.scenarios.includes('noisy') || detecting ? startLoadgen('solo') : undefined;
  if (solo) {
    onCleanup(() => solo.kill(3000));
    machineLoad.track(solo.pid);
  }
  const ctx: BenchContext = {
    plan,
    fixture,
    pool,
    results,
    log,
    machine: machineLoad,
    observed: { tls: '' },
  };
  // A shared machine makes every figure noisier: say how busy it was before we started.
  const quietFrom = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const before = machineLoad.foreignCores(quietFrom, Date.now());
  if (before !== undefined && before > 0.2) {
    log(
      `warning: other processes are using ${before.toFixed(2)} cores of this machine; figures will be noisy`,
    );
    results.note(
      `at the start, other processes used ${before.toFixed(2)} cores of this ${machine.cores}-core machine`,
    );
  }
  const wants = (s: Plan['scenarios'][number]) => plan.scenarios.includes(s);

  /** On a shared machine: wait (bounded) until other processes have left it idle for three seconds. */
  const waitQuiet = async () => {
    if (plan.waitQuietMs <= 0) return;
    const until = Date.now() + plan.waitQuietMs;
    let quiet = 0;
    let waited = false;
    while (quiet < 3 && Date.now() < until) {
      const from = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const other = machineLoad.foreignCores(from, Date.now()) ?? 0;
      quiet = other < 0.15 ? quiet + 1 : 0;
      if (!waited && quiet === 0)
        log(`waiting for a quiet machine (other processes use ${other.toFixed(2)} cores)`);
      waited ||= quiet === 0;
    }
  };
  if (wants('policy') || wants('audit')) {
    await waitQuiet();
    log('micro-benchmarks: policy decision, audit log');
    await microBenchmarks(ctx);
  }
  if (wants('cli')) {
    await waitQuiet();
    log('CLI start-up: bulwark and bulwark-agent, spawned one after the other');
    await cliStartup(ctx);
  }
  if (wants('detection'))
    for (const peer of ['aedes', 'mosquitto'] as const)
      if (plan.systems.includes(peer)) detectionNotApplicable(ctx, peer);

  const runs: SystemRun[] = [];
  const launch = async (name: SystemName): Promise<SystemRun> => {
    const system = await startSystem(name, fixture, mosquitto, OBSERVER_APP.name);
    machineLoad.track(system.pid);
    return {
      system,
      broker: new ProcessSampler(system.pid),
      target: {
        host: '127.0.0.1',
        port: system.port,
        servername: 'localhost',
        caFile: fixture.caFile,
        identitiesFile: fixture.identitiesFile,
        observerFile: fixture.observerFile,
      },
    };
  };
  const stopRun = async (run: SystemRun) => {
    run.broker.stop();
    await run.system.stop();
  };
  /** A fresh broker for scenarios that must not inherit earlier load (memory, soak). */
  const restart = async (run: SystemRun): Promise<void> => {
    await stopRun(run);
    Object.assign(run, await launch(run.system.name));
  };
  onCleanup(async () => {
    for (const run of runs) await stopRun(run);
  });
  for (const name of plan.systems) {
    if (name === 'mosquitto' && !mosquitto) continue;
    try {
      const run = await launch(name);
      runs.push(run);
      infos.push({ name, version: run.system.version, description: descriptions[name] });
      log(`${name} ${run.system.version} listening on 127.0.0.1:${run.system.port} (pid ${run.system.pid})`);
    } catch (err) {
      infos.push({
        name,
        description: descriptions[name],
        skipped: (err as Error).message.split('\n')[0] ?? 'did not start',
      });
      log(`${name} did not start: ${(err as Error).message}`);
    }
  }
  const alive = (run: SystemRun) => {
    const status = run.system.exitStatus();
    if (status)
      results.note(`${run.system.name} stopped unexpectedly (${status}); its later scenarios are missing`);
    return !status;
  };
  const inOrder = (round: number) => (round % 2 === 0 ? runs : [...runs].reverse());

  const profiles: NamedProfile[] = [];
  const fleetScenarios = wants('storm') || wants('throughput') || wants('latency') || wants('single');
  for (let round = 0; round < plan.rounds; round++) {
    for (const run of inOrder(round)) {
      if (!alive(run)) continue;
      const inline = plan.inline && round === plan.rounds - 1;
      const memory = plan.inline && round === 0 && wants('memory') && plan.memoryConnections === plan.fleet;
      // Detection latency (Bulwark only) once, in the last round, with that round's fleet connected.
      const detect = solo && detecting && run.system.name === 'bulwark' && round === plan.rounds - 1;
      if (!(fleetScenarios || memory || (inline && wants('soak')) || detect)) continue;
      await waitQuiet();
      log(`round ${round + 1}/${plan.rounds}: ${run.system.name}`);
      await fleetRound(ctx, run, {
        memory,
        soak: inline && wants('soak'),
        whileConnected: detect
          ? async (parts) => {
              log(`detection latency: ${plan.detection.offenders} offenders, ${run.system.name}`);
              const profile = await detectionLatency(ctx, run, solo, parts);
              if (profile) profiles.push(profile);
            }
          : undefined,
      });
    }
  }
  if (wants('observer')) {
    for (const run of inOrder(plan.rounds)) {
      if (!alive(run)) continue;
      await waitQuiet();
      log(`fan-in to one subscriber: ${run.system.name}`);
      await observerFanIn(ctx, run);
    }
  }
  if (wants('fanout')) {
    const { publishers, subscribers } = plan.fanout;
    for (const run of inOrder(plan.rounds)) {
      if (!alive(run)) continue;
      await waitQuiet();
      log(`fan-out: ${run.system.name}, ${publishers} devices to ${subscribers} subscribers`);
      await fanOut(ctx, run);
    }
  }
  if (wants('privacy')) {
    for (const run of runs) {
      if (run.system.name !== 'bulwark' || !alive(run)) continue;
      await waitQuiet();
      log('privacy: fan-in to an analytics app, without and with a data schema');
      await privacyThroughput(ctx, run);
    }
  }
  if (solo && wants('noisy')) {
    for (const run of inOrder(plan.rounds)) {
      if (!alive(run)) continue;
      await waitQuiet();
      log(`noisy neighbour: ${run.system.name}`);
      await noisyNeighbour(ctx, run, solo);
    }
  }
  const bulwark = runs.find((r) => r.system.name === 'bulwark');
  if (wants('profile') && bulwark && alive(bulwark)) {
    await waitQuiet();
    log('profiling Bulwark');
    profiles.push(...(await profileBulwark(ctx, bulwark)));
  }
  if (!plan.inline && wants('memory')) {
    for (const run of inOrder(plan.rounds + 1)) {
      await waitQuiet();
      log(`memory: ${run.system.name}, ${plan.memoryConnections} idle connections on a fresh broker`);
      await restart(run);
      await idleMemory(ctx, run);
    }
  }
  if (!plan.inline && wants('soak')) {
    for (const run of inOrder(plan.rounds)) {
      await waitQuiet();
      log(`soak: ${run.system.name} (fresh broker)`);
      await restart(run);
      await soak(ctx, run);
    }
  }
  const runLoad = machineLoad.foreignCores(quietFrom, Date.now());
  await cleanup();

  const report = buildReport({
    plan,
    machine,
    systems: infos,
    results,
    startedAt: started,
    tls: ctx.observed.tls,
    profiles,
    otherProcessesCores: runLoad,
  });
  const written = await writeReport(report, plan.outDir);
  process.stdout.write(written.markdown);
  log(
    `wrote ${path.relative(process.cwd(), written.json)} and ${path.relative(process.cwd(), written.md)} in ${report.durationS} s`,
  );
  return 0;
}

let plan: Plan;
try {
  const parsed = parsePlan(process.argv.slice(2));
  if ('help' in parsed) {
    process.stdout.write(`${parsed.help}\n`);
    process.exit(0);
  }
  plan = parsed;
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(2);
}

runBounded(() => main(plan), plan.deadlineMs);
