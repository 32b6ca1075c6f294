import { principalActor } from '../authz/index.ts';
import { subjectOf } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import { sha256, random, groupsOf, roleOf, type UserContext } from './user.context.ts';
import type { Principal, SessionState } from './user.types.ts';

/** A principal that came with a session cookie (the steps of sign-in and enrolment act on that session). */
export type SessionPrincipal = Principal & { sessionIdHash: string };

export interface SessionTicket {
  /** The cookie value: shown to the client once, stored only as a hash. */
  id: string;
  state: SessionState;
  csrfToken: string;
  expiresAt: number;
}

/** How long a session's last-seen time may lag before it is written again (fewer writes per request). */
const LAST_SEEN_RESOLUTION_MS = 10_000;

/** Sessions: created at each authentication step, validated with idle and absolute timeouts, ended. */
export function sessionUseCases(ctx: UserContext) {
  const { db, events, now, settings } = ctx;

  /** A new session, written through `tx` (the transaction of the authentication step that opens it). */
  async function newSession(
    tx: DbOrTx,
    opened: { userId: string; state: SessionState; address: string },
  ): Promise<SessionTicket> {
    const { userId, state, address } = opened;
    const id = random('', 32);
    const t = now();
    const ticket: SessionTicket = {
      id,
      state,
      csrfToken: random('', 24),
      expiresAt: t + settings.sessionAbsoluteMs,
    };
    await tx
      .insertInto('sessions')
      .values({
        id_hash: sha256(id),
        user_id: userId,
        state,
        csrf_token: ticket.csrfToken,
        challenge: null,
        address,
        created_at: t,
        last_seen_at: t,
        expires_at: ticket.expiresAt,
      })
      .execute();
    return ticket;
  }

  /** Replaces the session with a new id in a new state (rotation at every privilege step), through `tx`. */
  async function rotate(
    tx: DbOrTx,
    current: SessionPrincipal,
    next: { state: SessionState; address: string },
  ): Promise<SessionTicket> {
    await tx.deleteFrom('sessions').where('id_hash', '=', current.sessionIdHash).execute();
    return newSession(tx, { userId: current.userId, ...next });
  }

  /** Resolves a session cookie; enforces idle and absolute timeouts and slides the idle window. */
  async function resolveSession(cookie: string): Promise<SessionPrincipal | undefined> {
    if (!cookie || cookie.length > 100) return undefined;
    const idHash = sha256(cookie);
    const session = await db
      .selectFrom('sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    const t = now();
    if (!session) return undefined;
    if (session.expires_at <= t || t - session.last_seen_at > settings.sessionIdleMs) {
      await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
      return undefined;
    }
    const row = await ctx.byId(session.user_id);
    if (!row || row.disabled_at !== null) return undefined;
    if (t - session.last_seen_at > LAST_SEEN_RESOLUTION_MS)
      await db.updateTable('sessions').set({ last_seen_at: t }).where('id_hash', '=', idHash).execute();
    return {
      userId: row.id,
      username: row.username,
      role: roleOf(row),
      groups: groupsOf(row),
      via: 'session',
      sessionState: session.state as SessionState,
      csrfToken: session.csrf_token,
      sessionIdHash: idHash,
      authenticatedAt: session.created_at,
    };
  }

  /** Ends the caller's session, or with `everywhere` every session of the account; committed with its event. */
  async function signOut(
    principal: Principal & { sessionIdHash?: string },
    everywhere: boolean,
  ): Promise<number> {
    return events.atomically(async (tx, emit) => {
      let query = tx.deleteFrom('sessions').where('user_id', '=', principal.userId);
      // Without `everywhere`, only the caller's own session ends (an API token has none to end).
      if (!everywhere) query = query.where('id_hash', '=', principal.sessionIdHash ?? '');
      const res = await query.executeTakeFirst();
      const n = Number(res.numDeletedRows);
      emit({
        type: 'auth.signed_out',
        actor: principalActor(principal),
        subject: subjectOf.user(principal.username),
        data: { everywhere, sessions: n },
      });
      return n;
    });
  }

  return { newSession, rotate, resolveSession, signOut };
}

export type SessionUseCases = ReturnType<typeof sessionUseCases>;
