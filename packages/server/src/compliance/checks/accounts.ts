import type { AccountFact } from '../facts.ts';
import type { CheckDefinition, CheckInput, Evidence } from './types.ts';
import { count, humanDuration, isoDate, outcome } from './util.ts';

const privileged = new Set<AccountFact['role']>(['admin', 'security-officer']);
const enabled = (accounts: AccountFact[]) => accounts.filter((a) => !a.disabled);
const inUse = (accounts: AccountFact[]) => accounts.filter((a) => !a.disabled && a.setupComplete);

const accountEvidence = (a: AccountFact, detail: string): Evidence => ({
  kind: 'account',
  id: a.username,
  detail: `${a.role}: ${detail}`,
});

const privilegedSecondFactor: CheckDefinition = {
  id: 'accounts.privileged-second-factor',
  title: 'Admins and security officers sign in with a second factor',
  severity: 'critical',
  rationale:
    'A stolen password of a privileged account gives control of the whole fleet; a second factor stops that (IEC 62443-4-2 CR 1.1 RE 2).',
  remediation:
    'Have each account named enrol TOTP or a security key in the console; `bulwark admin reset <username>` makes the account set up its factors again.',
  reads: ['users'],
  run({ facts }) {
    const accounts = inUse(facts.users.accounts).filter((a) => privileged.has(a.role));
    const evidence = accounts
      .filter((a) => !a.secondFactor)
      .map((a) => accountEvidence(a, 'no second factor'));
    return outcome({
      evidence,
      examined: accounts.length,
      pass: `all ${count(accounts.length, 'privileged account')} have a second factor`,
      fail: (e) => `${e.length} of ${accounts.length} privileged accounts have no second factor`,
    });
  },
};

const secondFactorPolicy: CheckDefinition = {
  id: 'accounts.second-factor-policy',
  title: 'Accounts meet the baseline second-factor policy',
  severity: 'high',
  rationale: 'The baseline may require a second factor for every account, not only the privileged ones.',
  remediation:
    'Set auth.require2faForAll (BULWARK_REQUIRE_2FA_FOR_ALL=true) and have the accounts named enrol a second factor; or set accounts.secondFactor: privileged in the baseline.',
  reads: ['users'],
  run({ facts, baseline }) {
    const accounts = inUse(facts.users.accounts);
    const evidence: Evidence[] = [];
    if (baseline.accounts.secondFactor === 'all') {
      if (!facts.users.require2faForAll)
        evidence.push({
          kind: 'setting',
          id: 'auth.require2faForAll',
          detail: 'false: accounts other than admin and security-officer may sign in without a second factor',
        });
      for (const a of accounts) if (!a.secondFactor) evidence.push(accountEvidence(a, 'no second factor'));
    }
    return outcome({
      evidence,
      examined: accounts.length,
      pass:
        baseline.accounts.secondFactor === 'all'
          ? `all ${count(accounts.length, 'account')} have a second factor, and the platform requires it`
          : `the baseline requires a second factor for privileged accounts only (${count(accounts.length, 'account')})`,
      fail: (e) =>
        `the baseline requires a second factor for every account: ${e.filter((x) => x.kind === 'account').length} of ${accounts.length} accounts have none${facts.users.require2faForAll ? '' : ', and the platform does not require it'}`,
    });
  },
};

/** An account's newest use: a sign-in or one of its API tokens used (null: neither yet). */
interface LastUse {
  at: number;
  how: 'sign-in' | 'token';
  token?: string;
}

function lastUses(facts: CheckInput['facts']): Map<string, LastUse> {
  const uses = new Map<string, LastUse>();
  for (const a of facts.users.accounts)
    if (a.lastSignInAt !== null) uses.set(a.username, { at: a.lastSignInAt, how: 'sign-in' });
  for (const t of facts.users.apiTokens) {
    const known = uses.get(t.username);
    if (t.lastUsedAt !== null && (known === undefined || t.lastUsedAt > known.at))
      uses.set(t.username, { at: t.lastUsedAt, how: 'token', token: t.id });
  }
  return uses;
}

