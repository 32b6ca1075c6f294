import type { ModuleFacts } from '../events/index.ts';
import type { AppContext } from './app.context.ts';

/**
 * What the apps module states for the compliance checks (least privilege and purpose limitation for
 * application principals; credentials that never expire; IEC 62443-4-2 CR 1.5, GDPR Art. 5(1)(b)).
 */
export interface AppFacts {
  apps: {
    active: number;
    revoked: number;
    /** Active apps with a declared purpose (a fideslang data use). */
    withPurpose: number;
    /** Active apps without one (they cannot be granted device data). */
    withoutPurpose: string[];
  };
  tokens: {
    /** Not revoked and not expired, of active apps. */
    active: number;
    /** Active tokens without an expiry. */
    withoutExpiry: number;
    /** Active tokens never used. */
    neverUsed: number;
    /** The newest use of any token; null: none. */
    lastUsedAt: number | null;
  };
}

export function appFacts(ctx: AppContext): ModuleFacts<AppFacts> {
  async function appCounts(): Promise<AppFacts['apps']> {
    const rows = await ctx.db
      .selectFrom('apps')
      .select(['name', 'status', 'purpose'])
      .orderBy('name')
      .execute();
    const active = rows.filter((r) => r.status === 'active');
    return {
      active: active.length,
      revoked: rows.length - active.length,
      withPurpose: active.filter((r) => r.purpose !== null).length,
      withoutPurpose: active.filter((r) => r.purpose === null).map((r) => r.name),
    };
  }

  async function tokenCounts(t: number): Promise<AppFacts['tokens']> {
    const rows = await ctx.db
      .selectFrom('app_tokens')
      .innerJoin('apps', 'apps.name', 'app_tokens.app')
      .select(['app_tokens.expires_at', 'app_tokens.last_used_at'])
      .where('apps.status', '=', 'active')
      .where('app_tokens.revoked_at', 'is', null)
      .execute();
    const active = rows.filter((r) => r.expires_at === null || Number(r.expires_at) > t);
    const uses = active.flatMap((r) => (r.last_used_at === null ? [] : [Number(r.last_used_at)]));
    return {
      active: active.length,
      withoutExpiry: active.filter((r) => r.expires_at === null).length,
      neverUsed: active.length - uses.length,
      lastUsedAt: uses.length ? Math.max(...uses) : null,
    };
  }

  return {
    async facts() {
      return { apps: await appCounts(), tokens: await tokenCounts(ctx.now()) };
    },
  };
}

/**
 * The apps module's compliance facts (the `apps` source of the compliance engine): every app with its status
 * and purpose, and its tokens in force (not revoked, not expired) for the expiry checks.
 */
export interface AppComplianceFacts {
  apps: {
    name: string;
    status: string;
    purpose: string | null;
    tokens: { id: string; createdAt: number; expiresAt: number | null; lastUsedAt: number | null }[];
  }[];
}

export async function appComplianceFacts(ctx: Pick<AppContext, 'db' | 'now'>): Promise<AppComplianceFacts> {
  const t = ctx.now();
  const [apps, tokens] = await Promise.all([
    ctx.db.selectFrom('apps').select(['name', 'status', 'purpose']).orderBy('name').execute(),
    ctx.db
      .selectFrom('app_tokens')
      .select(['id', 'app', 'created_at', 'expires_at', 'last_used_at'])
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t)]))
      .orderBy('created_at')
      .orderBy('id')
      .execute(),
  ]);
  return {
    apps: apps.map((a) => ({
      name: a.name,
      status: a.status,
      purpose: a.purpose,
      tokens: tokens
        .filter((k) => k.app === a.name)
        .map((k) => ({
          id: k.id,
          createdAt: Number(k.created_at),
          expiresAt: k.expires_at === null ? null : Number(k.expires_at),
          lastUsedAt: k.last_used_at === null ? null : Number(k.last_used_at),
        })),
    })),
  };
}
