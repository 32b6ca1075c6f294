import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { createCsr, generateDeviceKey, simpleEnroll } from '@bulwark/device';
import { BulwarkError, commandTopics, firmwareTopics, topics, type FirmwareStatus } from '@bulwark/protocol';
import type { SimDevice } from './sim-device.ts';

/*
 * The attacks a simulation can run, each against the real server with real credentials and each aimed at a
 * detector the platform has (monitor/detectors/): what an operator should then see is in `expect`, and in
 * docs/demo.md.
 */

export const attackKinds = ['tamper', 'flood', 'scan', 'guess', 'clone', 'rogue-firmware'] as const;
export type AttackKind = (typeof attackKinds)[number];

/** What an attack may use: the device it is run from (or aimed at), the fleet, the server. */
export interface AttackContext {
  readonly victim: SimDevice;
  /** The ids of the simulated fleet (what an attacker reads off labels and topics). */
  readonly fleetIds: readonly string[];
  readonly serverUrl: string;
  /** The CA chain the devices trust (PEM). */
  readonly ca: string;
  /** Where a cloned identity is copied to (removed afterwards). */
  readonly scratchDir: string;
  /** Starts another device on an identity directory (the clone), like the fleet's own. */
  readonly startDevice: (dir: string, like: SimDevice) => Promise<SimDevice>;
  readonly signal: AbortSignal;
}

/** What was done, in one line, for the progress output. */
export interface AttackReport {
  readonly kind: AttackKind;
  /** The device the attack came from or was aimed at; null for guessing (it comes from the simulator's host). */
  readonly device: string | null;
  readonly done: string;
}

