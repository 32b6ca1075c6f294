import { randomUUID } from 'node:crypto';
import { subjectOf, type Subject, type SubjectData } from '../events/index.ts';
import { tokenInfo } from './api-tokens.ts';
import { groupsOf, roleOf, type UserContext } from './user.context.ts';

/**
 * Personal data of users (GDPR Art. 15 access, Art. 17 erasure): the account, its factors (metadata, never
 * secrets), sessions and API tokens. Erasure disables and anonymises the account and deletes the rest; the
 * audit log is not edited (its entries stay verifiable).
 */
export function userSubjectData(ctx: UserContext): SubjectData {
  const { db, events, now } = ctx;

  const usernameOf = (subject: Subject) => (subject.kind === 'user' ? subject.id : undefined);

  async function exportSubject(subject: Subject): Promise<Record<string, unknown>[]> {
    const username = usernameOf(subject);
    const row = username === undefined ? undefined : await ctx.byName(username);
    if (!row) return [];
    const [passkeys, codes, sessions, tokens] = await Promise.all([
      db
        .selectFrom('webauthn_credentials')
        .select(['id', 'name', 'transports', 'created_at', 'last_used_at'])
        .where('user_id', '=', row.id)
        .orderBy('created_at')
        .execute(),
      db
        .selectFrom('recovery_codes')
        .select(['created_at', 'used_at'])
        .where('user_id', '=', row.id)
        .execute(),
      db
        .selectFrom('sessions')
        .select(['state', 'address', 'created_at', 'last_seen_at', 'expires_at'])
        .where('user_id', '=', row.id)
        .orderBy('created_at')
        .execute(),
      db.selectFrom('api_tokens').selectAll().where('user_id', '=', row.id).orderBy('created_at').execute(),
    ]);
    return [
      {
        record: 'account',
        id: row.id,
        username: row.username,
        role: roleOf(row),
        groups: groupsOf(row),
        setupPending: row.password_hash === null,
        disabledAt: row.disabled_at,
        createdAt: row.created_at,
        updatedAt: row.updated_at,
      },
      { record: 'totp', enabled: row.totp_enabled === 1, enrolmentPending: row.totp_pending_secret !== null },
      ...passkeys.map((p) => ({
        record: 'passkey',
        id: p.id,
        name: p.name,
        transports: JSON.parse(p.transports) as unknown,
        createdAt: p.created_at,
        lastUsedAt: p.last_used_at,
      })),
      ...codes.map((c) => ({ record: 'recovery_code', createdAt: c.created_at, usedAt: c.used_at })),
      ...sessions.map((s) => ({
        record: 'session',
        state: s.state,
        address: s.address,
        createdAt: s.created_at,
        lastSeenAt: s.last_seen_at,
        expiresAt: s.expires_at,
      })),
      ...tokens.map((t) => ({ record: 'api_token', ...tokenInfo(t) })),
    ];
  }

  async function eraseSubject(subject: Subject, actor: string): Promise<{ erased: number }> {
    const username = usernameOf(subject);
    const row = username === undefined ? undefined : await ctx.byName(username);
    if (!row) return { erased: 0 };
    const t = now();
    return events.atomically(async (tx, emit) => {
      let erased = 0;
      for (const table of ['sessions', 'api_tokens', 'recovery_codes', 'webauthn_credentials'] as const) {
        const res = await tx.deleteFrom(table).where('user_id', '=', row.id).executeTakeFirst();
        erased += Number(res.numDeletedRows);
      }
      await tx.deleteFrom('auth_throttle').where('key', '=', `account:${row.username}`).execute();
      // The account row stays (events name its id's owner), anonymised: no name, no secrets, disabled.
      await tx
        .updateTable('users')
        .set({
          username: `erased-${randomUUID()}`,
          groups: null,
          password_hash: null,
          previous_password_hash: null,
          setup_secret_hash: null,
          setup_expires_at: null,
          totp_secret: null,
          totp_pending_secret: null,
          totp_enabled: 0,
          totp_last_step: null,
          disabled_at: row.disabled_at ?? t,
          updated_at: t,
        })
        .where('id', '=', row.id)
        .execute();
      emit({
        type: 'user.updated',
        actor,
        subject: subjectOf.user(row.username),
        data: { changes: { erased: true } },
      });
      return { erased: erased + 1 };
    });
  }

  return { module: 'users', exportSubject, eraseSubject };
}
