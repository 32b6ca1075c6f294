import { randomBytes, randomUUID } from 'node:crypto';
import QRCode from 'qrcode';
import { BulwarkError } from '@bulwark/protocol';
import { principalActor } from '../authz/index.ts';
import { subjectOf, type TxEmit } from '../events/index.ts';
import type { Tx } from '../store/index.ts';
import { normalizeRecovery } from './second-factor.ts';
import type { SessionPrincipal, SessionTicket, SessionUseCases } from './sessions.ts';
import { matchTotp, newTotpSecret, totpUri } from './totp.ts';
import { sha256, type UserContext } from './user.context.ts';
import type { Principal } from './user.types.ts';

const RECOVERY_CODES = 10;

function recoveryCode(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(12);
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
}

/** An enrolled factor, as its `auth.factor_enrolled` event names it. */
type EnrolledFactor = { factor: 'totp' } | { factor: 'webauthn'; name: string };

/**
 * Enrolling second factors (TOTP here, passkeys through webauthn/) and the recovery codes that come with them.
 * Each enrolment commits its factor, its event, the recovery codes and the session's rotation together.
 */
export function enrolmentUseCases(
  ctx: UserContext,
  parts: { sessions: Pick<SessionUseCases, 'rotate'>; requireFreshSession: (p: Principal) => void },
) {
  const { db, box, events, now } = ctx;
  const { sessions, requireFreshSession } = parts;

  /** Ten new recovery codes replace the account's, through `tx`, with their event. */
  async function issueRecoveryCodes(
    tx: Tx,
    emit: TxEmit,
    owner: { userId: string; actor: string },
  ): Promise<string[]> {
    const { userId, actor } = owner;
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    const t = now();
    await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
    await tx
      .insertInto('recovery_codes')
      .values(
        codes.map((c) => ({
          id: randomUUID(),
          user_id: userId,
          code_hash: sha256(normalizeRecovery(c)),
          created_at: t,
          used_at: null,
        })),
      )
      .execute();
    emit({ type: 'auth.recovery_codes_generated', actor, subject: actor, data: { count: codes.length } });
    return codes;
  }

  /** An `active` session (a new id) when this one was still enrolling. */
  const activated = async (tx: Tx, principal: SessionPrincipal, address: string) =>
    principal.sessionState === 'active'
      ? undefined
      : sessions.rotate(tx, principal, { state: 'active', address });

  /** The factor's event in the transaction that stored it. */
  function recordEnrolled(emit: TxEmit, principal: Principal, factor: EnrolledFactor): string {
    const actor = subjectOf.user(principal.username);
    emit({ type: 'auth.factor_enrolled', actor, subject: actor, data: factor });
    return actor;
  }

  /**
   * Another factor (a passkey), stored by `store` through the transaction, committed with its event, 10
   * recovery codes if the user has none left, and an `active` session (a new id) when this one was still
   * enrolling.
   */
  async function completeEnrolment(
    principal: SessionPrincipal,
    enrolment: {
      factor: { factor: 'webauthn'; name: string };
      address: string;
      store: (tx: Tx) => Promise<void>;
    },
  ): Promise<{ recoveryCodes?: string[]; session?: SessionTicket }> {
    const { factor, address, store } = enrolment;
    return events.atomically(async (tx, emit) => {
      await store(tx);
      const actor = recordEnrolled(emit, principal, factor);
      const recoveryCodes =
        (await ctx.factorsOf(principal.userId, undefined, tx)).recoveryCodesLeft === 0
          ? await issueRecoveryCodes(tx, emit, { userId: principal.userId, actor })
          : undefined;
      return { recoveryCodes, session: await activated(tx, principal, address) };
    });
  }

  /**
   * Starts TOTP enrolment: a fresh secret, its otpauth URI and a QR code (SVG). The secret is kept apart as
   * pending: an account's current TOTP keeps working until a code of the new one is confirmed.
   */
  async function beginTotp(principal: Principal) {
    const secret = newTotpSecret();
    await db
      .updateTable('users')
      .set({
        totp_pending_secret: box.seal(Buffer.from(secret), `totp/${principal.userId}`),
        updated_at: now(),
      })
      .where('id', '=', principal.userId)
      .execute();
    const uri = totpUri(secret, principal.username);
    return { secret, otpauthUri: uri, qrSvg: await QRCode.toString(uri, { type: 'svg', margin: 1 }) };
  }

  /**
   * Confirms TOTP with a first code of the pending secret, which then replaces the account's (if it had one);
   * returns 10 recovery codes (shown once) and an active session.
   */
  async function confirmTotp(principal: SessionPrincipal, code: string, address: string) {
    const row = await ctx.byId(principal.userId);
    const pending = row?.totp_pending_secret;
    if (!row || !pending) {
      if (row?.totp_enabled === 1)
        throw new BulwarkError('conflict', 'TOTP is already enabled: start a new enrolment to replace it');
      throw new BulwarkError('bad_request', 'start TOTP enrolment first');
    }
    const secret = box.open(pending, `totp/${row.id}`).toString();
    const step = matchTotp(secret, String(code ?? '').trim(), now());
    if (step === undefined)
      throw new BulwarkError(
        'validation_failed',
        'the code does not match: check the authenticator app and the clock',
      );
    return events.atomically(async (tx, emit) => {
      const switched = await tx
        .updateTable('users')
        .set({
          totp_secret: pending,
          totp_pending_secret: null,
          totp_enabled: 1,
          totp_last_step: step,
          updated_at: now(),
        })
        .where('id', '=', row.id)
        // Only the secret this code matched: an enrolment started again meanwhile waits for its own code.
        .where('totp_pending_secret', '=', pending)
        .executeTakeFirst();
      if (Number(switched.numUpdatedRows) !== 1)
        throw new BulwarkError(
          'conflict',
          'TOTP enrolment was started again meanwhile: confirm the new secret',
        );
      const actor = recordEnrolled(emit, principal, { factor: 'totp' });
      const recoveryCodes = await issueRecoveryCodes(tx, emit, { userId: row.id, actor });
      return { recoveryCodes, session: await activated(tx, principal, address) };
    });
  }

  /** New recovery codes replace the old ones: only from a session that just proved its second factor. */
  async function regenerateRecoveryCodes(principal: Principal): Promise<string[]> {
    requireFreshSession(principal);
    return events.atomically(async (tx, emit) => {
      if (!(await ctx.hasFactor(principal.userId, undefined, tx)))
        throw new BulwarkError(
          'conflict',
          'recovery codes stand in for a second factor: enrol TOTP or a passkey first',
        );
      return issueRecoveryCodes(tx, emit, { userId: principal.userId, actor: principalActor(principal) });
    });
  }

  return { completeEnrolment, beginTotp, confirmTotp, regenerateRecoveryCodes };
}
