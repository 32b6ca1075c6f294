import { createPublicKey } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import {
  SECURITY_REPORT_MAX_SKEW_MS,
  securityReportSchema,
  type HealthReport,
  type SecurityReport,
} from '@bulwark/protocol';
import type { IngressHandler } from '../broker/index.ts';
import { actorOf, createEventRateLimit, subjectOf, type EventBus, type TxEmit } from '../events/index.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../store/index.ts';
import * as store from './attestation.store.ts';

/**
 * Signed tamper and health reports (docs/physical-security.md): the device signs each report with its
 * device key as a JWS (RFC 7515, compact serialization) so nothing on the broker path can forge one. A report
 * is accepted only when its signature verifies with the device's own unrevoked certificate, it is the
 * session's device and the topic's kind, recent, and newer than the last one (seq); anything else is refused
 * with an event (at most 20 a minute per device) and counted.
 */

export type ReportKind = 'tamper' | 'health';

/** The JWS algorithms of device keys (protocol jwsAlgorithmFor); nothing else is accepted (no `none`). */
const ALGORITHMS = ['ES256', 'ES384', 'RS256'];

export interface ReportsDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  now: () => number;
  logger: Pick<Logger, 'warn' | 'error'>;
  settings: { maxSpeedKmh: number };
  /** pki door: the device's certificate by serial, with its public key (PEM) and standing. */
  certificateForReport(
    deviceId: string,
    serial: string,
  ): Promise<{ publicKeyPem: string; revoked: boolean; deviceId: string | null } | undefined>;
}

export interface SecurityReportRecord {
  id: string;
  deviceId: string;
  kind: ReportKind;
  reasons: string[];
  reportedAt: number;
  receivedAt: number;
  seq: number;
  report: Record<string, unknown>;
}

export interface SecurityReports {
  handlers: { tamper: IngressHandler<'tamper'>; health: IngressHandler<'health'> };
  list(q: {
    device?: string | undefined;
    kind?: ReportKind | undefined;
    limit: number;
  }): Promise<SecurityReportRecord[]>;
  /** Reports refused since start. */
  rejectedCount(): number;
}

type Checked = { ok: true; report: SecurityReport; keyId: string } | { ok: false; reason: string };

const refused = (reason: string): Checked => ({ ok: false, reason });

/** The certificate named by the header's kid: the device's own and unrevoked, or why not. */
async function keyFor(
  deps: Pick<ReportsDeps, 'certificateForReport'>,
  deviceId: string,
  jws: string,
): Promise<{ reason: string } | { keyId: string; pem: string }> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    return { reason: 'not a JWS' };
  }
  if (typeof header.alg !== 'string' || !ALGORITHMS.includes(header.alg))
    return { reason: `algorithm ${String(header.alg)} is not allowed` };
  if (typeof header.kid !== 'string' || header.kid === '')
    return { reason: 'no kid (certificate serial) in the header' };
  const cert = await deps.certificateForReport(deviceId, header.kid);
  if (!cert) return { reason: `unknown key ${header.kid}` };
  if (cert.deviceId !== deviceId) return { reason: `certificate ${header.kid} is not this device's` };
  if (cert.revoked) return { reason: `certificate ${header.kid} is revoked` };
  return { keyId: header.kid, pem: cert.publicKeyPem };
}

function parsePayload(bytes: Uint8Array): SecurityReport | string {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'payload is not JSON';
  }
  const parsed = securityReportSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return `payload: ${issues.join('; ')}`;
}

/** Every check but the seq (done in the transaction, against the stored state). */
export async function checkReport(
  deps: Pick<ReportsDeps, 'certificateForReport' | 'now'>,
  input: { deviceId: string; kind: ReportKind; jws: string },
): Promise<Checked> {
  const key = await keyFor(deps, input.deviceId, input.jws);
  if ('reason' in key) return refused(key.reason);
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(input.jws, createPublicKey(key.pem), { algorithms: ALGORITHMS }));
  } catch {
    return refused('bad signature');
  }
  const report = parsePayload(payload);
  if (typeof report === 'string') return refused(report);
  if (report.deviceId !== input.deviceId)
    return refused(`report of device ${report.deviceId} sent by ${input.deviceId}`);
  if (report.kind !== input.kind) return refused(`a ${report.kind} report on the ${input.kind} topic`);
  if (Math.abs(report.ts - deps.now()) > SECURITY_REPORT_MAX_SKEW_MS)
    return refused(
      `stale: ts ${report.ts} is more than ${SECURITY_REPORT_MAX_SKEW_MS} ms from the server's clock`,
    );
  return { ok: true, report, keyId: key.keyId };
}

