import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type AuditEntry, type AuditLog } from '../events/index.ts';
import { requireDevice, type DeviceContext } from './device.context.ts';
import type { CertificateSummary, CertificatesOf } from './device.subject.ts';
import type { Device } from './device.types.ts';

/** What the operator reads about devices: views with other modules' facts, and recent refusals. */

/** A refusal recorded in the audit log about the device: why a publish "succeeded" but nothing arrived. */
export interface DeviceDenial {
  at: number;
  type: 'mqtt.publish_denied' | 'mqtt.subscribe_denied' | 'mqtt.connect_refused';
  topic: string | null;
  reason: string;
}

/** Facts other modules hold about a device; the composition root binds them (the consumer names them here). */
export interface DeviceFacts {
  /** Which zone a device is in (the access module's zones), read once for a whole list. */
  zones(): Promise<(device: Device) => string | null>;
  /** What the device last reported it runs (the firmware module). */
  firmwareOf(deviceId: string): Promise<{ version: string | null; reportedAt: number } | undefined>;
}

/** A device as the operator sees it: its own state and what the other modules know about it. */
export interface DeviceView extends Device {
  zone: string | null;
  firmwareVersion: string | null;
  firmwareReportedAt: number | null;
}

const denialTypes = ['mqtt.publish_denied', 'mqtt.subscribe_denied', 'mqtt.connect_refused'] as const;
type DenialEntry = AuditEntry<DeviceDenial['type']>;
/**
 * How far back `device show` looks for refusals: the last hour first, then the day, then the week, so the
 * latest are found without reading a week of a noisy device; at most this many pages per type and span.
 */
const DENIAL_SPANS_MS = [3_600_000, 86_400_000, 7 * 86_400_000];
const DENIAL_PAGES = 20;

interface SpanQuery {
  audit: Pick<AuditLog, 'query'>;
  type: DeviceDenial['type'];
  subject: string;
  from: number;
  to: number;
  limit: number;
}

/** The latest `limit` refusals of one type within [from, to), oldest first. */
async function latestInSpan(q: SpanQuery): Promise<DenialEntry[]> {
  const older: DenialEntry[] = [];
  let after: number | undefined;
  for (let page = 0; page < DENIAL_PAGES; page++) {
    const { type, subject, from, to } = q;
    const entries = await q.audit.query({ type, subject, from, to, after, limit: 500 });
    older.push(...entries);
    older.splice(0, Math.max(0, older.length - q.limit));
    if (entries.length < 500) break;
    after = entries[entries.length - 1]?.seq;
  }
  return older;
}

/**
 * The device's latest refusals, newest first. MQTT 3.1.1 has no way to refuse a QoS 0/1 PUBLISH
 * ([MQTT-3.3.5-2]: acknowledge and drop, or close): the client's side says "sent", the audit log says why.
 */
export async function denials(
  ctx: DeviceContext,
  query: { id: string; limit: number },
): Promise<DeviceDenial[]> {
  const { audit } = ctx;
  if (!audit) return [];
  const { limit } = query;
  const subject = subjectOf.device(query.id);
  const found: DenialEntry[] = [];
  const t = ctx.now();
  for (const type of denialTypes) {
    const latest: DenialEntry[] = [];
    let to = t + 1;
    for (const span of DENIAL_SPANS_MS) {
      if (latest.length >= limit) break;
      const from = t - span;
      const older = await latestInSpan({ audit, type, subject, from, to, limit });
      latest.unshift(...older.slice(-(limit - latest.length)));
      to = from;
    }
    found.push(...latest);
  }
  // Newest first, in the log's own order (several refusals can share a millisecond).
  return found
    .sort((a, b) => b.seq - a.seq)
    .slice(0, limit)
    .map((e) => ({
      at: e.ts,
      type: e.type,
      topic: 'topic' in e.data ? e.data.topic : null,
      reason: e.data.reason,
    }));
}

export async function views(facts: DeviceFacts | undefined, list: Device[]): Promise<DeviceView[]> {
  const zoneOf = facts ? await facts.zones() : () => null;
  const out: DeviceView[] = [];
  for (const device of list) {
    const firmware = await facts?.firmwareOf(device.id);
    out.push({
      ...device,
      zone: zoneOf(device),
      firmwareVersion: firmware?.version ?? null,
      firmwareReportedAt: firmware?.reportedAt ?? null,
    });
  }
  return out;
}

/** One device with its zone and firmware, and its latest refusals. */
export async function show(
  ctx: DeviceContext,
  facts: DeviceFacts | undefined,
  query: { id: string; limit: number },
): Promise<DeviceView & { recentDenials: DeviceDenial[] }> {
  const [device] = await views(facts, [await requireDevice(ctx.db, query.id)]);
  if (!device) throw new BulwarkError('not_found', `device ${query.id} does not exist`);
  return { ...device, recentDenials: await denials(ctx, query) };
}

/** What a certificate is now: revoked over everything (it stays revoked), then by its validity period. */
export type CertificateState = 'valid' | 'not-yet-valid' | 'expired' | 'revoked';

export function certificateState(c: CertificateSummary, at: number): CertificateState {
  if (c.revokedAt !== null) return 'revoked';
  if (at < c.notBefore) return 'not-yet-valid';
  // As enrollment judges it (pki requireValid): at notAfter the certificate no longer serves.
  return at >= c.notAfter ? 'expired' : 'valid';
}

/** The device's certificates with their state now, newest first (pki's summaries: no key material). */
export async function certificates(
  ctx: DeviceContext,
  certificatesOf: CertificatesOf | undefined,
  id: string,
): Promise<(CertificateSummary & { state: CertificateState })[]> {
  await requireDevice(ctx.db, id);
  if (!certificatesOf) throw new BulwarkError('internal', 'device certificates are not wired');
  const at = ctx.now();
  return (await certificatesOf(id)).reverse().map((c) => ({ ...c, state: certificateState(c, at) }));
}
