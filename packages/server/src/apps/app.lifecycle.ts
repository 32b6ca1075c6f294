import { appNameProblem, BulwarkError, dataUseProblem } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import { revokeAppCertificates } from '../pki/index.ts';
import { isUniqueViolation } from '../store/index.ts';
import type { AppContext } from './app.context.ts';
import { checkGrantsPolicy, grantsDocument, grantsText, writeGrants } from './app.grants.ts';
import { requireActive, requireApp } from './app.lookup.ts';
import * as store from './app.store.ts';

export interface NewApp {
  name: string;
  purpose?: string | undefined;
  zone?: string | undefined;
  description?: string | undefined;
  grants?: readonly string[] | undefined;
}

export interface AppChange {
  purpose?: string | null | undefined;
  zone?: string | null | undefined;
  description?: string | null | undefined;
}

function checkPurpose(purpose: string | null | undefined): void {
  if (purpose === null || purpose === undefined) return;
  const problem = dataUseProblem(purpose);
  if (problem) throw new BulwarkError('validation_failed', `purpose: ${problem}`);
}

async function checkZone(ctx: AppContext, zone: string | null | undefined): Promise<void> {
  if (zone === null || zone === undefined) return;
  const zones = await ctx.access.listZones();
  if (!zones.some((z) => z.name === zone))
    throw new BulwarkError(
      'validation_failed',
      `zone ${zone} does not exist${zones.length ? ` (zones: ${zones.map((z) => z.name).join(', ')})` : ''}`,
    );
}

function checkDescription(description: string | null | undefined): void {
  if (typeof description === 'string' && description.length > 256)
    throw new BulwarkError('validation_failed', 'description must be at most 256 characters');
}

/**
 * Adds an app: its name (protocol's app name rules), purpose (a fideslang data use, or none), zone (one that
 * exists) and grants, all checked before anything is written; the app and `app.added` commit together, then
 * its grants are written through the access door.
 */
export async function addApp(ctx: AppContext, input: NewApp, actor: string): Promise<store.AppRecord> {
  const nameProblem = appNameProblem(input.name);
  if (nameProblem) throw new BulwarkError('validation_failed', nameProblem);
  checkPurpose(input.purpose);
  checkDescription(input.description);
  await checkZone(ctx, input.zone);
  if (await ctx.devices.find(input.name))
    throw new BulwarkError(
      'conflict',
      `a device has the id ${input.name}: an app of that name would share its MQTT client id; choose another name`,
    );
  const grants = input.grants ?? [];
  const purpose = input.purpose ?? null;
  const document = grantsDocument({ name: input.name, purpose }, grants);
  if (document) await checkGrantsPolicy(ctx, input.name);
  const t = ctx.now();
  const app: store.AppRecord = {
    name: input.name,
    purpose,
    zone: input.zone ?? null,
    description: input.description ?? null,
    status: 'active',
    createdAt: t,
    updatedAt: t,
    revokedAt: null,
  };
  try {
    await ctx.events.atomically(async (tx, emit) => {
      if (await store.getApp(tx, app.name))
        throw new BulwarkError('conflict', `app ${app.name} already exists`);
      await store.insertApp(tx, app);
      const data = { purpose, zone: app.zone, grants: grantsText(document) };
      emit({ type: 'app.added', actor, subject: subjectOf.app(app.name), data });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new BulwarkError('conflict', `app ${app.name} already exists`);
    throw err;
  }
  await writeGrants(ctx, { app: app.name, document, actor });
  return app;
}

/** The fields of a change that differ from the app, as stored values. */
function changesOf(app: store.AppRecord, change: AppChange): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const key of ['purpose', 'zone', 'description'] as const) {
    const value = change[key];
    if (value !== undefined && value !== app[key]) changes[key] = value;
  }
  return changes;
}

/**
 * Changes purpose, zone or description (`null` clears). Clearing the purpose of an app granted device data is
 * refused: ungrant first.
 */
export async function updateApp(
  ctx: AppContext,
  request: { name: string; change: AppChange; actor: string; grants: readonly string[] },
): Promise<store.AppRecord> {
  const { name, change, actor } = request;
  checkPurpose(change.purpose);
  checkDescription(change.description);
  await checkZone(ctx, change.zone);
  return ctx.events.atomically(async (tx, emit) => {
    const app = requireActive(await requireApp(tx, name));
    const changes = changesOf(app, change);
    if (Object.keys(changes).length === 0) return app;
    const next = { ...app, ...changes, updatedAt: ctx.now() };
    // Its grants must still hold under the new purpose (none: no device data).
    grantsDocument(next, request.grants);
    await store.updateApp(tx, name, { ...changes, updated_at: next.updatedAt });
    emit({ type: 'app.updated', actor, subject: subjectOf.app(name), data: { changes } });
    return next;
  });
}

/**
 * Revokes the app, its tokens and its certificates, with their events, in one transaction; every broker node
 * drops its sessions within a second (`app.revoked`). A revoked app stays revoked (its name is not reused).
 */
export async function revokeApp(
  ctx: AppContext,
  request: { name: string; actor: string; reason?: string | undefined },
): Promise<store.AppRecord> {
  const { name, actor, reason } = request;
  if (reason !== undefined && reason.length > 256)
    throw new BulwarkError('validation_failed', 'reason must be at most 256 characters');
  return ctx.events.atomically(async (tx, emit) => {
    const app = requireActive(await requireApp(tx, name));
    const t = ctx.now();
    await store.updateApp(tx, name, { status: 'revoked', revoked_at: t, updated_at: t });
    const revokedTokens = await store.revokeTokensOf(tx, name, t);
    const revokedCertificates = await revokeAppCertificates(tx, emit, { app: name, at: t, actor });
    emit({
      type: 'app.revoked',
      actor,
      subject: subjectOf.app(name),
      data: { ...(reason ? { reason } : {}), revokedCertificates, revokedTokens },
    });
    return { ...app, status: 'revoked', revokedAt: t, updatedAt: t };
  });
}