// --- what a report changes -------------------------------------------------------------------------

type HealthState = Pick<
  HealthReport,
  'secureBoot' | 'debugPortEnabled' | 'enclosureClosed' | 'bootCount' | 'lastBootReason'
>;

/** Health fields whose bad value is a tamper finding, and its reason. */
const badHealth = [
  { field: 'secureBoot', bad: false, reason: 'secure-boot-disabled' },
  { field: 'debugPortEnabled', bad: true, reason: 'debug-port-enabled' },
  { field: 'enclosureClosed', bad: false, reason: 'enclosure-opened' },
] as const;

/** The bad states this report turned on (a field absent is unknown and changes nothing). */
export function healthChanges(prev: HealthState, report: HealthReport): string[] {
  return badHealth
    .filter(({ field, bad }) => report[field] === bad && prev[field] !== bad)
    .map((b) => b.reason);
}

function mergeHealth(prev: HealthState, report: HealthReport): HealthState {
  const next: HealthState = { ...prev };
  if (report.secureBoot !== undefined) next.secureBoot = report.secureBoot;
  if (report.debugPortEnabled !== undefined) next.debugPortEnabled = report.debugPortEnabled;
  if (report.enclosureClosed !== undefined) next.enclosureClosed = report.enclosureClosed;
  if (report.bootCount !== undefined) next.bootCount = report.bootCount;
  if (report.lastBootReason !== undefined) next.lastBootReason = report.lastBootReason;
  return next;
}

const EARTH_RADIUS_KM = 6371.0088;

