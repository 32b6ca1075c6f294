import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { isRole, principalActor, roleWithin, type Role } from '../authz/index.ts';
import { subjectOf } from '../events/index.ts';
import type { ApiTokensTable } from '../store/index.ts';
import { groupsOf, random, roleError, roleOf, sha256, type UserContext } from './user.context.ts';
import type { Principal } from './user.types.ts';

export const MAX_TOKEN_LIFETIME = 365 * 86_400_000;
/** How long a token's last use may lag before it is written again (unless the address changed). */
const LAST_USED_RESOLUTION_MS = 60_000;

/** An API token as its owner sees it (never the secret). */
export interface TokenInfo {
  id: string;
  name: string;
  role: string;
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
  lastUsedAddress: string | null;
  revoked: boolean;
}

export const tokenInfo = (r: ApiTokensTable): TokenInfo => ({
  id: r.id,
  name: r.name,
  role: r.role,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
  lastUsedAddress: r.last_used_address,
  revoked: r.revoked_at !== null,
});

function checkToken(principal: Principal, input: { name: string; role?: string; expiresInMs: number }) {
  const role = input.role ?? principal.role;
  if (!isRole(role)) throw roleError();
  if (!roleWithin(role, principal.role))
    throw new BulwarkError(
      'forbidden',
      `a token cannot have more rights than its creator (${principal.role})`,
    );
  if (!(input.expiresInMs > 0 && input.expiresInMs <= MAX_TOKEN_LIFETIME))
    throw new BulwarkError('validation_failed', 'expiresIn must be more than 0 and at most 365 days');
  const name = String(input.name ?? '').trim();
  if (!/^[\w .:-]{1,64}$/.test(name))
    throw new BulwarkError(
      'validation_failed',
      'name must be 1-64 characters of letters, digits, space, _ . : -',
    );
  return { role, name };
}

/** API tokens (`Authorization: Bearer bwt_…`): created from a session, listed, revoked, authenticated. */
export function apiTokenUseCases(ctx: UserContext) {
  const { db, events, now } = ctx;

  /** An API token with a role no larger than its creator's; shown once, stored hashed. */
  async function createToken(
    principal: Principal,
    input: { name: string; role?: string; expiresInMs: number },
  ) {
    const { role, name } = checkToken(principal, input);
    const token = random('bwt_', 32);
    const t = now();
    const id = randomUUID();
    const expiresAt = t + input.expiresInMs;
    await events.atomically(async (tx, emit) => {
      await tx
        .insertInto('api_tokens')
        .values({
          id,
          user_id: principal.userId,
          name,
          role,
          token_hash: sha256(token),
          created_at: t,
          expires_at: expiresAt,
          last_used_at: null,
          last_used_address: null,
          revoked_at: null,
        })
        .execute();
      emit({
        type: 'api_token.created',
        actor: principalActor(principal),
        subject: subjectOf.user(principal.username),
        data: { tokenId: id, name, role, expiresAt },
      });
    });
    return { id, name, role, token, expiresAt };
  }

  async function listTokens(principal: Pick<Principal, 'userId'>): Promise<TokenInfo[]> {
    const rows = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('user_id', '=', principal.userId)
      .orderBy('created_at')
      .execute();
    return rows.map(tokenInfo);
  }

  /** Revokes one of the principal's active tokens, committed with its event. */
  async function revokeToken(principal: Principal, id: string): Promise<void> {
    await events.atomically(async (tx, emit) => {
      const res = await tx
        .updateTable('api_tokens')
        .set({ revoked_at: now() })
        .where('id', '=', id)
        .where('user_id', '=', principal.userId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) throw new BulwarkError('not_found', `no active token ${id}`);
      emit({
        type: 'api_token.revoked',
        actor: principalActor(principal),
        subject: subjectOf.user(principal.username),
        data: { tokenId: id },
      });
    });
  }

  /** Records last use, and flags use from a new address (the new address commits with its event). */
  async function noteUse(row: ApiTokensTable, username: string, address: string): Promise<void> {
    const t = now();
    const previous = row.last_used_address;
    if (previous === address && t - (row.last_used_at ?? 0) <= LAST_USED_RESOLUTION_MS) return;
    await events.atomically(async (tx, emit) => {
      await tx
        .updateTable('api_tokens')
        .set({ last_used_at: t, last_used_address: address })
        .where('id', '=', row.id)
        .execute();
      if (previous !== null && previous !== address)
        emit({
          type: 'api_token.used_from_new_address',
          actor: principalActor({ username, via: 'token', tokenId: row.id }),
          subject: subjectOf.user(username),
          data: { tokenId: row.id, address, previous },
        });
    });
  }

  /** Resolves `Authorization: Bearer bwt_…` to its principal. */
  async function resolveToken(token: string, address: string): Promise<Principal | undefined> {
    if (!token.startsWith('bwt_') || token.length > 100) return undefined;
    const row = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('token_hash', '=', sha256(token))
      .executeTakeFirst();
    if (!row || row.revoked_at !== null || row.expires_at <= now()) return undefined;
    const user = await ctx.byId(row.user_id);
    if (!user || user.disabled_at !== null) return undefined;
    // The token's role, but never more than the user holds today.
    const tokenRole = row.role as Role;
    const role = roleWithin(tokenRole, roleOf(user)) ? tokenRole : roleOf(user);
    await noteUse(row, user.username, address);
    return {
      userId: user.id,
      username: user.username,
      role,
      groups: groupsOf(user),
      via: 'token',
      tokenId: row.id,
    };
  }

  return { createToken, listTokens, revokeToken, resolveToken };
}
