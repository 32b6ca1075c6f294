import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CompactSign } from 'jose';
import mqtt, { type MqttClient } from 'mqtt';
import {
  BulwarkError,
  geoLocationSchema,
  jwsAlgorithmFor,
  securityReportSchema,
  securityTopics,
  type GeoLocation,
  type HealthReport,
  type SecurityReport,
  type SignedReport,
  type TamperReason,
  type TamperReport,
} from '@bulwark/protocol';
import { writeFileAtomic } from './atomic-write.ts';
import { certificateInfo } from './certificate.ts';
import { openIdentityStore, type DeviceIdentity } from './identity-store.ts';
import { keyTypeOf, type KeyType } from './keys.ts';
import { defaultMqttUrl, parseMqttUrl } from './urls.ts';

/** The device key that signs a report and the certificate the server checks it with. */
export interface ReportSigner {
  /** PKCS#8 PEM private key (`key.pem`). */
  readonly keyPem: string;
  /** Serial of the certificate for that key: the JWS `kid`. */
  readonly certSerial: string;
  readonly keyType: KeyType;
}

/** The server's canonical serial form (lower-case hex, no leading zeros), so the `kid` matches its records. */
function canonicalSerial(serial: string): string {
  return serial
    .toLowerCase()
    .replace(/[^0-9a-f]/g, '')
    .replace(/^0+(?=.)/, '');
}

/** The signer for the identity's current key and certificate. */
export function signerOf(identity: Pick<DeviceIdentity, 'keyPem' | 'certPem'>): ReportSigner {
  return {
    keyPem: identity.keyPem,
    certSerial: certificateInfo(identity.certPem).serialNumber,
    keyType: keyTypeOf(identity.keyPem),
  };
}

/**
 * Signs a tamper or health report with the device key: a JWS in compact serialization (RFC 7515) with
 * protected header `{alg, kid: certificate serial}`, so nothing on the broker path can forge or alter it.
 *
 * @example
 * ```ts
 * const { jws } = await signSecurityReport(
 *   { kind: 'tamper', deviceId: 'pump-17', ts: Date.now(), seq: await sequence.next(), reason: 'enclosure-opened' },
 *   signerOf(identity),
 * );
 * ```
 */
export async function signSecurityReport(
  report: SecurityReport,
  signer: ReportSigner,
): Promise<SignedReport> {
  const payload = securityReportSchema.parse(report);
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: jwsAlgorithmFor[signer.keyType], kid: canonicalSerial(signer.certSerial) })
    .sign(createPrivateKey(signer.keyPem));
  return { jws };
}

/** The strictly increasing `seq` of a device's reports (the server refuses a seq it has seen: replay). */
export interface ReportSequence {
  next(): Promise<number>;
}

export const REPORT_SEQUENCE_FILE = 'security-seq.json';

async function readSeq(path: string): Promise<number> {
  try {
    const value: unknown = JSON.parse(await readFile(path, 'utf8'));
    const seq = typeof value === 'object' && value !== null && 'seq' in value ? value.seq : undefined;
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : -1;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return -1;
    if (err instanceof SyntaxError) return -1;
    throw err;
  }
}

/**
 * The report sequence kept in `dir/security-seq.json`, written (atomically) before a number is used. The next
 * number is the larger of last + 1 and the clock in epoch ms, so a device whose file is lost (a reflashed data
 * partition) still gets numbers the server has not seen, as long as its clock is right (which the server
 * checks anyway: a report's `ts` must be within 5 minutes of its clock).
 *
 * @example
 * ```ts
 * const sequence = openReportSequence('/var/lib/bulwark');
 * const seq = await sequence.next();
 * ```
 */
export function openReportSequence(dir: string, now: () => number = Date.now): ReportSequence {
  const path = join(dir, REPORT_SEQUENCE_FILE);
  let tail: Promise<unknown> = Promise.resolve();
  const take = async () => {
    const seq = Math.max((await readSeq(path)) + 1, Math.floor(now()));
    await writeFileAtomic(path, JSON.stringify({ seq }) + '\n', 0o600);
    return seq;
  };
  return {
    next() {
      const result = tail.then(take, take);
      tail = result.catch(() => undefined);
      return result;
    },
  };
}

/** What a device says in a tamper report. */
export interface TamperInput {
  readonly reason: TamperReason;
  readonly detail?: string | undefined;
  readonly location?: GeoLocation | undefined;
}

/** What a device says in a health report (absent fields are unknown). */
export type HealthInput = Omit<HealthReport, 'kind' | 'deviceId' | 'ts' | 'seq'>;

/** Where a report comes from: the identity that signs it and the sequence it takes its number from. */
export interface ReportContext {
  readonly identity: Pick<DeviceIdentity, 'deviceId' | 'keyPem' | 'certPem'>;
  readonly sequence: ReportSequence;
  readonly now?: (() => number) | undefined;
}

async function publishSigned(
  client: MqttClient,
  message: { topic: string; report: SecurityReport; context: ReportContext },
): Promise<void> {
  const signed = await signSecurityReport(message.report, signerOf(message.context.identity));
  await client.publishAsync(message.topic, JSON.stringify(signed), { qos: 1 });
}

/**
 * Signs and publishes a tamper report on `devices/{id}/security/tamper` (QoS 1: resolves at PUBACK).
 *
 * @example
 * ```ts
 * await reportTamper(client, { identity, sequence, reason: 'enclosure-opened', detail: 'lid switch' });
 * ```
 */
