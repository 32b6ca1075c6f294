import type { DataSchema } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import { fieldPlans } from './data-schema.ts';
import type { ClassifiedStore, PrivacyContext } from './privacy.context.ts';
import { listSchemaRows, storedSchema } from './privacy.store.ts';

/**
 * Retention (GDPR Art. 5(1)(e), storage limitation): each data schema's messages are kept no longer than the
 * shortest retention of the fields it keeps (personal fields always have one; a field kept `none` is not
 * kept, so its retention does not count). Every store that keeps classified messages (the telemetry store,
 * retained messages) deletes what was received before `now - retention`; each run that deleted something is
 * one `privacy.retention_applied` event with its counts. A schema whose kept fields have no retention is
 * left to the store's own limits (the telemetry patterns' retention).
 */

export interface RetentionRun {
  schema: string;
  store: string;
  deleted: number;
  /** Messages received before this instant (epoch ms) were deleted. */
  before: number;
  /** The store failed this run (the others still ran); reported through onError too. */
  error?: string;
}

/** The retention of a schema's messages: the shortest over the fields it keeps; undefined when none has one. */
export function schemaRetentionMs(schema: DataSchema): number | undefined {
  let shortest: number | undefined;
  for (const plan of fieldPlans(schema)) {
    if (plan.store === 'none' || plan.retentionMs === null) continue;
    shortest = shortest === undefined ? plan.retentionMs : Math.min(shortest, plan.retentionMs);
  }
  return shortest;
}

async function applyToStore(
  ctx: PrivacyContext,
  run: { store: ClassifiedStore; schema: string; before: number },
): Promise<RetentionRun> {
  const base = { schema: run.schema, store: run.store.store, before: run.before };
  let deleted: number;
  try {
    deleted = await run.store.deleteForSchema(run.schema, run.before);
  } catch (err) {
    ctx.onError(err, `retention of ${run.schema} in ${run.store.store}`);
    return { ...base, deleted: 0, error: err instanceof Error ? err.message : String(err) };
  }
  const result = { ...base, deleted };
  if (deleted > 0)
    await ctx.events.emit({
      type: 'privacy.retention_applied',
      actor: 'system',
      subject: subjectOf.data_schema(run.schema),
      data: result,
    });
  return result;
}

/** One retention pass over every schema and store; the runs (deleted 0 included), schema by schema. */
export async function applyRetention(ctx: PrivacyContext, now: number): Promise<RetentionRun[]> {
  const sources = ctx.sources();
  const stores = [sources.telemetry, ...(sources.retained ? [sources.retained] : [])];
  const runs: RetentionRun[] = [];
  for (const row of await listSchemaRows(ctx.db)) {
    const retentionMs = schemaRetentionMs(storedSchema(row));
    if (retentionMs === undefined) continue;
    for (const store of stores)
      runs.push(await applyToStore(ctx, { store, schema: row.name, before: now - retentionMs }));
  }
  return runs;
}
