import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { isRole, roleWithin, type Role } from '../authz/index.ts';
import { subjectOf } from '../events/index.ts';
import type { UsersTable } from '../store/index.ts';
import { checkGroups, checkUsername, random, roleError, sha256, type UserContext } from './user.context.ts';
import type { User } from './user.types.ts';

type Recorded = Record<string, string | boolean | string[] | null>;

/** The row changes and the event's record of an update, validated. */
function updateOf(
  changes: { role?: string; groups?: unknown; disabled?: boolean },
  t: number,
): { set: Partial<UsersTable>; recorded: Recorded } {
  const set: Partial<UsersTable> = { updated_at: t };
  const recorded: Recorded = {};
  if (changes.role !== undefined) {
    if (!isRole(changes.role)) throw roleError();
    set.role = changes.role;
    recorded.role = changes.role;
  }
  if (changes.groups !== undefined) {
    const groups = checkGroups(changes.groups);
    set.groups = groups === null ? null : JSON.stringify(groups);
    recorded.groups = groups;
  }
  if (changes.disabled !== undefined) {
    set.disabled_at = changes.disabled ? t : null;
    recorded.disabled = changes.disabled;
  }
  return { set, recorded };
}

/** Accounts: created without a password (a one-time setup secret instead), listed, changed, disabled, reset. */
export function accountUseCases(ctx: UserContext) {
  const { db, events, now, settings } = ctx;

  /** Creates an account with no password: it gets a one-time setup secret to exchange at first sign-in. */
  async function create(
    input: { username: string; role: string; groups?: unknown },
    actor: string,
    creatorRole?: Role,
  ) {
    const username = checkUsername(input.username);
    if (!isRole(input.role)) throw roleError();
    if (creatorRole && !roleWithin(input.role, creatorRole))
      throw new BulwarkError('forbidden', 'cannot create a user with more rights than your own');
    const groups = checkGroups(input.groups);
    const secret = random('bws_', 24);
    const t = now();
    const setupExpiresAt = t + settings.setupSecretTtlMs;
    const row: UsersTable = {
      id: randomUUID(),
      username,
      role: input.role,
      groups: groups === null ? null : JSON.stringify(groups),
      password_hash: null,
      previous_password_hash: null,
      setup_secret_hash: sha256(secret),
      setup_expires_at: setupExpiresAt,
      totp_secret: null,
      totp_pending_secret: null,
      totp_enabled: 0,
      totp_last_step: null,
      disabled_at: null,
      created_at: t,
      updated_at: t,
    };
    const role = input.role;
    try {
      await events.atomically(async (tx, emit) => {
        await tx.insertInto('users').values(row).execute();
        emit({ type: 'user.created', actor, subject: subjectOf.user(username), data: { role, groups } });
      });
    } catch (err) {
      if (await ctx.byName(username)) throw new BulwarkError('conflict', `user ${username} already exists`);
      throw err;
    }
    return { user: await ctx.toUser(row), setupSecret: secret, setupExpiresAt };
  }

  async function count(): Promise<number> {
    const r = await db.selectFrom('users').select(db.fn.countAll<number>().as('n')).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async function list(): Promise<User[]> {
    const rows = await db.selectFrom('users').selectAll().orderBy('username').execute();
    return Promise.all(rows.map(ctx.toUser));
  }

  /**
   * Role, groups or disabled changes; every such privilege change ends the user's sessions (and disabling
   * revokes the API tokens), committed with its event.
   */
  async function update(
    username: string,
    changes: { role?: string; groups?: unknown; disabled?: boolean },
    actor: string,
  ): Promise<User> {
    const row = await ctx.requireUser(username);
    const t = now();
    const { set, recorded } = updateOf(changes, t);
    await events.atomically(async (tx, emit) => {
      await tx.updateTable('users').set(set).where('id', '=', row.id).execute();
      await tx.deleteFrom('sessions').where('user_id', '=', row.id).execute();
      if (changes.disabled)
        await tx
          .updateTable('api_tokens')
          .set({ revoked_at: t })
          .where('user_id', '=', row.id)
          .where('revoked_at', 'is', null)
          .execute();
      emit({
        type: 'user.updated',
        actor,
        subject: subjectOf.user(row.username),
        data: { changes: recorded },
      });
    });
    return ctx.toUser({ ...row, ...set });
  }

  /** A new setup secret (password and factors are reset): for a user who lost everything. */
  async function resetSetup(username: string, actor: string) {
    const row = await ctx.requireUser(username);
    const secret = random('bws_', 24);
    const t = now();
    const setupExpiresAt = t + settings.setupSecretTtlMs;
    await events.atomically(async (tx, emit) => {
      await tx
        .updateTable('users')
        .set({
          setup_secret_hash: sha256(secret),
          setup_expires_at: setupExpiresAt,
          password_hash: null,
          totp_enabled: 0,
          totp_secret: null,
          totp_pending_secret: null,
          updated_at: t,
        })
        .where('id', '=', row.id)
        .execute();
      await tx.deleteFrom('sessions').where('user_id', '=', row.id).execute();
      await tx.deleteFrom('recovery_codes').where('user_id', '=', row.id).execute();
      await tx.deleteFrom('webauthn_credentials').where('user_id', '=', row.id).execute();
      emit({
        type: 'user.updated',
        actor,
        subject: subjectOf.user(row.username),
        data: { changes: { setupReset: true } },
      });
    });
    return { setupSecret: secret, setupExpiresAt };
  }

  return {
    create,
    count,
    list,
    get: async (username: string): Promise<User> => ctx.toUser(await ctx.requireUser(username)),
    update,
    resetSetup,
  };
}
