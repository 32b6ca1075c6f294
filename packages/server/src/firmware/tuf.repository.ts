import { isUniqueViolation } from '../store/index.ts';
import {
  parseMetadata,
  type RoleStatus,
  type RootChange,
  type RootKeysInput,
  type TufRepositoryDeps,
  type TufStatus,
} from './tuf.metadata.ts';
import { announce, currentRoot, resign, roleInfo } from './tuf.online.ts';
import { prepareInitialRoot, prepareRootChange, prepareTargets } from './tuf.prepare.ts';
import { publish } from './tuf.publish.ts';
import * as store from './tuf.store.ts';
import { tufRoles, type TufRole } from './tuf.store.ts';

export {
  SPEC_VERSION,
  tufTime,
  parseMetadata,
  roleOfDocument,
  serialize,
  signDocument,
  type TufExpiry,
  type TargetEntry,
  type TufRepositoryDeps,
  type RoleStatus,
  type TufStatus,
  type RootKeysInput,
  type RootChange,
} from './tuf.metadata.ts';

async function status(ctx: TufRepositoryDeps): Promise<TufStatus> {
  const { db } = ctx;
  const root = await currentRoot(db);
  const roles: Partial<Record<TufRole, RoleStatus>> = {};
  let targetsValid = false;
  if (root) {
    for (const role of tufRoles) {
      const row = await store.latest(db, role);
      if (!row) continue;
      roles[role] = { version: row.version, expires: row.expires_at, ...roleInfo(root.md.signed, role) };
    }
    const targetsRow = await store.latest(db, 'targets');
    if (targetsRow) {
      try {
        root.md.verifyDelegate('targets', parseMetadata('targets', targetsRow.body));
        targetsValid = true;
      } catch {
        targetsValid = false;
      }
    }
  }
  const pending = (await db.selectFrom('tuf_pending').select('role').execute()).map((r) => r.role as TufRole);
  return { initialized: root !== undefined, roles, pending, targetsValid };
}

/** Keeps snapshot and timestamp fresh; safe to call from several nodes (a lost race is ignored). */
async function refresh(ctx: TufRepositoryDeps): Promise<TufRole[]> {
  try {
    const published = await ctx.db.transaction().execute((trx) => resign(ctx, trx));
    await announce(ctx, 'system', published);
    return published.map((p) => p.role);
  } catch (err) {
    if (isUniqueViolation(err)) return [];
    throw err;
  }
}

/** The bytes of a metadata file by its served name, or undefined. */
async function file(ctx: TufRepositoryDeps, name: string): Promise<string | undefined> {
  if (name === 'timestamp.json') return (await store.latest(ctx.db, 'timestamp'))?.body;
  if (name === 'root.json') return (await store.latest(ctx.db, 'root'))?.body;
  const m = /^([1-9]\d{0,9})\.(root|snapshot|targets)\.json$/.exec(name);
  if (!m) return undefined;
  return (await store.byVersion(ctx.db, m[2] as TufRole, Number(m[1])))?.body;
}

/**
 * The TUF repository (TUF specification 1.0, with consistent snapshots). Root and targets metadata are signed
 * offline by their keys' holders and uploaded; the server holds only the snapshot and timestamp keys, sealed
 * with the master key, re-signs those two whenever targets change and before they expire.
 */
export function createTufRepository(deps: TufRepositoryDeps) {
  return {
    status: () => status(deps),
    prepareInitialRoot: (input: RootKeysInput, actor: string) => prepareInitialRoot(deps, input, actor),
    prepareRootChange: (change: RootChange, actor: string) => prepareRootChange(deps, change, actor),
    prepareTargets: (actor: string) => prepareTargets(deps, actor),
    pending: async (role: TufRole) => (await store.getPending(deps.db, role))?.body,
    publish: (input: unknown, actor: string) => publish(deps, input, actor),
    refresh: () => refresh(deps),
    file: (name: string) => file(deps, name),
  };
}

export type TufRepository = ReturnType<typeof createTufRepository>;