export async function reportTamper(
  client: MqttClient,
  input: ReportContext & TamperInput,
): Promise<TamperReport> {
  const { identity, sequence, now = Date.now } = input;
  const report: TamperReport = {
    kind: 'tamper' as const,
    deviceId: identity.deviceId,
    ts: Math.floor(now()),
    seq: await sequence.next(),
    reason: input.reason,
    detail: input.detail,
    location: input.location,
  };
  await publishSigned(client, { topic: securityTopics.tamper(identity.deviceId), report, context: input });
  return report;
}

/**
 * Signs and publishes a health report on `devices/{id}/security/health` (QoS 1: resolves at PUBACK).
 *
 * @example
 * ```ts
 * await reportHealth(client, { identity, sequence, health: { secureBoot: true, debugPortEnabled: false } });
 * ```
 */
export async function reportHealth(
  client: MqttClient,
  input: ReportContext & { readonly health: HealthInput },
): Promise<HealthReport> {
  const { identity, sequence, now = Date.now } = input;
  const report: HealthReport = {
    ...input.health,
    kind: 'health' as const,
    deviceId: identity.deviceId,
    ts: Math.floor(now()),
    seq: await sequence.next(),
  };
  await publishSigned(client, { topic: securityTopics.health(identity.deviceId), report, context: input });
  return report;
}

/** `on` / `off` (also true/false, yes/no, 1/0) for the CLI's health flags. */
export function parseOnOff(text: string): boolean {
  const value = text.trim().toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(value)) return true;
  if (['off', 'false', 'no', '0'].includes(value)) return false;
  throw new BulwarkError('validation_failed', `"${text}" is not on or off`);
}

/** A location from the CLI's `--lat`/`--lon`, which go together. */
export function locationOf(input: {
  lat?: number | undefined;
  lon?: number | undefined;
}): GeoLocation | undefined {
  if (input.lat === undefined && input.lon === undefined) return undefined;
  if (input.lat === undefined || input.lon === undefined)
    throw new BulwarkError('validation_failed', '--lat and --lon go together');
  const parsed = geoLocationSchema.safeParse({ lat: input.lat, lon: input.lon });
  if (!parsed.success)
    throw new BulwarkError(
      'validation_failed',
      'latitude must be within -90..90 and longitude within -180..180',
    );
  return parsed.data;
}

/** One line about a report sent, for the CLI. */
export function describeReport(report: SecurityReport): string {
  const what = report.kind === 'tamper' ? ` (${report.reason})` : '';
  return `sent ${report.kind} report${what} for ${report.deviceId}, seq ${report.seq}`;
}

/** The agent's hook for device code: reports over the agent's own connection. */
export interface SecurityReporter {
  /** Signs and publishes a tamper report; rejects when the agent is not connected. */
  readonly reportTamper: (
    reason: TamperReason,
    detail?: string,
    location?: GeoLocation,
  ) => Promise<TamperReport>;
  /** Signs and publishes a health report; rejects when the agent is not connected. */
  readonly reportHealth: (health: HealthInput) => Promise<HealthReport>;
}

export interface SecurityReporterDeps {
  readonly dir: string;
  readonly identity: () => DeviceIdentity;
  readonly client: () => MqttClient | undefined;
  readonly now: () => number;
}

export function createSecurityReporter(deps: SecurityReporterDeps): SecurityReporter {
  const sequence = openReportSequence(deps.dir, deps.now);
  const connected = (): MqttClient => {
    const client = deps.client();
    if (!client?.connected)
      throw new BulwarkError('unavailable', 'not connected to the broker: the report was not sent');
    return client;
  };
  return {
    reportTamper: async (reason, detail, location) =>
      reportTamper(connected(), {
        identity: deps.identity(),
        sequence,
        now: deps.now,
        reason,
        detail,
        location,
      }),
    reportHealth: async (health) =>
      reportHealth(connected(), { identity: deps.identity(), sequence, now: deps.now, health }),
  };
}

/** For `bulwark-agent report`: one report over a connection of its own. */
export interface SendReportOptions {
  readonly dir: string;
  readonly mqttUrl?: string | undefined;
  readonly timeoutMs?: number | undefined;
  readonly report: ({ kind: 'tamper' } & TamperInput) | { kind: 'health'; health: HealthInput };
}

/**
 * Connects with the device identity in `dir` (mutual TLS), publishes one signed report, waits for its
 * PUBACK and disconnects. The broker treats the connection like the agent's own (same client id).
 */
export async function sendSecurityReport(options: SendReportOptions): Promise<SecurityReport> {
  const identity = await openIdentityStore(options.dir).load();
  const url = parseMqttUrl(options.mqttUrl ?? identity.mqttUrl ?? defaultMqttUrl(identity.serverUrl));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    clientId: identity.deviceId,
    clean: true,
    key: identity.keyPem,
    cert: identity.certPem,
    ca: identity.caPem,
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
  });
  try {
    const context = { identity, sequence: openReportSequence(options.dir) };
    const { report } = options;
    const sent: Promise<SecurityReport> =
      report.kind === 'tamper'
        ? reportTamper(client, { ...context, ...report })
        : reportHealth(client, { ...context, health: report.health });
    return await untilClosedOrTimeout(client, sent, timeoutMs);
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

/** A refused publish may end in the broker closing the connection, with no PUBACK ever coming. */
function untilClosedOrTimeout<T>(client: MqttClient, work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onClose: (() => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    onClose = () => reject(new BulwarkError('unavailable', 'the broker closed the connection before PUBACK'));
    client.once('close', onClose);
    timer = setTimeout(
      () => reject(new BulwarkError('unavailable', `no PUBACK within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([work, failed]).finally(() => {
    clearTimeout(timer);
    if (onClose) client.off('close', onClose);
  });
}
