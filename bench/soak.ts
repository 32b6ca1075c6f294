/**
 * `npm run soak [-- --minutes N]`: a mixed soak of Bulwark's broker, 30 minutes by default (issue 19,
 * stability; not in CI). Starts the real server and the load generator as `npm run bench` does, runs
 * bench/scenarios/soak-mixed.ts and writes bench/results/soak.json and soak.md. See docs/performance.md.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  boundedRun,
  describeMachine,
  ensureFixture,
  LoadgenPool,
  MachineSampler,
  OBSERVER_APP,
  ProcessSampler,
  startSystem,
  writeResultFiles,
  type Machine,
  type SystemRun,
} from './harness/index.ts';
import { soakClasses } from './load/index.ts';
import { mixedSoak, soakLayout, type SoakOutcome, type SoakPlan } from './scenarios/soak-mixed.ts';

const usage = `npm run soak -- [options]

  --minutes N     how long the traffic runs (default 30; 2 for a smoke run)
  --devices N     telemetry devices (default 500)
  --sample-seconds N   seconds between two readings of the server (default 30)
  --out DIR       where soak.json and soak.md go (default: bench/results)
  --help`;

function positive(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

function parsePlan(argv: string[]): SoakPlan | { help: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      devices: { type: 'string' },
      'sample-seconds': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return { help: usage };
  const minutes = positive(values.minutes, 'minutes', 30);
  return {
    minutes,
    devices: positive(values.devices, 'devices', 500),
    // 1 message/s per device, QoS 0 and 1 alternately: 500 messages/s for the default fleet, each delivered to
    // its device, the observer and (for the hot devices) the fan-out instances.
    ratePerDevice: 1,
    // 20 devices whose sessions outlive their connections; offline at most 30 s at 1 message/s: about 30
    // messages queued each, far inside the core's bound of 1,000 (mqtt.maxQueuedMessages).
    persistent: { devices: 20, ratePerDevice: 1, onlineMs: [15_000, 45_000], offlineMs: [5_000, 30_000] },
    fanout: { instances: 4, hotDevices: 5 },
    // Under Bulwark's per-device burst (200) with the steady traffic: the soak is about the broker's queues,
    // not its firewall. Every 5 minutes (a short run: four floods).
    flood: {
      everyMs: Math.min(5 * 60_000, Math.max(20_000, (minutes * 60_000) / 4)),
      perDevice: 150,
      qos1PerDevice: 20,
      qos1Window: 10,
      maxMs: 20_000,
    },
    churnEveryMs: 2000,
    refuseEveryMs: 60_000,
    sampleEveryMs: positive(values['sample-seconds'], 'sample-seconds', 30) * 1000,
    payloadSize: 64,
    drainMs: 60_000,
    thresholds: { rssMiBPerHour: 32, heapMiBPerHour: 16 },
    outDir: values.out ?? new URL('results/', import.meta.url).pathname,
  };
}

const { log, cleanup, onCleanup, run: runBounded } = boundedRun('soak');

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || !Number.isFinite(v)
    ? '—'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

interface Check {
  check: string;
  value: string;
  target: string;
  met: boolean;
}

function checks(plan: SoakPlan, o: SoakOutcome): { checks: Check[]; lostAcknowledged: number } {
  const r = o.result;
  const s = r.status;
  const receivers = [s.self, s.observer, s.persistent, ...s.fanout];
  const bad = receivers.reduce((n, x) => n + x.corrupt + x.misrouted + x.wrongQos, 0);
  const refusedDelivered = receivers.reduce((n, x) => n + x.refusedDelivered, 0);
  const observerId = OBSERVER_APP.name;
  const reportedFor = (clientId: string) => o.audit.deliveryDropped[clientId] ?? 0;
  const unexplained = (lost: number, clientId: string) => Math.max(0, lost - reportedFor(clientId));
  const fanUnexplained = r.lostQos1.fanout.reduce(
    (n, lost, k) => n + unexplained(lost, `${observerId}/fan-${k + 1}`),
    0,
  );
  const lostAcknowledged =
    r.lostQos1.persistent + r.lostQos1.self + unexplained(r.lostQos1.observer, observerId) + fanUnexplained;
  const sessionMissing = r.persistentDevices.reduce((n, d) => n + d.sessionMissing, 0);
  const returns = sum(r.persistentDevices.map((d) => d.cycles));
  const { rssMiBPerHour, heapMiBPerHour } = o.slopes;
  // Too short a run has too few windows for a fit: no verdict on memory then (a smoke run).
  const within = (v: number | undefined, max: number) => v === undefined || v <= max;
  return {
    lostAcknowledged,
    checks: [
      {
        check: 'server alive at the end (3 QoS 1 messages to a new device and back)',
        value: o.alive ? 'yes' : `no${o.exitStatus ? ` (${o.exitStatus})` : ''}`,
        target: 'yes',
        met: o.alive,
      },
      {
        check: 'lost acknowledged QoS 1 messages (all subscribers, less drops the broker reported for them)',
        value: fmt(lostAcknowledged),
        target: '0',
        met: lostAcknowledged === 0 && r.drained,
      },
      {
        check: 'persistent sessions: lost acknowledged QoS 1',
        value: `${fmt(r.lostQos1.persistent)} of ${fmt(sum(r.persistentDevices.map((d) => d.acked)))}`,
        target: '0',
        met: r.lostQos1.persistent === 0,
      },
      {
        check: 'persistent sessions found kept at reconnect (CONNACK session present)',
        value: `${fmt(returns - sessionMissing)} of ${fmt(returns)}`,
        target: 'all',
        met: sessionMissing === 0,
      },
      {
        check: 'refused subscribes answered 0x80 / refused publishes closed',
        value: `${o.refusals.subscribeRefused}/${o.refusals.subscribeTried}, ${o.refusals.publishClosed}/${o.refusals.publishTried}`,
        target: 'all',
        met:
          o.refusals.subscribeRefused === o.refusals.subscribeTried &&
          o.refusals.publishClosed === o.refusals.publishTried &&
          o.refusals.publishTried > 0,
      },
      {
        check: 'refusals in the audit log (mqtt.subscribe_denied, mqtt.publish_denied)',
        value: `${o.audit.subscribeDenied}, ${o.audit.publishDenied}`,
        target: `≥ ${o.refusals.subscribeTried}, ≥ ${o.refusals.publishTried}`,
        met:
          o.audit.subscribeDenied >= o.refusals.subscribeTried &&
          o.audit.publishDenied >= o.refusals.publishTried,
      },
      {
        check: 'refused publishes delivered to anyone',
        value: fmt(refusedDelivered),
        target: '0',
        met: refusedDelivered === 0,
      },
      {
        check: 'corrupt, misrouted or wrong-QoS deliveries',
        value: fmt(bad),
        target: '0',
        met: bad === 0,
      },
      {
        check: 'connections the broker closed unasked (fleet, apps, persistent devices)',
        value: fmt(s.counters.droppedByBroker),
        target: '0',
        met: s.counters.droppedByBroker === 0,
      },
      {
        check: `RSS slope over the second half (from ${o.slopes.fromS} s; lowest reading per ${o.slopes.windowS} s)`,
        value: `${fmt(rssMiBPerHour, 1)} MiB/h`,
        target: `≤ ${plan.thresholds.rssMiBPerHour} MiB/h`,
        met: within(rssMiBPerHour, plan.thresholds.rssMiBPerHour),
      },
      {
        check: `heap used (after a full GC) slope over the second half (same windows)`,
        value: `${fmt(heapMiBPerHour, 1)} MiB/h`,
        target: `≤ ${plan.thresholds.heapMiBPerHour} MiB/h`,
        met: within(heapMiBPerHour, plan.thresholds.heapMiBPerHour),
      },
    ],
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const MiB = 2 ** 20;

function toMarkdown(plan: SoakPlan, machine: Machine, o: SoakOutcome, c: ReturnType<typeof checks>): string {
  const r = o.result;
  const s = r.status;
  const lines: string[] = [];
  const verdict = c.checks.every((x) => x.met);
  const fitted = o.slopes.rssMiBPerHour !== undefined && o.slopes.heapMiBPerHour !== undefined;
  const memoryOk = fitted && c.checks.slice(-2).every((x) => x.met);
  lines.push(
    `## Mixed soak, ${o.startedAt.slice(0, 10)}: ${verdict ? 'passed' : 'FAILED'}${memoryOk ? ', no unbounded growth' : fitted ? '' : ' (too short for a memory fit)'}`,
    '',
    `- **Machine:** ${machine.cpu}, ${machine.cores} cores${machine.virtualization ? ` (${machine.virtualization} VM)` : ''}, ${machine.memoryGb} GB RAM, ${machine.os}; Node ${machine.node}${machine.commit ? `; commit ${machine.commit}` : ''}`,
    `- **Server:** the real Bulwark server on its own MQTT core (mTLS, per-message policy, durable audit, firewall at its defaults), as \`npm run bench\` starts it`,
    `- **Duration:** ${fmt(o.durationS / 60, 1)} min of traffic (started ${o.startedAt}); other processes on the machine used ${fmt(o.otherCores, 2)} cores on average (load average ${fmt(o.loadAverage.start, 1)} at the start, ${fmt(o.loadAverage.end, 1)} at the end)`,
    `- **Traffic:** ${fmt(plan.devices)} devices publishing ${plan.ratePerDevice} message/s each to their own telemetry, QoS 0 and QoS 1 alternately, each subscribed to its own telemetry (QoS 1); every ${fmt(plan.flood.everyMs / 1000)} s a QoS 0 flood (${plan.flood.perDevice} per device) with ${plan.flood.qos1PerDevice} QoS 1 per device right behind it; the observer app on \`devices/+/telemetry\` (fan-in); ${plan.fanout.instances} instances of it on the telemetry of ${o.start.hot.length} devices (fan-out); ${plan.persistent.devices} devices with persistent sessions (clean session 0) on \`devices/<id>/config\`, online ${plan.persistent.onlineMs[0] / 1000}–${plan.persistent.onlineMs[1] / 1000} s then offline ${plan.persistent.offlineMs[0] / 1000}–${plan.persistent.offlineMs[1] / 1000} s (every other one without DISCONNECT), while the app \`${o.start.commander}\` publishes QoS 1 to each at ${plan.persistent.ratePerDevice} message/s; a device reconnecting every ${plan.churnEveryMs / 1000} s (every other one resuming its TLS session) and another subscribing or unsubscribing; a refused subscribe and a refused publish every ${plan.refuseEveryMs / 1000} s`,
    `- **Samples:** every ${plan.sampleEveryMs / 1000} s, after a full GC in the server: RSS from /proc, heap from \`/metrics\` (an operator's API token)`,
    '',
    '| check | value | target | met |',
    '| --- | ---: | ---: | :---: |',
    ...c.checks.map((x) => `| ${x.check} | ${x.value} | ${x.target} | ${x.met ? '✓' : '✗'} |`),
    '',
    '**Messages per class** (QoS 0 may be dropped under a flood; QoS 1 delivered counts each message once, duplicates apart)',
    '',
    '| class | published | acknowledged | to its own device | to the observer | to each fan-out instance (mean) | to the persistent device |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const fanMean = (cls: number) =>
    s.fanout.length ? sum(s.fanout.map((f) => f.delivered[cls] ?? 0)) / s.fanout.length : undefined;
  for (let cls = 0; cls < 5; cls++) {
    const qos1 = cls % 2 === 1 || cls === 4;
    const persistent = cls === 4;
    lines.push(
      `| ${soakClasses[cls]} | ${fmt(s.sent[cls])} | ${qos1 ? fmt(s.acked[cls]) : '—'} | ${persistent ? '—' : fmt(s.self.delivered[cls])} | ${persistent ? '—' : fmt(s.observer.delivered[cls])} | ${persistent ? '—' : fmt(fanMean(cls))} | ${persistent ? fmt(s.persistent.delivered[cls]) : '—'} |`,
    );
  }
  const dupes = (x: { duplicates: number[] }) => sum(x.duplicates);
  const m = o.metricsAtEnd;
  const dropsByClient = Object.entries(o.audit.deliveryDropped).sort((a, b) => b[1] - a[1]);
  lines.push(
    '',
    `Each fan-out instance should have received ${fmt(r.fanoutExpected.qos1)} acknowledged QoS 1 and ${fmt(r.fanoutExpected.qos0)} QoS 0 messages. ` +
      `Acknowledged QoS 1 not delivered: own devices ${fmt(r.lostQos1.self)}, observer ${fmt(r.lostQos1.observer)}, fan-out ${r.lostQos1.fanout.map((n) => fmt(n)).join(', ')}, persistent ${fmt(r.lostQos1.persistent)}` +
      ` (${r.drained ? `all in within ${fmt(r.drainMs / 1000, 1)} s of the end` : `not all in after ${fmt(r.drainMs / 1000, 1)} s`}; ${fmt(s.counters.undrainedAtReconnect)} were still on their way to a device when it reconnected with a clean session, which discards them by design). ` +
      `QoS 0 not delivered: own devices ${fmt(r.missedQos0.self)}, observer ${fmt(r.missedQos0.observer)}, fan-out ${r.missedQos0.fanout.map((n) => fmt(n)).join(', ')}. ` +
      `Duplicates (QoS 1 is at least once): own devices ${fmt(dupes(s.self))}, observer ${fmt(dupes(s.observer))}, fan-out ${fmt(sum(s.fanout.map(dupes)))}, persistent ${fmt(dupes(s.persistent))}.`,
    '',
    `**Drops the broker reported**: \`bulwark_mqtt_dropped_messages_total\` queue_full ${fmt(m.droppedQueueFull)}, too_large ${fmt(m.droppedTooLarge)}, expired ${fmt(m.droppedExpired)}; \`bulwark_app_dropped_messages_total{app="${OBSERVER_APP.name}"}\` ${fmt(m.appDroppedObserver)}; \`mqtt.delivery_dropped\` audit entries: ${
      dropsByClient.length
        ? dropsByClient
            .slice(0, 8)
            .map(([id, n]) => `${id} ${fmt(n)}`)
            .join(', ')
        : 'none'
    }. Malformed packets ${fmt(m.malformed)}, protocol errors ${fmt(m.protocolErrors)}.`,
    '',
    `**Churn**: ${fmt(s.counters.reconnects)} device reconnects (${fmt(s.counters.resumed)} resumed their TLS session, ${fmt(s.counters.reconnectFailures)} failed), ${fmt(s.counters.subscribeCycles)} subscribe/unsubscribe cycles, ${fmt(s.counters.persistentCycles)} returns of persistent devices (${fmt(s.counters.persistentReconnectFailures)} failed), ${fmt(s.counters.deniedSubscribes)} refused subscribes, ${fmt(s.counters.deniedPublishes)} refused publishes. Steady messages not sent because the device was reconnecting: ${fmt(s.counters.steadyUnsent)}; behind schedule (load generator): ${fmt(s.counters.steadyBehind)}.`,
    '',
    '**Floods**',
    '',
    '| at | QoS 0 sent | in | QoS 1 sent | acknowledged in | devices |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    ...o.floods.map(
      (f) =>
        `| ${fmt(f.atS)} s | ${fmt(f.sentQos0)} | ${fmt(f.floodMs / 1000, 1)} s | ${fmt(f.sentQos1)} | ${fmt(f.qos1Ms / 1000, 1)} s | ${fmt(f.devices)}${f.stalled ? ` (${f.stalled} stalled)` : ''} |`,
    ),
    '',
    `**Memory over time** (linear fit over the second half of the lowest reading in each ${o.slopes.windowS} s window: RSS ${fmt(o.slopes.rssMiBPerHour, 1)} MiB/h, heap used ${fmt(o.slopes.heapMiBPerHour, 1)} MiB/h; "no unbounded growth" when within ${plan.thresholds.rssMiBPerHour} and ${plan.thresholds.heapMiBPerHour} MiB/h, about ${fmt((plan.thresholds.heapMiBPerHour * MiB) / (plan.devices * plan.ratePerDevice * 3600), 0)} bytes of heap per steady message. A fit of every reading: RSS ${fmt(o.slopes.allSamples.rssMiBPerHour, 1)} MiB/h, heap ${fmt(o.slopes.allSamples.heapMiBPerHour, 1)} MiB/h)`,
    '',
    '| t | RSS (MiB) | heap used (MiB) | heap total (MiB) | event-loop lag p99 (ms) | connections | sessions | subscriptions | published | delivered | other load (cores) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...o.samples.map(
      (x) =>
        `| ${fmt(x.t)} s | ${fmt(x.rssMiB, 1)} | ${fmt(x.heapUsedMiB, 1)} | ${fmt(x.heapTotalMiB, 1)} | ${fmt(x.eventLoopLagP99Ms, 1)} | ${fmt(x.mqtt.connections)} | ${fmt(x.mqtt.sessions)} | ${fmt(x.mqtt.subscriptions)} | ${fmt(x.published)} | ${fmt(x.delivered)} | ${fmt(x.otherCores, 2)} |`,
    ),
  );
  if (r.errors.length) lines.push('', '**Errors**', '', ...r.errors.slice(0, 20).map((e) => `- ${e}`));
  return `${lines.join('\n')}\n`;
}

async function main(plan: SoakPlan): Promise<number> {
  const machine = describeMachine();
  const layout = soakLayout(plan);
  log(
    `${plan.minutes} min mixed soak, ${plan.devices} devices; ${machine.cpu} x${machine.cores}, Node ${machine.node}`,
  );
  const fixture = await ensureFixture(layout.devices, { fresh: false, log });
  const pool = LoadgenPool.start(1);
  onCleanup(() => pool.stop());
  const machineLoad = new MachineSampler(1000);
  onCleanup(() => Promise.resolve(machineLoad.stop()));
  machineLoad.track(process.pid);
  for (const h of pool.handles) machineLoad.track(h.pid);
  const system = await startSystem('bulwark', fixture, undefined, OBSERVER_APP.name);
  const run: SystemRun = {
    system,
    broker: new ProcessSampler(system.pid, 1000),
    target: {
      host: '127.0.0.1',
      port: system.port,
      servername: 'localhost',
      caFile: fixture.caFile,
      identitiesFile: fixture.identitiesFile,
      observerFile: fixture.observerFile,
    },
  };
  onCleanup(async () => {
    run.broker.stop();
    await system.stop();
  });
  machineLoad.track(system.pid);
  log(`bulwark ${system.version} listening on 127.0.0.1:${system.port} (pid ${system.pid})`);
  const outcome = await mixedSoak({ plan, fixture, pool, run, machine: machineLoad, log });
  await cleanup();
  const c = checks(plan, outcome);
  const markdown = toMarkdown(plan, machine, outcome, c);
  const written = await writeResultFiles(
    plan.outDir,
    'soak',
    { schema: 1, machine, plan, ...c, ...outcome },
    `# Bulwark mixed soak\n\n${markdown}`,
  );
  process.stdout.write(written.markdown);
  log(`wrote ${path.relative(process.cwd(), written.json)} and ${path.relative(process.cwd(), written.md)}`);
  return c.checks.every((x) => x.met) ? 0 : 1;
}

let plan: SoakPlan;
try {
  const parsed = parsePlan(process.argv.slice(2));
  if ('help' in parsed) {
    process.stdout.write(`${parsed.help}\n`);
    process.exit(0);
  }
  plan = parsed;
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n`);
  process.exit(2);
}

// Every loop is bounded; past this the harness stops everything it started and fails.
const deadlineMs = (plan.minutes + 15) * 60_000;
runBounded(() => main(plan), deadlineMs);