interface Attack {
  /** What the platform answers with, as docs/demo.md lists it. */
  readonly expect: string;
  readonly run: (ctx: AttackContext) => Promise<string>;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

function sessionOf(victim: SimDevice) {
  const client = victim.session();
  if (!client) throw new Error(`${victim.deviceId} is not connected`);
  return client;
}

/** The device signs a tamper report (JWS with its key): its enclosure was opened. */
async function tamper(ctx: AttackContext): Promise<string> {
  const report = await ctx.victim.reporter.reportTamper(
    'enclosure-opened',
    'simulated attack: the lid switch opened while the device was running',
  );
  return `signed tamper report (enclosure-opened, seq ${report.seq})`;
}

export const FLOOD_MESSAGES = 3000;

/** A compromised device publishes as fast as it can on its own telemetry topic, far over its quota. */
async function flood(ctx: AttackContext): Promise<string> {
  const client = sessionOf(ctx.victim);
  const topic = topics.telemetry(ctx.victim.deviceId);
  const payload = JSON.stringify({ ts: Date.now(), junk: 'x'.repeat(400) });
  let sent = 0;
  while (sent < FLOOD_MESSAGES && client.connected && !ctx.signal.aborted) {
    client.publish(topic, payload, { qos: 0 });
    // Let the socket's events through now and then (a disconnect ends the flood).
    if (++sent % 250 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return `${sent} messages of ${payload.length} bytes at once on ${topic}${client.connected ? '' : ' (the broker cut it off)'}`;
}

/** Filters outside the device's own subtree: other devices' data and commands, wildcards, broker internals. */
function scanFilters(ctx: AttackContext): string[] {
  const others = ctx.fleetIds.filter((id) => id !== ctx.victim.deviceId).slice(0, 3);
  return [
    '#',
    '$SYS/#',
    'devices/#',
    'devices/+/telemetry',
    'devices/+/commands/+',
    'devices/+/security/#',
    'devices/+/firmware/#',
    'apps/#',
    'gateway/+/config',
    ...others.flatMap((id) => [topics.telemetry(id), commandTopics.all(id)]),
    'devices/admin/#',
    'devices/gateway-01/#',
  ];
}

/** mqtt.js reports a SUBACK with a failure return code as an error carrying the SUBACK (or, before, its code). */
function isRefusal(err: Error): boolean {
  const e = err as Error & { code?: unknown; packet?: { granted?: unknown } };
  const granted = e.packet?.granted;
  if (Array.isArray(granted)) return granted.some((g) => typeof g === 'number' && (g & 0x80) !== 0);
  return e.code === 0x80;
}

/**
 * Subscribes to one filter; true when the broker refused it. [MQTT-3.9.3]: a refused filter gets return code
 * 0x80 in the SUBACK and the session stays up.
 */
function refusedSubscription(client: MqttClient, filter: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    client.subscribe(filter, { qos: 0 }, (err) => {
      if (!err) resolve(false);
      else if (isRefusal(err)) resolve(true);
      else reject(err);
    });
  });
}

/** A compromised device subscribes, one filter after another, to what is not its own. */
async function scan(ctx: AttackContext): Promise<string> {
  const client = sessionOf(ctx.victim);
  const filters = scanFilters(ctx);
  let refused = 0;
  for (const filter of filters) {
    if (ctx.signal.aborted || !client.connected) break;
    if (await refusedSubscription(client, filter)) refused++;
  }
  return `subscribed to ${filters.length} topic filters outside its own subtree, ${refused} refused`;
}

export const GUESSES = 8;

/** From one address, enrollment (EST simpleenroll) with made-up tokens for device ids of the fleet. */
async function guess(ctx: AttackContext): Promise<string> {
  const ids = [...ctx.fleetIds];
  for (let n = 1; ids.length < GUESSES; n++) ids.push(`sensor-${String(9000 + n)}`);
  const key = await generateDeviceKey('ec-p256');
  let refused = 0;
  for (const deviceId of ids.slice(0, GUESSES)) {
    if (ctx.signal.aborted) break;
    const csr = await createCsr(deviceId, key);
    const token = `bwk_${randomBytes(32).toString('base64url')}`;
    try {
      await simpleEnroll({ serverUrl: ctx.serverUrl, deviceId, token, csrDer: csr.der, ca: ctx.ca });
    } catch {
      refused++;
    }
  }
  return `${GUESSES} enrollments with made-up tokens, ${refused} refused`;
}

/** How long the clone runs before it is stopped. */
export const CLONE_MS = 45_000;
const IDENTITY_FILES = ['key.pem', 'cert.pem', 'ca.pem', 'identity.json'];

/** The device's key and certificate, copied off it, run a second device with the same identity. */
async function clone(ctx: AttackContext): Promise<string> {
  const dir = path.join(ctx.scratchDir, `clone-${ctx.victim.deviceId}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    for (const file of IDENTITY_FILES) await copyFile(path.join(ctx.victim.dir, file), path.join(dir, file));
    const started = Date.now();
    const twin = await ctx.startDevice(dir, ctx.victim);
    await sleep(CLONE_MS, ctx.signal);
    await twin.stop();
    return `ran a second device with its key and certificate for ${Math.round((Date.now() - started) / 1000)} s`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A version below `version` for the rogue image (`2.3.1` → `2.2.0`, anything else → `0.9.0`). */
export function olderVersion(version: string | null): string {
  const m = /^(\d+)\.(\d+)\.\d+/.exec(version ?? '');
  if (!m) return '0.9.0';
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return minor > 0 ? `${major}.${minor - 1}.0` : major > 0 ? `${major - 1}.9.0` : '0.0.1';
}

/**
 * An older image, with a known hole, is pushed to the device (a downgrade: the usual way to bring a
 * patched vulnerability back). Its updater's anti-rollback check refuses an image whose security version
 * is below the installed one and reports the refusal on `devices/{id}/firmware/status`, as the SDK's
 * updater does (firmware-updater.ts); the platform records `firmware.update_failed`.
 */
async function rogueFirmware(ctx: AttackContext): Promise<string> {
  const client = sessionOf(ctx.victim);
  const installed = await ctx.victim.installed();
  const { hardwareId } = ctx.victim.model;
  const version = olderVersion(installed.version);
  const securityVersion = Math.max(0, installed.securityVersion - 2);
  const floor = Math.max(installed.securityVersion, installed.securityFloor);
  const target = `${hardwareId}-fw/${version}/${hardwareId}-fw-${version}.bin`;
  const status = (step: FirmwareStatus['step'], extra: Partial<FirmwareStatus> = {}): string =>
    JSON.stringify({ step, target, ts: Date.now(), ...extra } satisfies FirmwareStatus);
  const topic = firmwareTopics.status(ctx.victim.deviceId);
  await client.publishAsync(topic, status('available'), { qos: 1 });
  await client.publishAsync(
    topic,
    status('failed', {
      reason: 'security_version_lower',
      detail: `${target} has security version ${securityVersion}, lower than the installed ${floor}`,
    }),
    { qos: 1 },
  );
  return `was offered ${target} (security version ${securityVersion}, installed ${floor}) and refused it`;
}

const attacks: Record<AttackKind, Attack> = {
  tamper: {
    expect: 'alert tamper_report; the default profile quarantines the device',
    run: tamper,
  },
  flood: {
    expect:
      'the broker throttles then disconnects it; alert payload_flood; the default profile quarantines the device',
    run: flood,
  },
  scan: { expect: 'alert topic_scan', run: scan },
  guess: { expect: 'alert guessing for the source address', run: guess },
  clone: {
    expect: 'alert cloned_identity; the broker bans the identity for firewall.banDuration (10 min)',
    run: clone,
  },
  'rogue-firmware': { expect: 'alert firmware_downgrade', run: rogueFirmware },
};

/** What the platform should answer an attack with. */
export const expectedOf = (kind: AttackKind): string => attacks[kind].expect;

/** Runs one attack; resolves when it is over (the clone runs for {@link CLONE_MS}). */
export async function runAttack(kind: AttackKind, ctx: AttackContext): Promise<AttackReport> {
  const done = await attacks[kind].run(ctx);
  return { kind, device: kind === 'guess' ? null : ctx.victim.deviceId, done };
}

const isAttackKind = (text: string): text is AttackKind => (attackKinds as readonly string[]).includes(text);

/** `tamper,scan` or `all` → the kinds, in the order given (`all`: the order of {@link attackKinds}). */
export function parseAttackKinds(text: string): AttackKind[] {
  const out: AttackKind[] = [];
  for (const part of text.split(',').map((p) => p.trim().toLowerCase())) {
    if (part === '') continue;
    if (part === 'all') out.push(...attackKinds);
    else if (isAttackKind(part)) out.push(part);
    else
      throw new BulwarkError(
        'validation_failed',
        `unknown attack "${part}": one of ${attackKinds.join(', ')}, or all`,
      );
  }
  return [...new Set(out)];
}