function dormantDetail(a: AccountFact, use: LastUse | undefined, limit: number): string {
  if (use === undefined)
    return `never signed in nor used an API token since it was created on ${isoDate(a.createdAt)}`;
  const last =
    use.how === 'sign-in'
      ? `last signed in ${isoDate(use.at)}`
      : `last used through API token ${use.token ?? ''} on ${isoDate(use.at)}`;
  return `${last}, more than ${humanDuration(limit)} ago`;
}

const dormant: CheckDefinition = {
  id: 'accounts.dormant',
  title: 'Dormant accounts are disabled',
  severity: 'medium',
  rationale: 'An unused account keeps its access and is an easy target because nobody notices its use.',
  remediation:
    'Disable accounts that are no longer needed (console: Accounts, or the users API), or adjust accounts.dormantAfter in the baseline.',
  reads: ['users'],
  run({ facts, baseline, now }) {
    const limit = baseline.accounts.dormantAfter;
    const accounts = enabled(facts.users.accounts);
    // In use: signed in, or one of its API tokens used (an automation account never signs in).
    const uses = lastUses(facts);
    const evidence = accounts
      .filter((a) => (uses.get(a.username)?.at ?? a.createdAt) < now - limit)
      .map((a) => accountEvidence(a, dormantDetail(a, uses.get(a.username), limit)));
    return outcome({
      evidence,
      examined: accounts.length,
      pass: `all ${count(accounts.length, 'enabled account')} signed in or used an API token within ${humanDuration(limit)}`,
      fail: (e) =>
        `${e.length} of ${accounts.length} enabled accounts have neither signed in nor used an API token for ${humanDuration(limit)}`,
    });
  },
};

const lockout: CheckDefinition = {
  id: 'accounts.lockout',
  title: 'Repeated failed sign-ins lock the account',
  severity: 'high',
  rationale: 'Without a strict lockout, passwords can be guessed online (ETSI EN 303 645 5.1-5).',
  remediation:
    'Lower auth.lockoutThreshold and raise auth.lockoutDuration in the configuration to meet accounts.maxLockoutThreshold and accounts.minLockoutDuration.',
  reads: ['users'],
  run({ facts, baseline }) {
    const { threshold, lockoutMs } = facts.users.lockout;
    const { maxLockoutThreshold, minLockoutDuration } = baseline.accounts;
    const evidence: Evidence[] = [];
    if (threshold > maxLockoutThreshold)
      evidence.push({
        kind: 'setting',
        id: 'auth.lockoutThreshold',
        detail: `${threshold} failures before lockout, more than ${maxLockoutThreshold}`,
      });
    if (lockoutMs < minLockoutDuration)
      evidence.push({
        kind: 'setting',
        id: 'auth.lockoutDuration',
        detail: `locks for ${humanDuration(lockoutMs)}, less than ${humanDuration(minLockoutDuration)}`,
      });
    return outcome({
      evidence,
      examined: 2,
      pass: `lockout after ${threshold} failures for ${humanDuration(lockoutMs)}`,
      fail: () =>
        `lockout after ${threshold} failures for ${humanDuration(lockoutMs)} is weaker than the baseline (at most ${maxLockoutThreshold} failures, at least ${humanDuration(minLockoutDuration)})`,
    });
  },
};

