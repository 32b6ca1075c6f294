import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import type { AppContext } from './app.context.ts';
import { requireActive, requireApp } from './app.lookup.ts';
import * as store from './app.store.ts';

/** How long a token's last use may lag before it is written again (one write a minute per token at most). */
export const LAST_USE_RESOLUTION_MS = 60_000;
export const APP_TOKEN_PREFIX = 'bwa_';

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * A new MQTT password for the app: `bwa_` + 32 random bytes (base64url), shown once; only its sha256 is
 * stored. Without `ttlMs` it never expires (the compliance facts count such tokens).
 */
export async function createToken(
  ctx: AppContext,
  request: { app: string; ttlMs?: number | undefined; actor: string },
): Promise<{ id: string; token: string; expiresAt: number | null }> {
  const { app, ttlMs, actor } = request;
  if (ttlMs !== undefined && !(Number.isSafeInteger(ttlMs) && ttlMs > 0))
    throw new BulwarkError('validation_failed', 'ttl must be a positive duration such as 90d');
  const token = APP_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const id = randomUUID();
  return ctx.events.atomically(async (tx, emit) => {
    requireActive(await requireApp(tx, app));
    const t = ctx.now();
    const expiresAt = ttlMs === undefined ? null : t + ttlMs;
    await store.insertToken(tx, {
      id,
      app,
      token_hash: sha256(token),
      created_at: t,
      created_by: actor,
      expires_at: expiresAt,
      last_used_at: null,
      last_used_from: null,
      revoked_at: null,
    });
    emit({ type: 'app.token_created', actor, subject: subjectOf.app(app), data: { tokenId: id, expiresAt } });
    return { id, token, expiresAt };
  });
}

export async function listTokens(ctx: AppContext, app: string): Promise<store.AppTokenInfo[]> {
  await requireApp(ctx.db, app);
  return store.tokensOf(ctx.db, app);
}

/** Revokes one token at once; the broker drops the sessions it authenticated (`app.token_revoked`). */
export async function revokeToken(
  ctx: AppContext,
  request: { app: string; id: string; actor: string },
): Promise<void> {
  const { app, id, actor } = request;
  await ctx.events.atomically(async (tx, emit) => {
    await requireApp(tx, app);
    if (!(await store.revokeToken(tx, { app, id, at: ctx.now() })))
      throw new BulwarkError('not_found', `app ${app} has no active token ${id}`);
    emit({ type: 'app.token_revoked', actor, subject: subjectOf.app(app), data: { tokenId: id } });
  });
}

export type TokenCheck =
  { ok: true; tokenId: string; expiresAt: number | null } | { ok: false; reason: string };

/**
 * Whether `password` is an active token of `app`; a use is recorded (time and address), at most once a
 * minute per token. Tokens are looked up by their sha256, never compared or logged in clear.
 */
export async function authenticateToken(
  ctx: AppContext,
  attempt: { app: string; password: Buffer; remoteAddress: string },
): Promise<TokenCheck> {
  const password = attempt.password.toString('utf8');
  if (!password.startsWith(APP_TOKEN_PREFIX) || password.length > 256)
    return { ok: false, reason: 'the password is not an app token' };
  const row = await store.tokenByHash(ctx.db, sha256(password));
  if (!row || row.app !== attempt.app) return { ok: false, reason: `not a token of app ${attempt.app}` };
  if (row.revoked_at !== null) return { ok: false, reason: `token ${row.id} is revoked` };
  const t = ctx.now();
  if (row.expires_at !== null && Number(row.expires_at) <= t)
    return { ok: false, reason: `token ${row.id} has expired` };
  if (row.last_used_at === null || t - Number(row.last_used_at) >= LAST_USE_RESOLUTION_MS)
    await store.touchToken(ctx.db, { id: row.id, at: t, from: attempt.remoteAddress });
  return { ok: true, tokenId: row.id, expiresAt: row.expires_at === null ? null : Number(row.expires_at) };
}
