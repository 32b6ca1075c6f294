import { BulwarkError, purposeAllowed } from '@bulwark/protocol';
import { parseSubject, subjectOf } from '../events/index.ts';
import { fieldPlans, type FieldPlan } from './data-schema.ts';
import { decryptValue, keyIdOf, type DataKey } from './keys.ts';
import type { PrivacyContext } from './privacy.context.ts';
import { getSchemaRow, storedSchema } from './privacy.store.ts';

/**
 * Decryption of `encrypt`ed field values (`bwenc1.…` tokens, from the telemetry store, retained messages or
 * what an app received) for a caller that declares its purpose. A token does not say which field it came
 * from, so the caller names the schema and field: the field must encrypt and allow the purpose (its uses), and
 * the token must have been made for that schema and field (bound into its associated data: a token of
 * another field fails authentication and is refused).
 * Per value, the data key's owner must not be restricted (GDPR Art. 18), and a field whose lawful basis is
 * consent needs the subject's consent for the purpose. A value whose key was destroyed (the subject was
 * erased) stays unreadable: null, counted as erased.
 */

export interface DecryptQuery {
  schema: string;
  field: string;
  values: readonly unknown[];
  purpose: string;
}

export interface DecryptResult {
  /** The clear values, in order; null where refused or erased. */
  values: unknown[];
  /** Not a token, altered, or its subject refused this purpose (restricted, no consent). */
  refused: number;
  /** The key is gone: the subject was erased (crypto-shredding). */
  erased: number;
}

const MAX_VALUES = 1_000;

async function encryptedField(ctx: PrivacyContext, q: DecryptQuery): Promise<FieldPlan> {
  if (q.values.length > MAX_VALUES)
    throw new BulwarkError('validation_failed', `values: at most ${MAX_VALUES} per request`);
  if (q.purpose.trim() === '')
    throw new BulwarkError('validation_failed', 'purpose: the data use the values are decrypted for');
  const row = await getSchemaRow(ctx.db, q.schema);
  if (!row) throw new BulwarkError('not_found', `no data schema ${q.schema}`);
  const plan = fieldPlans(storedSchema(row)).find((p) => p.path === q.field);
  if (!plan) throw new BulwarkError('not_found', `data schema ${q.schema} has no field ${q.field}`);
  if (plan.transform !== 'encrypt')
    throw new BulwarkError(
      'validation_failed',
      `field ${q.field} of data schema ${q.schema} is not encrypted`,
    );
  if (plan.uses !== null && !purposeAllowed(q.purpose, plan.uses))
    throw new BulwarkError(
      'forbidden',
      `purpose ${q.purpose} may not read field ${q.field} of data schema ${q.schema} (its uses: ${plan.uses.join(', ')})`,
    );
  return plan;
}

/** The data keys of the tokens' key ids with their owners (`person:<id>`, `device:<id>`). */
async function keysOf(ctx: PrivacyContext, ids: readonly string[]) {
  const keys = new Map<string, DataKey>();
  for (const id of ids) {
    const key = await ctx.keys.keyById(id);
    if (key) keys.set(id, key);
  }
  const owners = new Map<string, string>();
  if (keys.size > 0) {
    const rows = await ctx.db
      .selectFrom('privacy_subject_keys')
      .select(['key_id', 'subject'])
      .where('key_id', 'in', [...keys.keys()])
      .execute();
    for (const r of rows) owners.set(r.key_id, r.subject);
  }
  return { keys, owners };
}

/** Whether the key owner's data may be read for the purpose (restriction; consent where it is the basis). */
function ownerAllows(
  ctx: PrivacyContext,
  c: { owner: string | undefined; plan: FieldPlan; purpose: string },
) {
  const subject = parseSubject(c.owner);
  if (subject?.kind !== 'person') return true;
  if (ctx.live.restricted(subject.id)) return false;
  return c.plan.lawfulBasis !== 'consent' || ctx.live.consent(subject.id, c.purpose) === 'given';
}

export async function decryptValues(
  ctx: PrivacyContext,
  q: DecryptQuery,
  actor: string,
): Promise<DecryptResult> {
  const plan = await encryptedField(ctx, q);
  const ids = new Set<string>();
  for (const v of q.values) {
    const id = typeof v === 'string' ? keyIdOf(v) : undefined;
    if (id !== undefined) ids.add(id);
  }
  const { keys, owners } = await keysOf(ctx, [...ids]);
  const result: DecryptResult = { values: [], refused: 0, erased: 0 };
  let decrypted = 0;
  for (const v of q.values) {
    const id = typeof v === 'string' ? keyIdOf(v) : undefined;
    if (typeof v !== 'string' || id === undefined) {
      result.refused++;
      result.values.push(null);
    } else if (!keys.has(id)) {
      result.erased++;
      result.values.push(null);
    } else if (!ownerAllows(ctx, { owner: owners.get(id), plan, purpose: q.purpose })) {
      result.refused++;
      result.values.push(null);
    } else {
      const clear = decryptValue(v, (k) => keys.get(k), { schema: q.schema, path: q.field });
      if (clear.ok) decrypted++;
      else result.refused++;
      result.values.push(clear.ok ? clear.value : null);
    }
  }
  await ctx.events.emit({
    type: 'privacy.decrypted',
    actor,
    subject: subjectOf.data_schema(q.schema),
    data: {
      values: decrypted,
      purpose: q.purpose,
      refused: result.refused + result.erased,
    },
  });
  return result;
}
