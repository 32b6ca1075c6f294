import path from 'node:path';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import {
  attackKinds,
  parseAttackKinds,
  planFleet,
  reachServer,
  runFleet,
  type AttackKind,
  type FleetPlan,
  type FleetSummary,
} from '../simulate/index.ts';
import { common, configFrom, intOption, printJson, withPlatform, type CommonOptions } from './context.ts';

interface SimulateOptions extends CommonOptions {
  devices: number;
  attack?: AttackKind[];
  attackEvery?: string;
  url?: string;
  mqtt?: string;
  state?: string;
  duration?: string;
  interval: string;
  prefix: string;
}

/** Enrollment tokens of a simulation: long enough for a slow start, short enough not to linger. */
const TOKEN_TTL_MS = 60 * 60_000;
const HEARTBEAT_INTERVAL_MS = 30_000;

function durationOption(name: string, text: string | undefined, min = 1000): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms < min)
    throw new BulwarkError(
      'validation_failed',
      `${name} "${text}" is not a duration of at least ${min / 1000} s, such as 20s, 10m or 2h`,
    );
  return ms;
}

/** The server's and the broker's URLs: given, or localhost on the configured ports. */
function endpointsOf(options: SimulateOptions) {
  const config = configFrom(options);
  const fallback = (scheme: string, port: number, flag: string) => {
    if (port === 0)
      throw new BulwarkError('validation_failed', `the configured port is 0 (ephemeral): give ${flag}`);
    return `${scheme}://localhost:${port}`;
  };
  return {
    serverUrl: options.url ?? fallback('https', config.https.port, '--url'),
    mqttUrl: options.mqtt ?? fallback('mqtts', config.mqtt.port, '--mqtt'),
    stateDir: path.resolve(options.state ?? path.join(config.dataDir, 'simulator')),
  };
}

/** `[14:03:27] line` on stderr: the progress of a run that may last hours. */
function log(line: string): void {
  process.stderr.write(`[${new Date().toTimeString().slice(0, 8)}] ${line}\n`);
}

function describePlan(plan: FleetPlan): void {
  const enrolling = plan.devices.filter((d) => d.token !== undefined).length;
  const reusing = plan.devices.length - enrolling;
  log(
    `registered ${plan.devices.length} devices: ${plan.added} added, ${reusing} with the identity kept from an earlier run, ${enrolling} to enroll`,
  );
  for (const s of plan.skipped) log(`  ${s.id} does not run: ${s.reason}`);
  const held = plan.devices.filter((d) => d.quarantined).map((d) => d.id);
  if (held.length > 0)
    log(
      `  quarantined: ${held.join(', ')} (the broker refuses their data until released: bulwark device release ID)`,
    );
}

function printSummary(summary: FleetSummary, json: boolean | undefined): void {
  if (json) return printJson(summary);
  const lines = [
    `devices    ${summary.devices} (${summary.enrolled} enrolled now, ${summary.reused} reused), ${summary.connected} connected`,
    `telemetry  ${summary.telemetry} messages acknowledged`,
    ...summary.attacks.map(
      (a) => `attack     ${a.kind}${a.device ? ` from ${a.device}` : ''}: ${a.done}; expect ${a.expect}`,
    ),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

/** Runs until the fleet stops; SIGINT and SIGTERM stop it cleanly (devices send DISCONNECT). */
async function simulate(options: SimulateOptions): Promise<void> {
  const durationMs = durationOption('--duration', options.duration);
  const attackEveryMs = durationOption('--attack-every', options.attackEvery, 10_000);
  const telemetryIntervalMs = durationOption('--interval', options.interval, 500) ?? 30_000;
  if (attackEveryMs !== undefined && !options.attack?.length)
    throw new BulwarkError('validation_failed', '--attack-every needs --attack (a kind, a list, or all)');
  const { serverUrl, mqttUrl, stateDir } = endpointsOf(options);
  const { plan, ca } = await withPlatform(options, async (p) => {
    const pki = await p.pki();
    await reachServer(serverUrl, pki.chainPem());
    const planned = await planFleet(
      { devices: p.devices, certificateStanding: (serial) => pki.certificateStanding(serial), now: p.now },
      { count: options.devices, prefix: options.prefix, stateDir, actor: 'cli', tokenTtlMs: TOKEN_TTL_MS },
    );
    return { plan: planned, ca: pki.chainPem() };
  });
  log(`simulating ${options.devices} devices against ${serverUrl} and ${mqttUrl}; their keys in ${stateDir}`);
  describePlan(plan);
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const summary = await runFleet({
      serverUrl,
      mqttUrl,
      ca,
      scratchDir: path.join(stateDir, '.scratch'),
      devices: plan.devices,
      telemetryIntervalMs,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      attacks: options.attack ?? [],
      attackEveryMs,
      durationMs,
      signal: abort.signal,
      log,
    });
    printSummary(summary, options.json);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export function simulateCommand(): Command {
  return common(
    new Command('simulate').description(
      'run simulated devices against a running server: enroll, connect, send telemetry, and attack (docs/demo.md)',
    ),
  )
    .option('--devices <n>', 'how many devices', intOption('--devices', 1, 1000), 10)
    .option(
      '--attack <kinds>',
      `attacks, comma-separated: ${attackKinds.join(', ')}, or all`,
      (value: string, previous: AttackKind[] = []) => [...new Set([...previous, ...parseAttackKinds(value)])],
    )
    .option('--attack-every <duration>', 'launch one attack this often, in turn (default: each once)')
    .option('--url <url>', 'the server, for EST enrollment (default https://localhost:<https.port>)')
    .option('--mqtt <url>', 'the broker (default mqtts://localhost:<mqtt.port>)')
    .option(
      '--state <dir>',
      "the devices' keys and certificates, kept for the next run (default <data>/simulator)",
    )
    .option('--duration <duration>', 'stop after this long, e.g. 20s, 10m (default: until Ctrl-C)')
    .option('--interval <duration>', 'telemetry interval of each device', '30s')
    .option('--prefix <prefix>', 'device ids are <prefix>-0001, <prefix>-0002, …', 'sim')
    .action(simulate);
}
