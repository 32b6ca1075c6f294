import { enrollDevice, getCaCerts } from '@bulwark/device';
import { BulwarkError } from '@bulwark/protocol';
import { expectedOf, runAttack, type AttackContext, type AttackKind, type AttackReport } from './attacks.ts';
import type { PlannedDevice } from './registration.ts';
import { startSimDevice, type SimDevice, type SimDeviceEvent } from './sim-device.ts';

/*
 * The simulated fleet at run time: enroll the devices that need it (EST, against the running server), start
 * them a little apart, report progress, launch the attacks on their schedule, and stop everything cleanly at
 * the end of the duration or on a signal.
 */

export interface FleetOptions {
  readonly serverUrl: string;
  readonly mqttUrl: string;
  /** The CA chain the devices trust (PEM). */
  readonly ca: string;
  /** Where an attack keeps what it needs for a while (a cloned identity). */
  readonly scratchDir: string;
  readonly devices: readonly PlannedDevice[];
  readonly telemetryIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  readonly attacks: readonly AttackKind[];
  /** One attack this often, rotating through `attacks`; without it each runs once, one after the other. */
  readonly attackEveryMs?: number | undefined;
  /** Stop after this long; without it, only a signal stops the fleet. */
  readonly durationMs?: number | undefined;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  /** One line of progress (stderr). */
  readonly log: (line: string) => void;
}

export interface FleetSummary {
  readonly devices: number;
  /** Enrolled over EST by this run. */
  readonly enrolled: number;
  /** Ran on the identity kept from an earlier run. */
  readonly reused: number;
  /** Devices that connected at least once. */
  readonly connected: number;
  /** Telemetry messages the broker acknowledged. */
  readonly telemetry: number;
  readonly attacks: (AttackReport & { readonly expect: string })[];
  readonly stoppedBy: 'duration' | 'signal';
}

/** Devices start this far apart: 20 a second, the broker's default connection rate per address. */
const START_SPACING_MS = 50;
const ENROLL_CONCURRENCY = 4;
/** Attacks wait for the whole fleet to be connected, at most this long. */
const READY_WAIT_MS = 30_000;
const STATUS_EVERY_MS = 60_000;
/** A session shorter than this counts as closed by the broker at once (a quarantine or a ban). */
const CUT_OFF_MS = 10_000;
/** Distinct device errors printed as they come; beyond, only counted in the status line. */
const ERRORS_SHOWN = 5;

/** A BulwarkError's message, or any other error's own (not "internal error": this is a client). */
const messageOf = (err: unknown) =>
  err instanceof BulwarkError ? err.message : err instanceof Error ? err.message : String(err);

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

/** Who is online, what went wrong, and the progress lines about it. */
function createTracker(total: number, log: (line: string) => void) {
  const online = new Set<string>();
  const ever = new Set<string>();
  /** Connected, or failed a first attempt (a device banned or revoked never connects). */
  const settled = new Set<string>();
  const errors = new Map<string, string>();
  /** Devices whose last session ended right after it began: the broker closes them (quarantined, banned). */
  const cutOff = new Set<string>();
  const shown = new Set<string>();
  let allAnnounced = false;
  return {
    online,
    ever,
    settled,
    onEvent: (event: SimDeviceEvent) => {
      settled.add(event.deviceId);
      if (event.type === 'connected') {
        online.add(event.deviceId);
        ever.add(event.deviceId);
        errors.delete(event.deviceId);
        if (!allAnnounced && ever.size === total) {
          allAnnounced = true;
          log(`connected ${total}/${total} devices over MQTT with mutual TLS`);
        }
      } else if (event.type === 'disconnected') {
        online.delete(event.deviceId);
        if (event.sessionMs < CUT_OFF_MS) cutOff.add(event.deviceId);
        else cutOff.delete(event.deviceId);
      } else {
        errors.set(event.deviceId, event.error.message);
        if (shown.size < ERRORS_SHOWN && !shown.has(event.error.message)) {
          shown.add(event.error.message);
          log(`${event.deviceId}: ${event.error.message}`);
        }
      }
    },
    status: (telemetry: number): string => {
      const failing =
        errors.size > 0 ? `, ${errors.size} failing to connect (${[...errors.values()].at(-1)})` : '';
      const closed =
        cutOff.size > 0
          ? `, ${cutOff.size} closed by the broker right after connecting (quarantined or banned: ${[...cutOff].slice(0, 5).join(', ')}${cutOff.size > 5 ? ', …' : ''})`
          : '';
      return `${online.size}/${total} online, ${telemetry} telemetry messages acknowledged${closed}${failing}`;
    },
  };
}
type Tracker = ReturnType<typeof createTracker>;

