import { roles, type Role } from '../authz/index.ts';
import { subjectOf, type ModuleFacts } from '../events/index.ts';
import { MAX_TOKEN_LIFETIME } from './api-tokens.ts';
import { roleOf, type UserContext } from './user.context.ts';

const DAY_MS = 86_400_000;

/** What the users module states for the compliance checks (ETSI EN 303 645 5.1, IEC 62443-4-2 CR 1.1/1.7/1.11). */
export interface UserFacts {
  /** Enabled accounts per role. */
  accountsByRole: Record<Role, number>;
  disabledAccounts: number;
  /** Enabled accounts that finished setup and have no second factor (TOTP or a passkey). */
  withoutSecondFactor: number;
  /** Of those, the ones whose role or the install-wide setting requires one (they can only enrol). */
  withoutRequiredSecondFactor: number;
  require2faForAll: boolean;
  apiTokens: {
    /** Not revoked and not expired. */
    active: number;
    /** Active tokens without an expiry within the longest lifetime allowed (365 days). */
    withoutExpiry: number;
    /** Active tokens created more than `olderThanDays` days ago. */
    older: number;
    olderThanDays: number;
  };
  lockout: { threshold: number; lockoutMs: number; backoffAfter: number; backoffBaseMs: number };
  sessions: { idleMs: number; absoluteMs: number; stepUpWindowMs: number };
}

/** An account as the compliance checks read it (the consumer's `AccountFact`, stated here). */
export interface AccountComplianceFact {
  username: string;
  role: Role;
  disabled: boolean;
  /** Setup finished (a password set). */
  setupComplete: boolean;
  /** A TOTP or a passkey enrolled. */
  secondFactor: boolean;
  /** The latest `auth.sign_in_succeeded` in the audit log (password or setup sign-in). */
  lastSignInAt: number | null;
  createdAt: number;
}

/** Per account and per active API token (ETSI EN 303 645 5.1, IEC 62443-4-2 CR 1.1/1.5/1.7/1.11/2.6). */
export interface UserComplianceFacts {
  accounts: AccountComplianceFact[];
  require2faForAll: boolean;
  lockout: { threshold: number; lockoutMs: number };
  sessions: { idleMs: number; absoluteMs: number };
  /** Not revoked, not expired. */
  apiTokens: {
    id: string;
    username: string;
    createdAt: number;
    expiresAt: number;
    lastUsedAt: number | null;
  }[];
}

async function accountComplianceFacts(ctx: UserContext): Promise<AccountComplianceFact[]> {
  const [rows, signIns] = await Promise.all([
    ctx.db.selectFrom('users').selectAll().orderBy('username').execute(),
    ctx.lastSignIns ? ctx.lastSignIns() : Promise.resolve(new Map<string, number>()),
  ]);
  const accounts: AccountComplianceFact[] = [];
  for (const row of rows) {
    accounts.push({
      username: row.username,
      role: roleOf(row),
      disabled: row.disabled_at !== null,
      setupComplete: row.password_hash !== null,
      secondFactor: await ctx.hasFactor(row.id, row),
      lastSignInAt: signIns.get(subjectOf.user(row.username)) ?? null,
      createdAt: Number(row.created_at),
    });
  }
  return accounts;
}

async function activeTokens(ctx: UserContext): Promise<UserComplianceFacts['apiTokens']> {
  const rows = await ctx.db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select([
      'api_tokens.id',
      'users.username',
      'api_tokens.created_at',
      'api_tokens.expires_at',
      'api_tokens.last_used_at',
    ])
    .where('api_tokens.revoked_at', 'is', null)
    .where('api_tokens.expires_at', '>', ctx.now())
    .orderBy('api_tokens.created_at')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    username: r.username,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
  }));
}

/** The accounts, the settings that protect them and the active API tokens, for the compliance checks. */
export async function userComplianceFacts(ctx: UserContext): Promise<UserComplianceFacts> {
  const [accounts, apiTokens] = await Promise.all([accountComplianceFacts(ctx), activeTokens(ctx)]);
  return {
    accounts,
    require2faForAll: ctx.settings.require2faForAll,
    lockout: { threshold: ctx.throttle.settings.threshold, lockoutMs: ctx.throttle.settings.lockoutMs },
    sessions: { idleMs: ctx.settings.sessionIdleMs, absoluteMs: ctx.settings.sessionAbsoluteMs },
    apiTokens,
  };
}

/** The facts, read from the account tables; API tokens older than `tokenAgeDays` are counted apart. */
export function userFacts(ctx: UserContext, options: { tokenAgeDays: number }): ModuleFacts<UserFacts> {
  const { db, now, settings, throttle } = ctx;

  async function accountFacts() {
    const rows = await db.selectFrom('users').selectAll().execute();
    const accountsByRole = Object.fromEntries(roles.map((r) => [r, 0])) as Record<Role, number>;
    let disabledAccounts = 0;
    let withoutSecondFactor = 0;
    let withoutRequiredSecondFactor = 0;
    for (const row of rows) {
      if (row.disabled_at !== null) {
        disabledAccounts++;
        continue;
      }
      accountsByRole[roleOf(row)]++;
      if (row.password_hash === null || (await ctx.hasFactor(row.id, row))) continue;
      withoutSecondFactor++;
      if (ctx.requires2fa(roleOf(row))) withoutRequiredSecondFactor++;
    }
    return { accountsByRole, disabledAccounts, withoutSecondFactor, withoutRequiredSecondFactor };
  }

  async function tokenFacts(t: number) {
    const rows = await db
      .selectFrom('api_tokens')
      .select(['created_at', 'expires_at'])
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', t)
      .execute();
    const olderThan = t - options.tokenAgeDays * DAY_MS;
    return {
      active: rows.length,
      withoutExpiry: rows.filter((r) => r.expires_at - r.created_at > MAX_TOKEN_LIFETIME).length,
      older: rows.filter((r) => r.created_at < olderThan).length,
      olderThanDays: options.tokenAgeDays,
    };
  }

  return {
    async facts(): Promise<UserFacts> {
      return {
        ...(await accountFacts()),
        require2faForAll: settings.require2faForAll,
        apiTokens: await tokenFacts(now()),
        lockout: { ...throttle.settings },
        sessions: {
          idleMs: settings.sessionIdleMs,
          absoluteMs: settings.sessionAbsoluteMs,
          stepUpWindowMs: settings.stepUpWindowMs,
        },
      };
    },
  };
}
