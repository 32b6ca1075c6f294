import os from 'node:os';
import { parseArgs } from 'node:util';
import { systemNames, type SystemName } from './systems.ts';

export const scenarioNames = [
  'storm',
  'throughput',
  'latency',
  'single',
  'observer',
  'fanout',
  'memory',
  'soak',
  'noisy',
  'detection',
  'policy',
  'audit',
  'cli',
  'profile',
  'privacy',
] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/** Everything a run does, sized by mode; every loop in the bench is bounded by these counts and times. */
export interface Plan {
  mode: 'quick' | 'full';
  systems: SystemName[];
  scenarios: ScenarioName[];
  /** Rounds over the systems, alternating their order (A B C, C B A, …) so drift cancels in the median. */
  rounds: number;
  loadgens: number;
  /** Devices in the connection storm, the throughput and latency scenarios and the soak. */
  fleet: number;
  stormConcurrency: number;
  payloadSize: number;
  /** Messages each device keeps in flight in the throughput scenario. */
  window: number;
  throughput: { warmupMs: number; durationMs: number; drainMs: number };
  latency: { loadFraction: number; warmupMs: number; durationMs: number; drainMs: number };
  /**
   * Fan-out (2c): `publishers` devices (the first of the fleet) publish to their own topic, and `subscribers`
   * instances of the observer identity subscribe to each of those topics. A device keeps `window` messages
   * in flight (a message is in flight until every subscriber has it) and sends at most one every
   * `minIntervalMs`, under Bulwark's default per-device publish quota of 100/s (its firewall would otherwise,
   * rightly, throttle it); the throughput windows are `throughput`'s.
   */
  fanout: { publishers: number; subscribers: number; window: number; minIntervalMs: number };
  /**
   * One message in flight; `minIntervalMs` keeps the pinging device under 100 messages/s, Bulwark's
   * default per-device publish quota (its firewall would otherwise throttle it, and rightly so).
   */
  single: { count: number; warmup: number; maxMs: number; minIntervalMs: number };
  memoryConnections: number;
  soak: {
    floodPerDevice: number;
    floodMaxMs: number;
    qos1PerDevice: number;
    qos1Window: number;
    qos1MaxMs: number;
    drainMs: number;
    /** How long to keep probing for the broker to serve a new device again after the soak. */
    recoveryMaxMs: number;
  };
  /**
   * The noisy neighbour: `devices` well-behaved devices (the first of the fleet) publish QoS 1 at
   * `ratePerDevice` each, quiet for `quietMs` (after `warmupMs`), then for `floodMs` while one more device
   * floods; `flood` shapes the flooder's traffic (QoS 1, payload bytes, unacknowledged window, batch).
   */
  noisy: {
    devices: number;
    ratePerDevice: number;
    payloadSize: number;
    warmupMs: number;
    quietMs: number;
    floodMs: number;
    drainMs: number;
    flood: { payloadSize: number; window: number; batch: number; subscribe: boolean };
  };
  /**
   * Detection latency (Bulwark only): `offenders` devices, one after the other, each publish QoS 1 to their
   * own topic at `ratePerSec` until the monitor's `burst` behaviour (messages_sent gt `threshold` in
   * `window`) trips on message threshold + 1, then one message every `afterIntervalMs` until the broker
   * cuts them off (or `maxMs` after the offending message: counted as missed). Meanwhile the fleet stays
   * connected and publishes QoS 1 at `fleetRatePerDevice` each, from `warmupMs` before the first offender.
   */
  detection: {
    offenders: number;
    /** With the `profile` scenario: this many more offenders afterwards, with Bulwark's CPU profiler on. */
    profiled: number;
    threshold: number;
    window: string;
    ratePerSec: number;
    afterIntervalMs: number;
    maxMs: number;
    pauseMs: number;
    fleetRatePerDevice: number;
    warmupMs: number;
  };
  policy: { statements: number[]; decisions: number; maxMs: number };
  audit: { singleAppends: number; batchedEvents: number; verifyEntries: number };
  /** CLI start-up: each command is spawned this many times (after one warm-up run) for its median and p95. */
  cli: { runs: number };
  /**
   * Quick runs measure idle memory on the fleet right after the storm and soak that same fleet at the end
   * of its round, instead of reconnecting fresh brokers for each (which a full run does).
   */
  inline: boolean;
  /** Hard limit for the whole run; past it the harness stops everything and fails. */
  deadlineMs: number;
  freshFixture: boolean;
  outDir: string;
  /** Before each system's turn, wait up to this long for other processes to leave the machine idle. */
  waitQuietMs: number;
}

