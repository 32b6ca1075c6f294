import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type TxEmit } from '../events/index.ts';
import type { Tx, UsersTable } from '../store/index.ts';
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

/**
 * Consumes a second factor inside the transaction that records it (the TOTP step, the recovery code, the
 * passkey's signature counter): answers why it is refused, or undefined once consumed. A refusal writes
 * nothing.
 */
export type FactorClaim<P> = (tx: Tx, emit: TxEmit) => Promise<P | undefined>;

/** The second sign-in step (and step-up): TOTP or a recovery code here, passkeys through webauthn/. */
export function secondFactorUseCases(
  ctx: UserContext,
  parts: { sessions: Pick<SessionUseCases, 'rotate'>; guard: AttemptGuard },
) {
  const { box, events, throttle, now } = ctx;
  const { sessions, guard } = parts;

  /** A failed second-factor attempt: its event and a failure in the throttle (as a wrong TOTP code), together. */
  async function failSecondFactor(failure: SecondFactorFailure): Promise<void> {
    const { principal, address, method, reason } = failure;
    const actor = subjectOf.user(principal.username);
    await guard.recordFailure({
      keys: factorKeys(principal, address),
      username: principal.username,
      address,
      reason: `second factor: ${reason}`,
      event: { type: 'auth.second_factor_failed', actor, subject: actor, data: { address, method, reason } },
    });
  }

  /**
   * A second factor, consumed by `claim` and, when it passes, recorded in the same transaction: the throttle
   * cleared, the event, and the session rotated to `active`. A refusal of `claim` changes nothing and is
   * answered as `{ refused }` (the caller records the failure).
   */
  async function passSecondFactor<P>(
    principal: SessionPrincipal,
    pass: { address: string; method: SecondFactorMethod; claim: FactorClaim<P> },
  ): Promise<SessionTicket | { refused: P }> {
    const { address, method, claim } = pass;
    return events.atomically(async (tx, emit) => {
      const refused = await claim(tx, emit);
      if (refused !== undefined) return { refused };
      await throttle.succeed(factorKeys(principal, address), tx);
      const actor = subjectOf.user(principal.username);
      emit({ type: 'auth.second_factor_succeeded', actor, subject: actor, data: { address, method } });
      return sessions.rotate(tx, principal, { state: 'active', address });
    });
  }

  /** A TOTP code, each time step accepted once: the step must be later than the last one accepted. */
  async function checkTotp(tx: Tx, row: UsersTable, code: string): Promise<string | undefined> {
    if (row.totp_enabled !== 1 || !row.totp_secret) return 'wrong code';
    const step = matchTotp(box.open(row.totp_secret, `totp/${row.id}`).toString(), code.trim(), now());
    if (step === undefined) return 'wrong code';
    const res = await tx
      .updateTable('users')
      .set({ totp_last_step: step })
      .where('id', '=', row.id)
      // The secret that matched is still the account's (a re-enrolment may have replaced it meanwhile).
      .where('totp_secret', '=', row.totp_secret)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1 ? undefined : 'code already used';
  }

  /** A recovery code, used once: marked used with its event. */
  async function useRecoveryCode(
    tx: Tx,
    emit: TxEmit,
    presented: { row: UsersTable; code: string },
  ): Promise<string | undefined> {
    const { row, code } = presented;
    const res = await tx
      .updateTable('recovery_codes')
      .set({ used_at: now() })
      .where('user_id', '=', row.id)
      .where('code_hash', '=', sha256(normalizeRecovery(code)))
      .where('used_at', 'is', null)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return 'wrong code';
    const actor = subjectOf.user(row.username);
    const remaining = (await ctx.factorsOf(row.id, row, tx)).recoveryCodesLeft;
    emit({ type: 'auth.recovery_code_used', actor, subject: actor, data: { remaining } });
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
    const { code, recoveryCode } = input;
    const claim: FactorClaim<string> = (tx, emit) => {
      if (method === 'totp' && typeof code === 'string') return checkTotp(tx, row, code);
      if (method === 'recovery_code' && typeof recoveryCode === 'string')
        return useRecoveryCode(tx, emit, { row, code: recoveryCode });
      return Promise.resolve('wrong code');
    };
    const passed = await passSecondFactor(principal, { address, method, claim });
    if ('refused' in passed) {
      await failSecondFactor({ principal, address, method, reason: passed.refused });
      throw new BulwarkError(
        'invalid_credentials',
        method === 'totp'
          ? 'the code is wrong, expired or already used'
          : 'the recovery code is wrong or already used',
      );
    }
    return passed;
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
