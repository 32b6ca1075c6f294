import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { attestationReasons, type api, type AttestationReason, type TrustTier } from '@bulwark/protocol';
import type {
  AttestationKeysTable,
  AttestationNoncesTable,
  Db,
  DbOrTx,
  SecurityReportStateTable,
  SecurityReportsTable,
} from '../store/index.ts';

/**
 * The attestation module's tables (migration 0015): attestation keys, single-use nonces, verdicts, verified
 * security reports and each device's report state. Only this module writes them; functions take the
 * database or the transaction first.
 */

export type KeyRow = AttestationKeysTable;
export type NonceRow = AttestationNoncesTable;
export type ReportRow = SecurityReportsTable;
export type ReportStateRow = SecurityReportStateTable;
/** A verdict as the API shows it. */
export type AttestationResultView = z.output<typeof api.attestation.attestationResult>;

const node = randomBytes(4).toString('hex');
let lastMs = 0;
let counter = 0;

/**
 * Ids that sort in the order they were made: strictly in this process (the time, never going back, and a
 * counter), across processes by time (as telemetry and outbox ids). `at` is the service's clock.
 */
export function sortableId(prefix: 'ar' | 'sr', at: number): string {
  const t = Math.max(at, lastMs);
  counter = t === lastMs ? counter + 1 : 0;
  lastMs = t;
  return `${prefix}_${t.toString(36).padStart(9, '0')}-${counter.toString(36).padStart(6, '0')}-${node}`;
}

/** How many outstanding nonces a device may hold (older ones are dropped when it asks for more). */
export const MAX_OUTSTANDING_NONCES = 8;

// --- keys --------------------------------------------------------------------------------------

export function getKey(db: DbOrTx, deviceId: string): Promise<KeyRow | undefined> {
  return db.selectFrom('attestation_keys').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
}