/** Great-circle distance (haversine) in km. */
export function distanceKm(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const rad = (d: number) => (d * Math.PI) / 180;
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** A move faster than maxSpeedKmh between the stored location and this one (at least a second apart). */
export function locationJump(
  from: { lat: number; lon: number; at: number },
  to: { lat: number; lon: number; at: number },
  maxSpeedKmh: number,
) {
  const km = distanceKm(from, to);
  const hours = Math.max(Math.abs(to.at - from.at), 1000) / 3_600_000;
  const speed = km / hours;
  if (speed <= maxSpeedKmh) return undefined;
  return { from, to, distanceKm: round(km), speedKmh: round(speed), maxSpeedKmh };
}

// --- recording ---------------------------------------------------------------------------------------

// The health column holds JSON this module wrote.
const parseHealth = (text: string | undefined): HealthState =>
  text ? (JSON.parse(text) as HealthState) : {};

interface Accepted {
  deviceId: string;
  report: SecurityReport;
  keyId: string;
}

function emitFindings(
  emit: TxEmit,
  a: Accepted & { reasons: string[]; jump: ReturnType<typeof locationJump> },
): void {
  const { report } = a;
  const who = { actor: actorOf.device(a.deviceId), subject: subjectOf.device(a.deviceId) };
  const location = report.location && { lat: report.location.lat, lon: report.location.lon };
  for (const reason of a.reasons)
    emit({
      type: 'device.tamper_reported',
      ...who,
      data: {
        reason,
        source: report.kind,
        ...(report.kind === 'tamper' && report.detail !== undefined ? { detail: report.detail } : {}),
        reportedAt: report.ts,
        seq: report.seq,
        keyId: a.keyId,
        ...(location ? { location } : {}),
      },
    });
  if (a.jump) emit({ type: 'device.location_jump', ...who, data: a.jump });
}

/** Records an accepted report with its events; false when its seq is not newer than the last (a replay). */
async function record(deps: ReportsDeps, a: Accepted): Promise<boolean> {
  const { report, deviceId } = a;
  return deps.events.atomically(async (tx, emit) => {
    const now = deps.now();
    const state = await store.getReportState(tx, deviceId);
    if (state && report.seq <= state.last_seq) return false;
    const prevHealth = parseHealth(state?.health);
    const reasons = report.kind === 'tamper' ? [report.reason] : healthChanges(prevHealth, report);
    const loc = report.location;
    const jump =
      loc && state?.lat != null && state.lon != null && state.located_at != null
        ? locationJump(
            { lat: state.lat, lon: state.lon, at: state.located_at },
            { lat: loc.lat, lon: loc.lon, at: report.ts },
            deps.settings.maxSpeedKmh,
          )
        : undefined;
    const advanced = await store.advanceReportState(
      tx,
      {
        device_id: deviceId,
        last_seq: report.seq,
        health: JSON.stringify(report.kind === 'health' ? mergeHealth(prevHealth, report) : prevHealth),
        lat: loc ? loc.lat : (state?.lat ?? null),
        lon: loc ? loc.lon : (state?.lon ?? null),
        located_at: loc ? report.ts : (state?.located_at ?? null),
        updated_at: now,
      },
      state !== undefined,
    );
    if (!advanced) return false;
    await store.insertReport(tx, {
      id: store.sortableId('sr', now),
      device_id: deviceId,
      kind: report.kind,
      reasons: JSON.stringify(reasons),
      seq: report.seq,
      reported_at: report.ts,
      received_at: now,
      report: JSON.stringify(report),
    });
    emitFindings(emit, { ...a, reasons, jump });
    return true;
  });
}

function view(row: store.ReportRow): SecurityReportRecord {
  return {
    id: row.id,
    deviceId: row.device_id,
    kind: row.kind,
    // Columns holding JSON this module wrote.
    reasons: JSON.parse(row.reasons) as string[],
    reportedAt: row.reported_at,
    receivedAt: row.received_at,
    seq: row.seq,
    report: JSON.parse(row.report) as Record<string, unknown>,
  };
}

/** The ingress handlers of `deviceIngress.tamper` and `.health`, the list for operators, and the refusal count. */
export function createSecurityReports(deps: ReportsDeps): SecurityReports {
  let rejected = 0;
  const limit = createEventRateLimit({ max: 20, windowMs: 60_000, now: deps.now });
  /** One report at a time per device (the seq check and the first state row). */
  const chains = new Map<string, Promise<unknown>>();
  const serial = <T>(deviceId: string, work: () => Promise<T>): Promise<T> => {
    const next = (chains.get(deviceId) ?? Promise.resolve()).then(work, work);
    const tail = next.catch(() => undefined);
    chains.set(deviceId, tail);
    void tail.then(() => {
      if (chains.get(deviceId) === tail) chains.delete(deviceId);
    });
    return next;
  };

  async function reject(deviceId: string, kind: ReportKind, reason: string): Promise<void> {
    rejected += 1;
    const { record: write, suppressed } = limit.admit(deviceId);
    if (!write) return;
    await deps.events.emit({
      type: 'device.security_report_rejected',
      actor: actorOf.device(deviceId),
      subject: subjectOf.device(deviceId),
      data: { kind, reason, ...(suppressed > 0 ? { suppressed } : {}) },
    });
  }

  async function accept(deviceId: string, kind: ReportKind, jws: string): Promise<void> {
    const checked = await checkReport(deps, { deviceId, kind, jws });
    if (!checked.ok) return reject(deviceId, kind, checked.reason);
    const recorded = await serial(deviceId, () =>
      record(deps, { deviceId, report: checked.report, keyId: checked.keyId }),
    );
    if (!recorded)
      await reject(deviceId, kind, `replayed: seq ${checked.report.seq} is not newer than the last report's`);
  }

  const handler = (kind: ReportKind) => ({
    accept: (deviceId: string, payload: { jws: string }) => accept(deviceId, kind, payload.jws),
    reject(deviceId: string, problem: string) {
      reject(deviceId, kind, `not a signed report: ${problem}`).catch((err: unknown) =>
        deps.logger.error({ err, deviceId }, 'security report refusal not recorded'),
      );
    },
  });

  return {
    handlers: { tamper: handler('tamper'), health: handler('health') },
    list: async (q) => (await store.listReports(deps.db, q)).map(view),
    rejectedCount: () => rejected,
  };
}
