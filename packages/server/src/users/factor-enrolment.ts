import { randomBytes, randomUUID } from 'node:crypto';
import QRCode from 'qrcode';
import { BulwarkError } from '@bulwark/protocol';
import { principalActor } from '../authz/index.ts';
import { subjectOf } from '../events/index.ts';
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

/** Enrolling second factors (TOTP here, passkeys through webauthn/) and the recovery codes that come with them. */
export function enrolmentUseCases(
  ctx: UserContext,
  parts: { sessions: Pick<SessionUseCases, 'rotate'>; requireFreshSession: (p: Principal) => void },
) {
  const { db, box, events, now } = ctx;
  const { sessions, requireFreshSession } = parts;

  async function issueRecoveryCodes(userId: string, actor: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    const t = now();
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
      await trx
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
    });
    await events.emit({
      type: 'auth.recovery_codes_generated',
      actor,
      subject: actor,
      data: { count: codes.length },
    });
    return codes;
  }

  /** An `active` session (a new id) when this one was still enrolling. */
  const activated = async (principal: SessionPrincipal, address: string) =>
    principal.sessionState === 'active' ? undefined : sessions.rotate(principal, 'active', address);

  /**
   * After another factor (a passkey) was enrolled: the event, 10 recovery codes if the user has none
   * left, and an `active` session (a new id) when this one was still enrolling.
   */
  async function completeEnrolment(
    principal: SessionPrincipal,
    factor: { factor: 'webauthn'; name: string },
    address: string,
  ): Promise<{ recoveryCodes?: string[]; session?: SessionTicket }> {
    const actor = subjectOf.user(principal.username);
    await events.emit({ type: 'auth.factor_enrolled', actor, subject: actor, data: factor });
    const recoveryCodes =
      (await ctx.factorsOf(principal.userId)).recoveryCodesLeft === 0
        ? await issueRecoveryCodes(principal.userId, actor)
        : undefined;
    return { recoveryCodes, session: await activated(principal, address) };
  }

  /** Starts TOTP enrolment: a fresh secret, its otpauth URI and a QR code (SVG). Not active until confirmed. */
  async function beginTotp(principal: Principal) {
    const secret = newTotpSecret();
    await db
      .updateTable('users')
      .set({
        totp_secret: box.seal(Buffer.from(secret), `totp/${principal.userId}`),
        totp_enabled: 0,
        updated_at: now(),
      })
      .where('id', '=', principal.userId)
      .execute();
    const uri = totpUri(secret, principal.username);
    return { secret, otpauthUri: uri, qrSvg: await QRCode.toString(uri, { type: 'svg', margin: 1 }) };
  }

  /** Confirms TOTP with a first code; returns 10 recovery codes (shown once) and an active session. */
  async function confirmTotp(principal: SessionPrincipal, code: string, address: string) {
    const row = await ctx.byId(principal.userId);
    if (!row?.totp_secret) throw new BulwarkError('bad_request', 'start TOTP enrolment first');
    if (row.totp_enabled === 1) throw new BulwarkError('conflict', 'TOTP is already enabled');
    const secret = box.open(row.totp_secret, `totp/${row.id}`).toString();
    const step = matchTotp(secret, String(code ?? '').trim(), now());
    if (step === undefined)
      throw new BulwarkError(
        'validation_failed',
        'the code does not match: check the authenticator app and the clock',
      );
    await db
      .updateTable('users')
      .set({ totp_enabled: 1, totp_last_step: step, updated_at: now() })
      .where('id', '=', row.id)
      .execute();
    const actor = subjectOf.user(principal.username);
    await events.emit({ type: 'auth.factor_enrolled', actor, subject: actor, data: { factor: 'totp' } });
    const recoveryCodes = await issueRecoveryCodes(row.id, actor);
    return { recoveryCodes, session: await activated(principal, address) };
  }

  /** New recovery codes replace the old ones: only from a session that just proved its second factor. */
  async function regenerateRecoveryCodes(principal: Principal): Promise<string[]> {
    requireFreshSession(principal);
    if (!(await ctx.hasFactor(principal.userId)))
      throw new BulwarkError(
        'conflict',
        'recovery codes stand in for a second factor: enrol TOTP or a passkey first',
      );
    return issueRecoveryCodes(principal.userId, principalActor(principal));
  }

  return { completeEnrolment, beginTotp, confirmTotp, regenerateRecoveryCodes };
}
