import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import {
  APP_DEFAULT_POLICY,
  DEFAULT_POLICY,
  lintPolicy,
  parsePolicyDocument,
  QUARANTINE_POLICY,
  type PolicyDocument,
} from '../policy/index.ts';
import type { Tx } from '../store/index.ts';
import type { AccessContext } from './access.context.ts';
import { attachmentKinds } from './access.snapshot.ts';

/** Policies: versioned documents, and where they are attached. Each change commits with its event. */

const policyName = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const BUILTIN = new Set([DEFAULT_POLICY.name, QUARANTINE_POLICY.name, APP_DEFAULT_POLICY.name]);
/** Where each built-in policy applies, as `policy list` shows it. */
const builtinAttachment = {
  [DEFAULT_POLICY.name]: 'all',
  [QUARANTINE_POLICY.name]: 'quarantined',
  [APP_DEFAULT_POLICY.name]: 'app',
};

function checkPolicyName(name: string) {
  if (!policyName.test(name))
    throw new BulwarkError('validation_failed', 'policy name must be 1-64 characters of a-z 0-9 _ . -');
  if (BUILTIN.has(name)) throw new BulwarkError('conflict', `${name} is built in and cannot be changed`);
}

export async function listPolicies(ctx: Pick<AccessContext, 'db'>) {
  const rows = await ctx.db.selectFrom('policies').selectAll().orderBy('name').execute();
  const attachments = await ctx.db.selectFrom('policy_attachments').selectAll().execute();
  const builtins = [DEFAULT_POLICY, QUARANTINE_POLICY, APP_DEFAULT_POLICY].map((p) => ({
    name: p.name,
    version: p.version,
    builtin: true,
    document: p.document,
    attachments: [{ kind: builtinAttachment[p.name] ?? 'all', target: '*' }],
    updatedAt: 0,
  }));
  return [
    ...builtins,
    ...rows.map((r) => ({
      name: r.name,
      version: r.version,
      builtin: false,
      document: JSON.parse(r.document) as PolicyDocument,
      attachments: attachments
        .filter((a) => a.policy === r.name)
        .map((a) => ({ kind: a.target_kind, target: a.target })),
      updatedAt: r.updated_at,
    })),
  ];
}

export async function getPolicy(ctx: Pick<AccessContext, 'db'>, name: string) {
  const found = (await listPolicies(ctx)).find((p) => p.name === name);
  if (!found) throw new BulwarkError('not_found', `policy ${name} does not exist`);
  return found;
}

export async function policyVersions(ctx: Pick<AccessContext, 'db'>, name: string) {
  const rows = await ctx.db
    .selectFrom('policy_versions')
    .selectAll()
    .where('name', '=', name)
    .orderBy('version')
    .execute();
  if (rows.length === 0) throw new BulwarkError('not_found', `policy ${name} does not exist`);
  return rows.map((r) => ({
    version: r.version,
    actor: r.actor,
    createdAt: r.created_at,
    document: JSON.parse(r.document) as PolicyDocument,
  }));
}

/** Writes the next version of a policy; resolves with its number. */
async function writeVersion(tx: Tx, policy: { name: string; text: string; actor: string; at: number }) {
  const { name, text, actor, at: t } = policy;
  const existing = await tx
    .selectFrom('policies')
    .select('version')
    .where('name', '=', name)
    .executeTakeFirst();
  // The history outlives a deletion: a policy created again under a deleted one's name goes on from its
  // last version (a fresh 1 would collide with the kept version 1).
  const history = await tx
    .selectFrom('policy_versions')
    .select((eb) => eb.fn.max('version').as('last'))
    .where('name', '=', name)
    .executeTakeFirst();
  const v = Math.max(existing?.version ?? 0, Number(history?.last ?? 0)) + 1;
  if (existing)
    await tx
      .updateTable('policies')
      .set({ version: v, document: text, updated_at: t })
      .where('name', '=', name)
      .execute();
  else
    await tx
      .insertInto('policies')
      .values({ name, version: v, document: text, description: null, created_at: t, updated_at: t })
      .execute();
  await tx
    .insertInto('policy_versions')
    .values({ name, version: v, document: text, actor, created_at: t })
    .execute();
  return v;
}