const sessionLimits: CheckDefinition = {
  id: 'accounts.session-limits',
  title: 'Sessions end after inactivity and after a maximum lifetime',
  severity: 'medium',
  rationale: 'Long sessions left open on shared or stolen devices give access without a sign-in.',
  remediation:
    'Lower auth.sessionIdle and auth.sessionAbsolute in the configuration to the baseline sessions.maxIdle and sessions.maxAbsolute.',
  reads: ['users'],
  run({ facts, baseline }) {
    const { idleMs, absoluteMs } = facts.users.sessions;
    const evidence: Evidence[] = [];
    if (idleMs > baseline.sessions.maxIdle)
      evidence.push({
        kind: 'setting',
        id: 'auth.sessionIdle',
        detail: `idle sessions end after ${humanDuration(idleMs)}, more than ${humanDuration(baseline.sessions.maxIdle)}`,
      });
    if (absoluteMs > baseline.sessions.maxAbsolute)
      evidence.push({
        kind: 'setting',
        id: 'auth.sessionAbsolute',
        detail: `sessions last up to ${humanDuration(absoluteMs)}, more than ${humanDuration(baseline.sessions.maxAbsolute)}`,
      });
    return outcome({
      evidence,
      examined: 2,
      pass: `sessions end after ${humanDuration(idleMs)} idle and ${humanDuration(absoluteMs)} in all`,
      fail: (e) => `${e.length} session limits exceed the baseline`,
    });
  },
};

const apiTokenLifetime: CheckDefinition = {
  id: 'accounts.api-token-lifetime',
  title: 'API tokens expire within the baseline lifetime',
  severity: 'medium',
  rationale: 'A long-lived token that leaks keeps working long after anyone remembers it exists.',
  remediation:
    'Create new tokens with a shorter expiry (`bulwark token create --user <name> --name <purpose> --expires 90d`) and revoke the tokens named (`bulwark token revoke <id>`).',
  reads: ['users'],
  run({ facts, baseline }) {
    const max = baseline.accounts.apiTokenMaxLifetime;
    const tokens = facts.users.apiTokens;
    const evidence: Evidence[] = tokens
      .filter((t) => t.expiresAt - t.createdAt > max)
      .map((t) => ({
        kind: 'api_token',
        id: t.id,
        detail: `of ${t.username}: valid ${humanDuration(t.expiresAt - t.createdAt)} (until ${isoDate(t.expiresAt)}), more than ${humanDuration(max)}`,
      }));
    return outcome({
      evidence,
      examined: tokens.length,
      pass: `all ${count(tokens.length, 'active API token')} expire within ${humanDuration(max)} of creation`,
      fail: (e) => `${e.length} of ${tokens.length} API tokens live longer than ${humanDuration(max)}`,
    });
  },
};

const adminCount: CheckDefinition = {
  id: 'accounts.admin-count',
  title: 'A few named people hold the admin role',
  severity: 'medium',
  rationale:
    'Every admin account can change everything; too many (or shared) admins widen that, and none at all leaves nobody to respond.',
  remediation:
    'Give people who do not need full control a narrower role (console: Accounts), or create a named admin (`bulwark admin create`).',
  reads: ['users'],
  run({ facts, baseline }) {
    const max = baseline.accounts.maxAdmins;
    const admins = enabled(facts.users.accounts).filter((a) => a.role === 'admin');
    const evidence: Evidence[] =
      admins.length > max
        ? admins.map((a) => accountEvidence(a, `one of ${admins.length} enabled admins (at most ${max})`))
        : admins.length === 0 && facts.users.accounts.length > 0
          ? [
              {
                kind: 'setting',
                id: 'admins',
                detail: `no enabled admin among ${count(facts.users.accounts.length, 'account')}`,
              },
            ]
          : [];
    return outcome({
      evidence,
      examined: facts.users.accounts.length,
      pass: `${count(admins.length, 'enabled admin')} (at most ${max})`,
      fail: () =>
        admins.length === 0
          ? 'no enabled admin account'
          : `${admins.length} enabled admins, more than ${max}`,
    });
  },
};

export const accountChecks: readonly CheckDefinition[] = [
  privilegedSecondFactor,
  secondFactorPolicy,
  dormant,
  lockout,
  sessionLimits,
  apiTokenLifetime,
  adminCount,
];