/** EST enrollment of the devices that were given a token; a device that fails is left out, with its reason. */
async function enrollAll(o: FleetOptions): Promise<PlannedDevice[]> {
  const queue = o.devices.filter((d) => d.token !== undefined);
  if (queue.length === 0) return [...o.devices];
  const failed = new Map<string, string>();
  let enrolled = 0;
  const worker = async () => {
    for (let d = queue.shift(); d && !o.signal.aborted; d = queue.shift()) {
      try {
        await enrollDevice({
          serverUrl: o.serverUrl,
          deviceId: d.id,
          token: d.token ?? '',
          dir: d.dir,
          ca: o.ca,
          mqttUrl: o.mqttUrl,
          force: true,
        });
        enrolled++;
      } catch (err) {
        failed.set(d.id, messageOf(err));
      }
    }
  };
  const total = queue.length;
  await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, worker));
  if (enrolled === 0 && failed.size > 0) {
    const [, reason] = [...failed][0] ?? [];
    throw new BulwarkError(
      'unavailable',
      `no device could enroll at ${o.serverUrl} (${reason ?? 'unknown'}): is the server running (bulwark serve), and is --url right?`,
    );
  }
  o.log(`enrolled ${enrolled}/${total} devices over EST${failed.size ? `, ${failed.size} failed` : ''}`);
  for (const [id, reason] of [...failed].slice(0, ERRORS_SHOWN)) o.log(`  ${id}: ${reason}`);
  return o.devices.filter((d) => !failed.has(d.id));
}

function deviceStarter(o: FleetOptions, tracker: Tracker) {
  return (dir: string, model: PlannedDevice['model'], onEvent = tracker.onEvent) =>
    startSimDevice({
      dir,
      mqttUrl: o.mqttUrl,
      model,
      telemetryIntervalMs: o.telemetryIntervalMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      onEvent,
    });
}

async function startAll(
  o: FleetOptions,
  devices: readonly PlannedDevice[],
  start: ReturnType<typeof deviceStarter>,
): Promise<SimDevice[]> {
  const running: SimDevice[] = [];
  for (const d of devices) {
    if (o.signal.aborted) break;
    running.push(await start(d.dir, d.model));
    await sleep(START_SPACING_MS, o.signal);
  }
  return running;
}

interface Schedule {
  readonly o: FleetOptions;
  readonly running: readonly SimDevice[];
  readonly tracker: Tracker;
  readonly start: ReturnType<typeof deviceStarter>;
  readonly signal: AbortSignal;
  readonly reports: FleetSummary['attacks'];
}

/** The next connected device not attacked yet in this run (any connected one once all were). */
function pickVictim(s: Schedule, attacked: Set<string>): SimDevice | undefined {
  const connected = s.running.filter((d) => d.connected);
  return connected.find((d) => !attacked.has(d.deviceId)) ?? connected[0];
}

async function launch(s: Schedule, kind: AttackKind, attacked: Set<string>): Promise<void> {
  const victim = pickVictim(s, attacked);
  if (!victim) {
    s.o.log(`attack ${kind}: skipped, no device is connected`);
    return;
  }
  if (kind !== 'guess') attacked.add(victim.deviceId);
  const expect = expectedOf(kind);
  s.o.log(`attack ${kind}${kind === 'guess' ? '' : ` from ${victim.deviceId}`}: expect ${expect}`);
  const ctx: AttackContext = {
    victim,
    fleetIds: s.running.map((d) => d.deviceId),
    serverUrl: s.o.serverUrl,
    ca: s.o.ca,
    scratchDir: s.o.scratchDir,
    startDevice: (dir, like) => s.start(dir, like.model, () => undefined),
    signal: s.signal,
  };
  try {
    const report = await runAttack(kind, ctx);
    s.reports.push({ ...report, expect });
    s.o.log(`attack ${kind}${report.device ? ` from ${report.device}` : ''}: ${report.done}`);
  } catch (err) {
    s.o.log(`attack ${kind} failed: ${messageOf(err)}`);
  }
}

