import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import type { UsersTable } from '../store/index.ts';
import type { AttemptGuard } from './sign-in.ts';
import type { SessionPrincipal, SessionTicket, SessionUseCases } from './sessions.ts';
import { matchTotp } from './totp.ts';
import { sha256, type UserContext } from './user.context.ts';
import type { Principal } from './user.types.ts';

export type SecondFactorMethod = 'totp' | 'recovery_code' | 'webauthn';

/** A failed second-factor attempt: whose, from where, with what, and why. */
export interface SecondFactorFailure {
  principal: Pick<Principal, 'username'>;
  address: string;
  method: SecondFactorMethod;
  reason: string;
}

export const normalizeRecovery = (code: string) => code.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Second-factor attempts count in the same throttle as password guessing: per account and per address. */
const factorKeys = (principal: Pick<Principal, 'username'>, address: string) => [
  `account:${principal.username}`,
  `address:${address}`,
];

/**
 * Factor and credential management (recovery codes, API tokens, passkeys, sign-out everywhere): a signed-in
 * session, never an API token (a token's role caps what it does, and a token is not a second factor), that
 * authenticated within the step-up window. OWASP ASVS 4.0 V2.2.3/V3.7.1 (re-authentication before sensitive
 * changes), NIST SP 800-63B §4.2.2 / §7.1.
 */
export function freshSessionCheck(ctx: Pick<UserContext, 'now' | 'settings'>) {
  return function requireFreshSession(principal: Principal): void {
    if (principal.via !== 'session')
      throw new BulwarkError(
        'forbidden',
        'factors and credentials are managed from a signed-in session, never with an API token',
      );
    if (principal.sessionState !== undefined && principal.sessionState !== 'active')
      throw new BulwarkError('second_factor_required', 'complete sign-in with your second factor first');
    const windowMs = ctx.settings.stepUpWindowMs;
    if (ctx.now() - (principal.authenticatedAt ?? 0) > windowMs) {
      const windowS = Math.round(windowMs / 1000);
      throw new BulwarkError(
        'step_up_required',
        `this needs a second factor verified in the last ${windowS} s: verify it again (POST /api/v1/auth/second-factor with a TOTP or recovery code, or a passkey through /api/v1/auth/webauthn/authenticate/options and /verify), then retry; an account without a second factor signs in again`,
        { details: { stepUpWindowS: windowS } },
      );
    }
  };
}

/** The second sign-in step (and step-up): TOTP or a recovery code here, passkeys through webauthn/. */
export function secondFactorUseCases(
  ctx: UserContext,
  parts: { sessions: Pick<SessionUseCases, 'rotate'>; guard: AttemptGuard },
) {
  const { db, box, events, throttle, now } = ctx;
  const { sessions, guard } = parts;

  /** A failed second-factor attempt: an event, and a failure in the throttle (as a wrong TOTP code). */
  async function failSecondFactor(failure: SecondFactorFailure): Promise<void> {
    const { principal, address, method, reason } = failure;
    const actor = subjectOf.user(principal.username);
    await events.emit({
      type: 'auth.second_factor_failed',
      actor,
      subject: actor,
      data: { address, method, reason },
    });
    await guard.recordFailure({
      keys: factorKeys(principal, address),
      username: principal.username,
      address,
      reason: `second factor: ${reason}`,
      emitFailure: false,
    });
  }

  /** A passed second factor: clears the throttle, records it, and rotates the session to `active`. */
  async function passSecondFactor(
    principal: SessionPrincipal,
    address: string,
    method: SecondFactorMethod,
  ): Promise<SessionTicket> {
    await throttle.succeed(factorKeys(principal, address));
    const actor = subjectOf.user(principal.username);
    await events.emit({
      type: 'auth.second_factor_succeeded',
      actor,
      subject: actor,
      data: { address, method },
    });
    return sessions.rotate(principal, 'active', address);
  }

  /** A TOTP code, each time step accepted once: the step must be later than the last one accepted. */
  async function checkTotp(row: UsersTable, code: string): Promise<string | undefined> {
    if (row.totp_enabled !== 1 || !row.totp_secret) return 'wrong code';
    const step = matchTotp(box.open(row.totp_secret, `totp/${row.id}`).toString(), code.trim(), now());
    if (step === undefined) return 'wrong code';
    const res = await db
      .updateTable('users')
      .set({ totp_last_step: step })
      .where('id', '=', row.id)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1 ? undefined : 'code already used';
  }

  async function useRecoveryCode(row: UsersTable, code: string): Promise<string | undefined> {
    const res = await db
      .updateTable('recovery_codes')
      .set({ used_at: now() })
      .where('user_id', '=', row.id)
      .where('code_hash', '=', sha256(normalizeRecovery(code)))
      .where('used_at', 'is', null)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return 'wrong code';
    const actor = subjectOf.user(row.username);
    const remaining = (await ctx.factorsOf(row.id, row)).recoveryCodesLeft;
    await events.emit({ type: 'auth.recovery_code_used', actor, subject: actor, data: { remaining } });
    return undefined;
  }

  /** Second step: a TOTP code (each time step accepted once) or a single-use recovery code. */
  async function secondFactor(
    principal: SessionPrincipal,
    input: { code?: string; recoveryCode?: string },
    address: string,
  ): Promise<SessionTicket> {
    await guard.refuseIfBlocked(factorKeys(principal, address));
    const row = await ctx.byId(principal.userId);
    if (!row) throw new BulwarkError('unauthenticated', 'session user no longer exists');
    const method = input.recoveryCode !== undefined ? 'recovery_code' : 'totp';
    let problem: string | undefined = 'wrong code';
    if (method === 'totp' && typeof input.code === 'string') problem = await checkTotp(row, input.code);
    else if (method === 'recovery_code' && typeof input.recoveryCode === 'string')
      problem = await useRecoveryCode(row, input.recoveryCode);
    if (problem !== undefined) {
      await failSecondFactor({ principal, address, method, reason: problem });
      throw new BulwarkError(
        'invalid_credentials',
        method === 'totp'
          ? 'the code is wrong, expired or already used'
          : 'the recovery code is wrong or already used',
      );
    }
    return passSecondFactor(principal, address, method);
  }

  return {
    secondFactor,
    failSecondFactor,
    passSecondFactor,
    /** For other second factors (passkeys, webauthn/): refused while the account or address is throttled. */
    refuseIfThrottled: (principal: Pick<Principal, 'username'>, address: string) =>
      guard.refuseIfBlocked(factorKeys(principal, address)),
    requireFreshSession: freshSessionCheck(ctx),
  };
}
