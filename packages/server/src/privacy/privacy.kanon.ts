import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import { fieldPlans, type FieldPlan } from './data-schema.ts';
import type { PrivacyContext, TelemetryRow } from './privacy.context.ts';
import { getSchemaRow, storedSchema } from './privacy.store.ts';

/**
 * De-identified telemetry exports with a k-anonymity check (Sweeney 2002): the export holds only the
 * schema's non-personal fields and its quasi-identifiers, in the form the store keeps them (generalised
 * where the schema says so), never a direct identifier (the subject, the device, other personal fields).
 * Rows are grouped by their tuple of quasi-identifier values; every group must hold at least k distinct
 * subjects (a message without subject counts its device as the subject). Otherwise the export is refused
 * and nothing is returned.
 */

export interface TelemetryExportQuery {
  schema: string;
  k: number;
  from?: number | undefined;
  to?: number | undefined;
  limit?: number | undefined;
}

export interface TelemetryExport {
  rows: Record<string, unknown>[];
  k: number;
  /** How many groups (equivalence classes of quasi-identifier values) the rows fall in. */
  classes: number;
  /** Distinct subjects in the smallest group (0 when there are no rows). */
  smallestClass: number;
  quasiIdentifiers: string[];
}

const DEFAULT_LIMIT = 10_000;
const MAX_LIMIT = 100_000;

/** The value at a dotted path of a parsed payload (undefined when absent). */
function valueAt(value: Record<string, unknown>, path: string): unknown {
  let node: unknown = value;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function parsePayload(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function checkQuery(q: TelemetryExportQuery): number {
  if (!Number.isInteger(q.k) || q.k < 2)
    throw new BulwarkError('validation_failed', 'k: an integer of at least 2 (k=1 singles everyone out)');
  const limit = q.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new BulwarkError('validation_failed', `limit: an integer from 1 to ${MAX_LIMIT}`);
  return limit;
}

/** Groups rows by their quasi-identifier values: distinct subjects per group. */
function equivalenceClasses(
  rows: readonly { subject: string; values: Record<string, unknown> }[],
  quasi: readonly string[],
): number[] {
  const classes = new Map<string, Set<string>>();
  for (const row of rows) {
    const key = JSON.stringify(quasi.map((path) => valueAt(row.values, path) ?? null));
    let subjects = classes.get(key);
    if (!subjects) classes.set(key, (subjects = new Set()));
    subjects.add(row.subject);
  }
  return [...classes.values()].map((s) => s.size);
}

/** What an exported row holds: the exportable fields of the kept payload. */
function project(values: Record<string, unknown>, exported: readonly FieldPlan[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const plan of exported) {
    const v = valueAt(values, plan.path);
    if (v !== undefined) out[plan.path] = v;
  }
  return out;
}

const subjectKey = (row: TelemetryRow) =>
  row.subjectId !== null ? subjectOf.person(row.subjectId) : subjectOf.device(row.deviceId);

/** A de-identified export of a schema's stored messages, refused when a group holds fewer than k subjects. */
export async function exportTelemetry(
  ctx: PrivacyContext,
  q: TelemetryExportQuery,
  actor: string,
): Promise<TelemetryExport> {
  const limit = checkQuery(q);
  const row = await getSchemaRow(ctx.db, q.schema);
  if (!row) throw new BulwarkError('not_found', `no data schema ${q.schema}`);
  const plans = fieldPlans(storedSchema(row)).filter((p) => p.store !== 'none');
  const quasi = plans.filter((p) => p.quasiIdentifier);
  const exported = plans.filter((p) => p.quasiIdentifier || !p.personal);
  const quasiIdentifiers = quasi.map((p) => p.path);
  const stored = await ctx.sources().telemetryRows({ schema: q.schema, from: q.from, to: q.to, limit });
  const parsed = stored.flatMap((r) => {
    const values = parsePayload(r.payload);
    return values ? [{ subject: subjectKey(r), values }] : [];
  });
  const sizes = equivalenceClasses(parsed, quasiIdentifiers);
  const small = sizes.filter((n) => n < q.k).length;
  if (small > 0)
    throw new BulwarkError(
      'validation_failed',
      `k-anonymity: ${small} of ${sizes.length} groups single out fewer than k=${q.k} subjects (quasi-identifiers ${quasiIdentifiers.join(', ') || 'none'}); generalise them further or raise the group size`,
    );
  const rows = parsed.map((r) => project(r.values, exported));
  await ctx.events.emit({
    type: 'privacy.telemetry_exported',
    actor,
    subject: subjectOf.data_schema(q.schema),
    data: { schema: q.schema, rows: rows.length, k: q.k, quasiIdentifiers },
  });
  return {
    rows,
    k: q.k,
    classes: sizes.length,
    smallestClass: sizes.reduce((min, n) => Math.min(min, n), sizes.length === 0 ? 0 : Infinity),
    quasiIdentifiers,
  };
}