/** Creates or replaces a policy as a new version; returns the warnings raised on save. */
/** Policies named `app.<name>` are apps' grants: only the apps module writes them (docs/apps.md). */
export const APP_POLICY_PREFIX = 'app.';

export async function putPolicy(
  ctx: AccessContext,
  policy: { name: string; document: unknown; owner?: 'apps' },
  actor: string,
) {
  const { name } = policy;
  checkPolicyName(name);
  if (name.startsWith(APP_POLICY_PREFIX) && policy.owner !== 'apps')
    throw new BulwarkError(
      'forbidden',
      `policy ${name}: names starting with ${APP_POLICY_PREFIX} are applications' grants, written only by the apps module (bulwark app grant / ungrant)`,
    );
  const parsed = parsePolicyDocument(policy.document);
  if (!parsed.ok)
    throw new BulwarkError('validation_failed', `invalid policy: ${parsed.problems.join('; ')}`, {
      details: { problems: parsed.problems },
    });
  const warnings = lintPolicy(parsed.document);
  const text = JSON.stringify(parsed.document);
  const version = await ctx.events.atomically(async (tx, emit) => {
    const v = await writeVersion(tx, { name, text, actor, at: ctx.now() });
    const data = { version: v, warnings: warnings.map((w) => w.message) };
    emit({ type: 'policy.updated', actor, subject: subjectOf.policy(name), data });
    return v;
  });
  return { name, version, warnings };
}

export async function deletePolicy(ctx: AccessContext, name: string, actor: string) {
  checkPolicyName(name);
  await ctx.events.atomically(async (tx, emit) => {
    const existing = await tx
      .selectFrom('policies')
      .select('version')
      .where('name', '=', name)
      .executeTakeFirst();
    if (!existing) throw new BulwarkError('not_found', `policy ${name} does not exist`);
    await tx.deleteFrom('policy_attachments').where('policy', '=', name).execute();
    await tx.deleteFrom('policies').where('name', '=', name).execute();
    emit({
      type: 'policy.deleted',
      actor,
      subject: subjectOf.policy(name),
      data: { version: existing.version },
    });
  });
}

export interface AttachmentChange {
  kind: string;
  target: string;
  /** true: attach; false: detach. */
  attached: boolean;
}

/** Attaches a policy to all devices, a group, a zone, a device or an app, or detaches it. */
export async function setAttachment(
  ctx: AccessContext,
  change: AttachmentChange & { policy: string },
  actor: string,
) {
  const { policy: name, kind, attached } = change;
  if (!(attachmentKinds as readonly string[]).includes(kind))
    throw new BulwarkError('validation_failed', `kind must be one of ${attachmentKinds.join(', ')}`);
  const target = kind === 'all' ? '*' : change.target;
  if (kind !== 'all' && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(target))
    throw new BulwarkError('validation_failed', 'target must be a group, zone, device or app name');
  checkPolicyName(name);
  await ctx.events.atomically(async (tx, emit) => {
    if (!(await tx.selectFrom('policies').select('name').where('name', '=', name).executeTakeFirst())) {
      throw new BulwarkError('not_found', `policy ${name} does not exist`);
    }
    if (attached) {
      await tx
        .insertInto('policy_attachments')
        .values({ policy: name, target_kind: kind, target, created_at: ctx.now() })
        .onConflict((oc) => oc.doNothing())
        .execute();
    } else {
      const res = await tx
        .deleteFrom('policy_attachments')
        .where('policy', '=', name)
        .where('target_kind', '=', kind)
        .where('target', '=', target)
        .executeTakeFirst();
      if (Number(res.numDeletedRows) === 0)
        throw new BulwarkError('not_found', `policy ${name} is not attached to ${kind} ${target}`);
    }
    emit({
      type: attached ? 'policy.attached' : 'policy.detached',
      actor,
      subject: subjectOf.policy(name),
      data: { kind, target },
    });
  });
}