/** A new pending key replaces whatever pending key the device had; false (nothing written) when it has a bound one. */
export async function putPendingKey(tx: DbOrTx, row: KeyRow): Promise<boolean> {
  await tx
    .deleteFrom('attestation_keys')
    .where('device_id', '=', row.device_id)
    .where('status', '=', 'pending')
    .execute();
  const r = await tx
    .insertInto('attestation_keys')
    .values(row)
    .onConflict((oc) => oc.column('device_id').doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function bindKey(tx: DbOrTx, deviceId: string, at: number): Promise<void> {
  await tx
    .updateTable('attestation_keys')
    .set({
      status: 'bound',
      bound_at: at,
      challenge_id: null,
      challenge_hash: null,
      challenge_expires_at: null,
    })
    .where('device_id', '=', deviceId)
    .execute();
}

/** Removes the key and the device's outstanding nonces; the key as it was, if any. */
export async function deleteKey(tx: DbOrTx, deviceId: string): Promise<KeyRow | undefined> {
  const row = await getKey(tx, deviceId);
  if (!row) return undefined;
  await tx.deleteFrom('attestation_keys').where('device_id', '=', deviceId).execute();
  await tx.deleteFrom('attestation_nonces').where('device_id', '=', deviceId).execute();
  return row;
}

/** Other devices whose key has this endorsement key (the same TPM). */
export async function devicesWithEk(db: DbOrTx, ekHash: string, except: string): Promise<string[]> {
  const rows = await db
    .selectFrom('attestation_keys')
    .select('device_id')
    .where('ek_hash', '=', ekHash)
    .where('device_id', '!=', except)
    .execute();
  return rows.map((r) => r.device_id);
}

export async function keyCounts(
  db: DbOrTx,
): Promise<{ bound: number; pending: number; oldestPendingAt: number | null }> {
  const rows = await db
    .selectFrom('attestation_keys')
    .select([
      'status',
      (eb) => eb.fn.countAll<number | string>().as('n'),
      (eb) => eb.fn.min('registered_at').as('oldest'),
    ])
    .groupBy('status')
    .execute();
  const of = (status: KeyRow['status']) => rows.find((r) => r.status === status);
  const pending = of('pending');
  return {
    bound: Number(of('bound')?.n ?? 0),
    pending: Number(pending?.n ?? 0),
    oldestPendingAt: pending?.oldest == null ? null : Number(pending.oldest),
  };
}

// --- nonces ------------------------------------------------------------------------------------

/** Stores a new nonce, dropping the device's used or expired ones and the oldest beyond the cap. */
export async function insertNonce(tx: DbOrTx, row: NonceRow): Promise<void> {
  await tx
    .deleteFrom('attestation_nonces')
    .where('device_id', '=', row.device_id)
    .where((eb) => eb.or([eb('used_at', 'is not', null), eb('expires_at', '<=', row.created_at)]))
    .execute();
  const outstanding = await tx
    .selectFrom('attestation_nonces')
    .select('nonce')
    .where('device_id', '=', row.device_id)
    .orderBy('created_at', 'desc')
    .orderBy('nonce')
    .execute();
  const drop = outstanding.slice(MAX_OUTSTANDING_NONCES - 1).map((r) => r.nonce);
  if (drop.length > 0) await tx.deleteFrom('attestation_nonces').where('nonce', 'in', drop).execute();
  await tx.insertInto('attestation_nonces').values(row).execute();
}

export function getNonce(db: DbOrTx, deviceId: string, nonce: string): Promise<NonceRow | undefined> {
  return db
    .selectFrom('attestation_nonces')
    .selectAll()
    .where('nonce', '=', nonce)
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
}

/** Marks a nonce used; false when it already was (another quote took it first). */
export async function useNonce(tx: DbOrTx, nonce: string, at: number): Promise<boolean> {
  const r = await tx
    .updateTable('attestation_nonces')
    .set({ used_at: at })
    .where('nonce', '=', nonce)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Drops expired nonces (the sweep); how many. */
export async function deleteExpiredNonces(db: DbOrTx, now: number): Promise<number> {
  const r = await db.deleteFrom('attestation_nonces').where('expires_at', '<=', now).executeTakeFirst();
  return Number(r.numDeletedRows);
}

// --- results -----------------------------------------------------------------------------------

export async function insertResult(tx: DbOrTx, r: AttestationResultView): Promise<void> {
  await tx
    .insertInto('attestation_results')
    .values({
      id: r.id,
      device_id: r.deviceId,
      at: r.at,
      tier: r.tier,
      reason: r.reason,
      detail: r.detail,
      release_ref: r.release,
      pcr_selection: r.pcrSelection,
      mismatched_pcrs: JSON.stringify(r.mismatchedPcrs),
    })
    .execute();
}

type ResultRow = {
  id: string;
  device_id: string;
  at: number;
  tier: TrustTier;
  reason: string;
  detail: string;
  release_ref: string | null;
  pcr_selection: string | null;
  mismatched_pcrs: string;
};

const isReason = (value: string): value is AttestationReason =>
  (attestationReasons as readonly string[]).includes(value);
/** Written by this module from attestationReasons; anything else reads as a malformed quote. */
const reasonOf = (value: string): AttestationReason => (isReason(value) ? value : 'malformed_quote');

function resultView(row: ResultRow): AttestationResultView {
  return {
    id: row.id,
    deviceId: row.device_id,
    at: Number(row.at),
    tier: row.tier,
    reason: reasonOf(row.reason),
    detail: row.detail,
    release: row.release_ref,
    pcrSelection: row.pcr_selection,
    mismatchedPcrs: JSON.parse(row.mismatched_pcrs) as number[],
  };
}

export async function listResults(
  db: DbOrTx,
  q: { device?: string | undefined; tier?: TrustTier | undefined; limit: number },
): Promise<AttestationResultView[]> {
  let query = db.selectFrom('attestation_results').selectAll();
  if (q.device !== undefined) query = query.where('device_id', '=', q.device);
  if (q.tier !== undefined) query = query.where('tier', '=', q.tier);
  const rows = await query.orderBy('at', 'desc').orderBy('id', 'desc').limit(q.limit).execute();
  return rows.map(resultView);
}

/**
 * What the standings are computed from, per device with a bound key: when it was bound, its last verdict and
 * its last affirming or warning verdict since then.
 */
export async function standingRows(
  db: DbOrTx,
  deviceId?: string,
): Promise<
  {
    deviceId: string;
    boundAt: number;
    last: { tier: TrustTier; at: number } | undefined;
    lastGoodAt: number | undefined;
  }[]
> {
  let keys = db
    .selectFrom('attestation_keys')
    .select(['device_id', 'bound_at'])
    .where('status', '=', 'bound');
  if (deviceId !== undefined) keys = keys.where('device_id', '=', deviceId);
  let results = db
    .selectFrom('attestation_results as r')
    .innerJoin('attestation_keys as k', 'k.device_id', 'r.device_id')
    .select(['r.device_id', 'r.tier', 'r.at'])
    .where('k.status', '=', 'bound')
    .whereRef('r.at', '>=', 'k.bound_at');
  if (deviceId !== undefined) results = results.where('r.device_id', '=', deviceId);
  const [keyRows, latest] = await Promise.all([
    keys.execute(),
    // Newest first per device: the first row is the last verdict, the first good one the last good.
    results.orderBy('r.device_id').orderBy('r.at', 'desc').orderBy('r.id', 'desc').execute(),
  ]);
  const last = new Map<string, { tier: TrustTier; at: number }>();
  const good = new Map<string, number>();
  for (const r of latest) {
    if (!last.has(r.device_id)) last.set(r.device_id, { tier: r.tier, at: Number(r.at) });
    if (r.tier !== 'contraindicated' && !good.has(r.device_id)) good.set(r.device_id, Number(r.at));
  }
  return keyRows.map((k) => ({
    deviceId: k.device_id,
    boundAt: Number(k.bound_at ?? 0),
    last: last.get(k.device_id),
    lastGoodAt: good.get(k.device_id),
  }));
}

// --- security reports --------------------------------------------------------------------------

export async function insertReport(tx: DbOrTx, row: ReportRow): Promise<void> {
  await tx.insertInto('security_reports').values(row).execute();
}

export async function listReports(
  db: DbOrTx,
  q: { device?: string | undefined; kind?: 'tamper' | 'health' | undefined; limit: number },
): Promise<ReportRow[]> {
  let query = db.selectFrom('security_reports').selectAll();
  if (q.device !== undefined) query = query.where('device_id', '=', q.device);
  if (q.kind !== undefined) query = query.where('kind', '=', q.kind);
  return query.orderBy('received_at', 'desc').orderBy('id', 'desc').limit(q.limit).execute();
}

export function getReportState(db: DbOrTx, deviceId: string): Promise<ReportStateRow | undefined> {
  return db
    .selectFrom('security_report_state')
    .selectAll()
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
}

/**
 * Moves the device's report state to `row` only if its seq is higher than the stored one (compare-and-set:
 * two reports racing with one seq cannot both pass); false when it is not (a replay).
 */
export async function advanceReportState(
  tx: DbOrTx,
  row: ReportStateRow,
  existed: boolean,
): Promise<boolean> {
  if (!existed) {
    await tx.insertInto('security_report_state').values(row).execute();
    return true;
  }
  const r = await tx
    .updateTable('security_report_state')
    .set({
      last_seq: row.last_seq,
      health: row.health,
      lat: row.lat,
      lon: row.lon,
      located_at: row.located_at,
      updated_at: row.updated_at,
    })
    .where('device_id', '=', row.device_id)
    .where('last_seq', '<', row.last_seq)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

// --- data subject ------------------------------------------------------------------------------

const deviceTables = [
  'attestation_keys',
  'attestation_nonces',
  'attestation_results',
  'security_reports',
  'security_report_state',
] as const;

/** Every row this module keeps about a device, by table. */
export async function deviceRows(db: DbOrTx, deviceId: string): Promise<{ table: string; row: object }[]> {
  const out: { table: string; row: object }[] = [];
  for (const table of deviceTables) {
    const rows = await db.selectFrom(table).selectAll().where('device_id', '=', deviceId).execute();
    for (const row of rows) out.push({ table, row });
  }
  return out;
}

/** Deletes every row of the device; how many. */
export async function deleteDeviceRows(tx: DbOrTx, deviceId: string): Promise<number> {
  // Each table named literally (the table-ownership check reads the names); the same list as deviceTables.
  const deleted = [
    await tx.deleteFrom('attestation_keys').where('device_id', '=', deviceId).executeTakeFirst(),
    await tx.deleteFrom('attestation_nonces').where('device_id', '=', deviceId).executeTakeFirst(),
    await tx.deleteFrom('attestation_results').where('device_id', '=', deviceId).executeTakeFirst(),
    await tx.deleteFrom('security_reports').where('device_id', '=', deviceId).executeTakeFirst(),
    await tx.deleteFrom('security_report_state').where('device_id', '=', deviceId).executeTakeFirst(),
  ];
  return deleted.reduce((n, r) => n + Number(r.numDeletedRows), 0);
}

export type { Db };