/** Waits for the fleet, then runs the attacks: each once in turn, or one every `attackEveryMs`, rotating. */
async function runSchedule(s: Schedule): Promise<void> {
  const { o, signal } = s;
  if (o.attacks.length === 0) return;
  const readyBy = Date.now() + READY_WAIT_MS;
  while (!signal.aborted && s.tracker.settled.size < s.running.length && Date.now() < readyBy)
    await sleep(100, signal);
  // A device quarantined before this run is not attacked again while others are left.
  const attacked = new Set(o.devices.filter((d) => d.quarantined).map((d) => d.id));
  for (let i = 0; !signal.aborted; i++) {
    if (o.attackEveryMs === undefined && i >= o.attacks.length) return;
    const kind = o.attacks[i % o.attacks.length];
    if (kind === undefined) return;
    const started = Date.now();
    await launch(s, kind, attacked);
    if (o.attackEveryMs !== undefined) await sleep(o.attackEveryMs - (Date.now() - started), signal);
  }
}

/** Resolves at the end of the duration, or when the signal aborts; says which. */
function untilDone(o: FleetOptions): { done: Promise<'duration' | 'signal'>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const done = new Promise<'duration' | 'signal'>((resolve) => {
    if (o.signal.aborted) return resolve('signal');
    onAbort = () => resolve('signal');
    o.signal.addEventListener('abort', onAbort, { once: true });
    if (o.durationMs !== undefined) timer = setTimeout(() => resolve('duration'), o.durationMs);
  });
  return {
    done,
    cancel() {
      clearTimeout(timer);
      if (onAbort) o.signal.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Checks, before anything is registered, that the server answers at `serverUrl` with a certificate of this
 * data directory's CA (EST cacerts, verified with `ca`): a server that is down, or another installation's.
 */
export async function reachServer(serverUrl: string, ca: string): Promise<void> {
  try {
    await getCaCerts(serverUrl, ca, { timeoutMs: 10_000 });
  } catch (err) {
    throw new BulwarkError(
      'unavailable',
      `cannot reach the server of this data directory at ${serverUrl} (${messageOf(err)}): is it running (bulwark serve), and is --url right?`,
    );
  }
}

/** Enrolls, runs and stops the simulated fleet; see {@link FleetOptions}. */
export async function runFleet(o: FleetOptions): Promise<FleetSummary> {
  const ready = await enrollAll(o);
  const tracker = createTracker(ready.length, o.log);
  const start = deviceStarter(o, tracker);
  const until = untilDone(o);
  const stop = new AbortController();
  const reports: FleetSummary['attacks'] = [];
  const running = await startAll(o, ready, start);
  o.log(`started ${running.length} devices; telemetry every ${o.telemetryIntervalMs / 1000} s each`);
  const sent = () => running.reduce((n, d) => n + d.telemetrySent, 0);
  const status = setInterval(() => o.log(tracker.status(sent())), STATUS_EVERY_MS);
  const attacking = runSchedule({ o, running, tracker, start, signal: stop.signal, reports });
  const stoppedBy = await until.done;
  until.cancel();
  clearInterval(status);
  o.log(`stopping (${stoppedBy === 'signal' ? 'signal' : 'end of --duration'}): ${tracker.status(sent())}`);
  stop.abort();
  await attacking;
  await Promise.all(running.map((d) => d.stop()));
  return {
    devices: running.length,
    enrolled: o.devices.filter((d) => d.token !== undefined && ready.includes(d)).length,
    reused: ready.filter((d) => d.token === undefined).length,
    connected: tracker.ever.size,
    telemetry: sent(),
    attacks: reports,
    stoppedBy,
  };
}