const usage = `npm run bench -- [--quick] [options]

  --quick                 short run (< 3 min): 1 round, shorter windows, 1,000 idle connections
  --systems LIST          bulwark,aedes,mosquitto (default: all three)
  --only LIST             ${scenarioNames.join(',')}
  --rounds N              rounds over the systems (default: quick 1, full 3)
  --loadgens N            load generator processes (default: cores - 1, at least 1)
  --fresh-fixture         re-enroll the device fleet instead of reusing the cached one
  --wait-quiet SECONDS    before each system's turn, wait up to this long for a quiet machine (default 0)
  --out DIR               where results go (default: bench/results)
  --help`;

function list<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  what: string,
): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T))
      throw new Error(`unknown ${what} "${item}" (choose from ${allowed.join(', ')})`);
  }
  return items as T[];
}

function positive(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

export function parsePlan(argv: string[]): Plan | { help: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      systems: { type: 'string' },
      only: { type: 'string' },
      rounds: { type: 'string' },
      loadgens: { type: 'string' },
      'fresh-fixture': { type: 'boolean', default: false },
      'wait-quiet': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return { help: usage };
  const quick = values.quick;
  // 100 devices at 10 QoS 1 messages/s each (a tenth of Bulwark's default per-device quota), and one that
  // floods 1 KiB QoS 1 messages as fast as its connection takes them. Bulwark's firewall runs with its
  // defaults: 100 messages/s, burst 200, 5 throttles within a minute, then the device is disconnected.
  const noisy = (phases: { warmupMs: number; quietMs: number; floodMs: number; drainMs: number }) => ({
    devices: 100,
    ratePerDevice: 10,
    payloadSize: 64,
    ...phases,
    flood: { payloadSize: 1024, window: 1000, batch: 32, subscribe: true },
  });
  // A group of offenders under a profile with a 'burst' behaviour (100 messages within 10 s, well under the
  // firewall's burst of 200 at 300 messages/s, so the monitor and not the firewall catches them) and an
  // automatic quarantine. The fleet publishes calmly around them: 1 QoS 1 message per device per second.
  const detection = (offenders: number) => ({
    offenders,
    profiled: 5,
    threshold: 100,
    window: '10s',
    ratePerSec: 300,
    afterIntervalMs: 2,
    maxMs: 5000,
    pauseMs: 250,
    fleetRatePerDevice: 1,
    warmupMs: 1500,
  });
  // Each device at most 90 messages/s (under the default quota of 100/s), so 100 of them offer 9,090 messages/s:
  // 454,000 deliveries/s to 50 subscribers, 909,000 to 100. Each subscriber holds 100 subscriptions, one per
  // publisher: Bulwark's default per-client maximum (firewall.maxSubscriptions).
  const fanout = (subscribers: number) => ({ publishers: 100, subscribers, window: 1, minIntervalMs: 11 });
  const common = {
    systems: list(values.systems, systemNames, 'system') ?? [...systemNames],
    scenarios: list(values.only, scenarioNames, 'scenario') ?? [...scenarioNames],
    loadgens: positive(values.loadgens, 'loadgens') ?? Math.max(1, Math.min(4, os.cpus().length - 1)),
    fleet: 1000,
    stormConcurrency: 100,
    payloadSize: 64,
    window: 1,
    freshFixture: values['fresh-fixture'],
    waitQuietMs:
      (values['wait-quiet'] === undefined ? 0 : (positive(values['wait-quiet'], 'wait-quiet') ?? 0)) * 1000,
    outDir: values.out ?? new URL('../results/', import.meta.url).pathname,
  };
  if (quick) {
    return {
      ...common,
      mode: 'quick',
      inline: true,
      rounds: positive(values.rounds, 'rounds') ?? 1,
      // A smoke run: windows long enough for a figure, short enough that the three systems and the noisy
      // neighbour fit in three minutes on a busy two-core machine (a fresh fixture included).
      throughput: { warmupMs: 500, durationMs: 2000, drainMs: 3000 },
      latency: { loadFraction: 0.5, warmupMs: 500, durationMs: 2000, drainMs: 3000 },
      single: { count: 200, warmup: 10, maxMs: 2500, minIntervalMs: 11 },
      fanout: fanout(50),
      // Measured on the fleet itself, right after the connection storm on a fresh broker.
      memoryConnections: 1000,
      soak: {
        floodPerDevice: 50,
        floodMaxMs: 2000,
        qos1PerDevice: 10,
        qos1Window: 10,
        qos1MaxMs: 3000,
        drainMs: 3000,
        recoveryMaxMs: 10_000,
      },
      noisy: noisy({ warmupMs: 500, quietMs: 2500, floodMs: 2500, drainMs: 3000 }),
      detection: detection(5),
      policy: { statements: [10, 1000, 100_000], decisions: 1_000_000, maxMs: 500 },
      audit: { singleAppends: 200, batchedEvents: 20_000, verifyEntries: 100_000 },
      cli: { runs: 10 },
      deadlineMs: 6 * 60_000,
      scenarios: common.scenarios.filter((s) => (values.only ? true : s !== 'profile' && s !== 'privacy')),
    };
  }
  return {
    ...common,
    mode: 'full',
    inline: false,
    rounds: positive(values.rounds, 'rounds') ?? 3,
    throughput: { warmupMs: 1000, durationMs: 5000, drainMs: 5000 },
    latency: { loadFraction: 0.5, warmupMs: 1000, durationMs: 5000, drainMs: 5000 },
    single: { count: 1000, warmup: 20, maxMs: 12_000, minIntervalMs: 11 },
    fanout: fanout(100),
    memoryConnections: 10_000,
    soak: {
      // Under Bulwark's default per-device burst (200): the soak is about the broker's queues, not its firewall.
      floodPerDevice: 180,
      floodMaxMs: 10_000,
      qos1PerDevice: 30,
      qos1Window: 10,
      qos1MaxMs: 15_000,
      drainMs: 15_000,
      recoveryMaxMs: 45_000,
    },
    noisy: noisy({ warmupMs: 1000, quietMs: 5000, floodMs: 5000, drainMs: 5000 }),
    detection: detection(20),
    policy: { statements: [10, 1000, 100_000], decisions: 5_000_000, maxMs: 1500 },
    audit: { singleAppends: 500, batchedEvents: 100_000, verifyEntries: 1_000_000 },
    cli: { runs: 30 },
    deadlineMs: 30 * 60_000,
  };
}

/**
 * Fixture positions: the fleet first, then the single-message pinger, the observer, the devices that
 * probe a broker after the soak (one after the other, so none reconnects often enough to count as
 * flapping for Bulwark's firewall), the noisy neighbour's flooder (a device that never published
 * before, so it starts with a full burst allowance), and the detection scenario's offenders (devices the
 * broker has never seen: their behaviour window opens when they connect, so a burst right after the
 * connection never straddles two windows). The fan-out scenario's subscribers are no devices: they come
 * from the source addresses of the positions right after the fixture, one each (`fixtureSize(plan) + n`).
 */
export const pingerIndex = (plan: Plan) => plan.fleet;
export const observerIndex = (plan: Plan) => plan.fleet + 1;
export const PROBES = 50;
export const probeIndex = (plan: Plan, attempt: number) => plan.fleet + 2 + (attempt % PROBES);
export const flooderIndex = (plan: Plan) => plan.fleet + 2 + PROBES;
export const offenderIndex = (plan: Plan, k: number) => flooderIndex(plan) + 1 + k;
export const fixtureSize = (plan: Plan) =>
  Math.max(offenderIndex(plan, plan.detection.offenders + plan.detection.profiled), plan.memoryConnections);
