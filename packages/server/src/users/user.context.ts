import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { twoFactorRoles, type Role } from '../authz/index.ts';
import type { EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db, DbOrTx, UsersTable } from '../store/index.ts';
import type { Throttle } from './throttle.ts';
import type { User } from './user.types.ts';

export interface UserServiceDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  throttle: Throttle;
  now: () => number;
  settings: {
    require2faForAll: boolean;
    sessionIdleMs: number;
    sessionAbsoluteMs: number;
    setupSecretTtlMs: number;
    /** Factor and credential management needs an authentication (second factor) at most this old. */
    stepUpWindowMs: number;
  };
  /**
   * The latest successful sign-in per account, keyed `user:<name>` (the audit log's `auth.sign_in_succeeded`,
   * bound by the composition root); without it the compliance facts read no sign-in.
   */
  lastSignIns?: (() => Promise<ReadonlyMap<string, number>>) | undefined;
}

export const usernamePattern = /^[a-z0-9][a-z0-9_.-]{1,63}$/;
const groupPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
export const random = (prefix: string, bytes = 32) => prefix + randomBytes(bytes).toString('base64url');

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export const roleError = () =>
  new BulwarkError(
    'validation_failed',
    'role must be one of admin, security-officer, operator, auditor, viewer',
  );

export function checkUsername(username: string): string {
  const name = typeof username === 'string' ? username.trim().toLowerCase() : '';
  if (!usernamePattern.test(name)) {
    throw new BulwarkError(
      'validation_failed',
      'username must be 2-64 characters of a-z 0-9 _ . -, starting with a letter or digit',
    );
  }
  return name;
}

export function checkGroups(groups: unknown): string[] | null {
  if (groups === null || groups === undefined) return null;
  if (!Array.isArray(groups)) throw groupsError();
  const names: string[] = [];
  for (const g of groups as unknown[]) {
    if (typeof g !== 'string' || !groupPattern.test(g)) throw groupsError();
    names.push(g);
  }
  return [...new Set(names)].sort();
}

const groupsError = () =>
  new BulwarkError(
    'validation_failed',
    'groups must be a list of device group names (or null for all groups)',
  );

/** The stored form of a role and groups, read back (the store holds what `checkGroups`/`isRole` let in). */
export const roleOf = (row: Pick<UsersTable, 'role'>) => row.role as Role;
export const groupsOf = (row: Pick<UsersTable, 'groups'>): string[] | null =>
  row.groups === null ? null : (JSON.parse(row.groups) as string[]);

export interface Factors {
  totp: boolean;
  webauthn: number;
  recoveryCodesLeft: number;
}

/** What the use cases share: the deps, and reads of the account rows. */
export function createUserContext(deps: UserServiceDeps) {
  const { db, settings } = deps;

  const requires2fa = (role: Role) => settings.require2faForAll || twoFactorRoles.includes(role);

  const byName = (username: string, q: DbOrTx = db) =>
    q.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  const byId = (id: string, q: DbOrTx = db) =>
    q.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();

  /** The account's factors, read through `q` (inside a change, its transaction). */
  async function factorsOf(userId: string, row?: UsersTable, q: DbOrTx = db): Promise<Factors> {
    const u =
      row ?? (await q.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirstOrThrow());
    const webauthn = await q
      .selectFrom('webauthn_credentials')
      .select(q.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    const codes = await q
      .selectFrom('recovery_codes')
      .select(q.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return {
      totp: u.totp_enabled === 1,
      webauthn: Number(webauthn?.n ?? 0),
      recoveryCodesLeft: Number(codes?.n ?? 0),
    };
  }

  const hasFactor = async (userId: string, row?: UsersTable, q: DbOrTx = db): Promise<boolean> => {
    const f = await factorsOf(userId, row, q);
    return f.totp || f.webauthn > 0;
  };

  async function toUser(row: UsersTable): Promise<User> {
    const role = roleOf(row);
    return {
      id: row.id,
      username: row.username,
      role,
      groups: groupsOf(row),
      twoFactor: await factorsOf(row.id, row),
      twoFactorRequired: requires2fa(role),
      setupPending: row.password_hash === null,
      disabled: row.disabled_at !== null,
      createdAt: row.created_at,
    };
  }

  async function requireUser(username: string): Promise<UsersTable> {
    const row = await byName(checkUsername(username));
    if (!row) throw new BulwarkError('not_found', `user ${username} does not exist`);
    return row;
  }

  return { ...deps, requires2fa, byName, byId, factorsOf, hasFactor, toUser, requireUser };
}

export type UserContext = ReturnType<typeof createUserContext>;
