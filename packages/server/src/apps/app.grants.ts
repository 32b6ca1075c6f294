import { BulwarkError, DEVICE_TOPIC_ROOT } from '@bulwark/protocol';
import {
  appPolicyName,
  formatGrant,
  grantsToPolicy,
  intersects,
  parseGrant,
  type PolicyDocument,
  type Statement,
} from '../policy/index.ts';
import { subjectOf } from '../events/index.ts';
import type { AppContext } from './app.context.ts';
import { requireActive, requireApp } from './app.lookup.ts';

/** Every device topic: what an app without a purpose may not be granted. */
const DEVICE_TOPICS = `${DEVICE_TOPIC_ROOT}/#`;

type PolicyList = Awaited<ReturnType<AppContext['access']['listPolicies']>>;

/** A resource with its variables as single-level wildcards: what it could match at most. */
const widest = (resource: string) => resource.replace(/\$\{[^}]*\}/g, '+');

/** Whether a statement reaches device topics (`devices/…`), which only an app with a purpose may be granted. */
export function touchesDeviceData(statement: Statement): boolean {
  return statement.resources.some((r) => intersects(widest(r), DEVICE_TOPICS));
}

/**
 * The policy document of an app's grants, checked: each grant parses (its problem names the bad part), and an
 * app without a purpose is refused any grant under `devices/` (the privacy rule: no declared purpose, no
 * device data). Undefined for no grants.
 */
export function grantsDocument(
  app: { name: string; purpose: string | null },
  grants: readonly string[],
): PolicyDocument | undefined {
  if (grants.length === 0) return undefined;
  const parsed = grantsToPolicy(grants);
  if (!parsed.ok)
    throw new BulwarkError('validation_failed', `invalid grant: ${parsed.problems.join('; ')}`, {
      details: { problems: parsed.problems },
    });
  if (app.purpose === null) {
    const index = parsed.document.statements.findIndex(touchesDeviceData);
    if (index >= 0)
      throw new BulwarkError(
        'validation_failed',
        `grant ${index + 1} ("${grants[index] ?? ''}"): app ${app.name} has no declared purpose, and device data (topics under devices/) is granted only for a purpose (--purpose KEY, a fideslang data use such as analytics.reporting)`,
      );
  }
  return parsed.document;
}

/** A grant as `formatGrant` writes it (single spaces, scopes in order), or as given when it does not parse. */
export function normaliseGrant(text: string): string {
  const parsed = parseGrant(text);
  return (parsed.ok ? formatGrant(parsed.statement) : undefined) ?? text.trim();
}

const attachedTo = (policy: PolicyList[number] | undefined, app: string) =>
  policy?.attachments.some((a) => a.kind === 'app' && a.target === app) ?? false;

/** A grants document written back as grants (single spaces, scopes in order). */
export function grantsText(document: PolicyDocument | undefined): string[] {
  return (document?.statements ?? []).map((s) => formatGrant(s) ?? JSON.stringify(s));
}

/** An app's grants as text, in order: its policy `app.<name>` while attached to it. */
export function grantsIn(policies: PolicyList, app: string): string[] {
  const policy = policies.find((p) => p.name === appPolicyName(app));
  return policy && attachedTo(policy, app) ? grantsText(policy.document) : [];
}

/**
 * A policy `app.<name>` attached to anything but that app is not the app's grants (written before access
 * reserved the `app.` names, and attached to devices, groups, zones or another app): the app's grants never
 * overwrite it. One attached to nothing is the app's own detached grants, taken over.
 */
function requireOwnPolicy(existing: PolicyList[number] | undefined, app: string): void {
  const foreign = existing?.attachments.filter((a) => !(a.kind === 'app' && a.target === app)) ?? [];
  if (foreign.length === 0) return;
  const where = foreign.map((a) => `${a.kind}:${a.target}`).join(', ');
  throw new BulwarkError(
    'conflict',
    `policy ${appPolicyName(app)} is attached to ${where}: it is not app ${app}'s grants and is not overwritten (detach or rename it, then grant again)`,
  );
}

/** Refuses (conflict) when the policy `app.<name>` is attached to anything but the app: see requireOwnPolicy. */
export async function checkGrantsPolicy(ctx: AppContext, app: string): Promise<void> {
  const existing = (await ctx.access.listPolicies()).find((p) => p.name === appPolicyName(app));
  requireOwnPolicy(existing, app);
}

/**
 * Writes an app's grants through the access door: the policy `app.<name>` (a new version), attached to the
 * app. No grants: the policy is detached (kept with its versions: access keeps a policy's history by name).
 * Access's events make every broker node recompile the app's sessions. A policy of that name attached to
 * anything else is refused (`requireOwnPolicy`).
 */
export async function writeGrants(
  ctx: AppContext,
  change: { app: string; document: PolicyDocument | undefined; actor: string },
): Promise<void> {
  const { app, document, actor } = change;
  const name = appPolicyName(app);
  const existing = (await ctx.access.listPolicies()).find((p) => p.name === name);
  if (!document) {
    if (attachedTo(existing, app)) await ctx.access.detach(name, { kind: 'app', target: app }, actor);
    return;
  }
  requireOwnPolicy(existing, app);
  await ctx.access.putAppPolicy(name, document, actor);
  if (!attachedTo(existing, app)) await ctx.access.attach(name, { kind: 'app', target: app }, actor);
}

/** Replaces an app's grants (checked against its purpose), then records `app.updated` with the new list. */
export async function setGrants(
  ctx: AppContext,
  change: { app: string; grants: readonly string[]; actor: string },
): Promise<string[]> {
  const { app: name, grants, actor } = change;
  const app = requireActive(await requireApp(ctx.db, name));
  const document = grantsDocument(app, grants);
  await writeGrants(ctx, { app: name, document, actor });
  const written = grantsText(document);
  await ctx.events.emit({
    type: 'app.updated',
    actor,
    subject: subjectOf.app(name),
    data: { changes: { grants: written } },
  });
  return written;
}

/** Adds one grant (unless the app holds it already, written the same way). */
export async function addGrant(
  ctx: AppContext,
  change: { app: string; grant: string; actor: string },
): Promise<string[]> {
  await requireApp(ctx.db, change.app);
  const current = grantsIn(await ctx.access.listPolicies(), change.app);
  const text = normaliseGrant(change.grant);
  if (current.includes(text)) return current;
  return setGrants(ctx, { app: change.app, grants: [...current, text], actor: change.actor });
}

/** Removes one grant, given as text (normalised as `formatGrant` writes it) or by its 1-based position. */
export async function removeGrant(
  ctx: AppContext,
  change: { app: string; grant: string; actor: string },
): Promise<string[]> {
  await requireApp(ctx.db, change.app);
  const current = grantsIn(await ctx.access.listPolicies(), change.app);
  const position = /^\d+$/.test(change.grant) ? Number(change.grant) - 1 : -1;
  const normalised = normaliseGrant(change.grant);
  const index = position >= 0 ? position : current.indexOf(normalised);
  if (index < 0 || index >= current.length)
    throw new BulwarkError(
      'not_found',
      `app ${change.app} has no grant "${change.grant}"${current.length ? ` (grants: ${current.map((g, i) => `${i + 1}: ${g}`).join('; ')})` : ''}`,
    );
  return setGrants(ctx, {
    app: change.app,
    grants: current.filter((_, i) => i !== index),
    actor: change.actor,
  });
}
