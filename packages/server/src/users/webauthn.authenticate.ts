import type * as SimpleWebauthn from '@simplewebauthn/server';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { BulwarkError } from '@bulwark/protocol';
import type { WebauthnCredentialsTable } from '../store/index.ts';
import type { FactorClaim } from './second-factor.ts';
import type { SessionPrincipal, SessionTicket } from './sessions.ts';
import { CHALLENGE_TTL_MS, checkClientData } from './webauthn.challenge.ts';
import {
  b64url,
  simpleWebauthn,
  transportsOf,
  userHandleOf,
  type WebauthnContext,
} from './webauthn.context.ts';

/** Why an assertion is refused: the reason recorded in the event, the message for the client. */
interface Refusal {
  reason: string;
  message: string;
  cause?: unknown;
}

const refusal = (reason: string, message: string, cause?: unknown): Refusal => ({ reason, message, cause });

/**
 * WebAuthn L3 §7.2 step 22: a signature counter that does not grow (unless both are 0, an authenticator
 * without a counter) means two copies of the key exist: a cloned authenticator.
 */
function counterProblem(counter: number, stored: number): Refusal | undefined {
  if ((counter > 0 || stored > 0) && counter <= stored)
    return refusal(
      `signature counter ${counter} not above ${stored} (possible cloned authenticator)`,
      'its signature counter did not increase, so it may have been cloned: sign in with another factor and remove it',
    );
  return undefined;
}

/** The second sign-in step (or step-up) with a passkey. */
export function authenticationUseCases(ctx: WebauthnContext) {
  const { db, users, now, settings, challenges } = ctx;

  /** Options for `navigator.credentials.get()` naming the user's passkeys; the challenge is kept on the session. */
  async function authenticationOptions(
    principal: SessionPrincipal,
  ): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const credentials = await ctx.credentialsOf(principal.userId);
    if (credentials.length === 0)
      throw new BulwarkError(
        'bad_request',
        'this account has no passkey: complete sign-in with a TOTP code or a recovery code',
      );
    const options = await (
      await simpleWebauthn()
    ).generateAuthenticationOptions({
      rpID: settings.rpId,
      allowCredentials: credentials.map((c) => ({ id: c.id, transports: transportsOf(c) })),
      userVerification: 'preferred',
      timeout: CHALLENGE_TTL_MS,
    });
    await challenges.put(principal.sessionIdHash, 'authenticate', options.challenge);
    return options;
  }

  /** The registered credential the response names, once its client data answers the pending challenge. */
  async function credentialFor(
    principal: SessionPrincipal,
    response: AuthenticationResponseJSON,
  ): Promise<{ row: WebauthnCredentialsTable; challenge: string } | Refusal> {
    const taken = await challenges.take(principal.sessionIdHash, 'authenticate');
    if ('problem' in taken) return refusal(taken.problem, `${taken.problem}; request new options`);
    const row = await db
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('id', '=', response.id)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    if (!row) return refusal('unknown credential', 'it is not registered for this account');
    const clientProblem = checkClientData(response.response.clientDataJSON, {
      type: 'webauthn.get',
      challenge: taken.challenge,
      origins: settings.origins(),
    });
    if (clientProblem) return refusal(clientProblem.reason, clientProblem.message);
    const handle = response.response.userHandle;
    if (handle && handle !== b64url(userHandleOf(principal.userId)))
      return refusal('user handle mismatch', 'it belongs to another account');
    return { row, challenge: taken.challenge };
  }

  /** The signature check; resolves with the authenticator's new counter. */
  async function verifySignature(
    response: AuthenticationResponseJSON,
    found: { row: WebauthnCredentialsTable; challenge: string },
  ): Promise<number | Refusal> {
    const { row } = found;
    let verification: Awaited<ReturnType<typeof SimpleWebauthn.verifyAuthenticationResponse>>;
    try {
      verification = await (
        await simpleWebauthn()
      ).verifyAuthenticationResponse({
        response,
        expectedChallenge: found.challenge,
        expectedOrigin: [...settings.origins()],
        expectedRPID: settings.rpId,
        // Counter 0 here: the counter is checked afterwards, only once the signature is known to be good, so
        // that a forged assertion cannot raise a false clone alarm.
        credential: {
          id: row.id,
          publicKey: Buffer.from(row.public_key, 'base64url'),
          counter: 0,
          transports: transportsOf(row),
        },
        requireUserVerification: false,
      });
    } catch (err) {
      return refusal('invalid assertion', 'the relying party id, flags or signature do not verify', err);
    }
    if (!verification.verified) return refusal('bad signature', 'the signature does not verify');
    return verification.authenticationInfo.newCounter;
  }

  /** Everything an assertion must pass: the credential and its authenticator's new counter, or the refusal. */
  async function assess(
    principal: SessionPrincipal,
    response: AuthenticationResponseJSON,
  ): Promise<{ row: WebauthnCredentialsTable; counter: number } | Refusal> {
    const found = await credentialFor(principal, response);
    if ('reason' in found) return found;
    const counter = await verifySignature(response, found);
    if (typeof counter !== 'number') return counter;
    return counterProblem(counter, found.row.counter) ?? { row: found.row, counter };
  }

  /** Moves the credential's counter on, in the transaction of the pass; refused if another use moved it first. */
  const claimCounter =
    (row: WebauthnCredentialsTable, counter: number): FactorClaim<Refusal> =>
    async (tx) => {
      const updated = await tx
        .updateTable('webauthn_credentials')
        .set({ counter, last_used_at: now() })
        .where('id', '=', row.id)
        .where('counter', '=', row.counter)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1) return undefined;
      return refusal('concurrent use of the credential', 'it was used at the same moment elsewhere');
    };

  /**
   * The second sign-in step with a passkey. Every refusal is a second-factor failure (event and throttle, as
   * a wrong TOTP code) and leaves the session waiting for its factor; success moves the credential's counter
   * on and rotates the session to `active`, committed with its event.
   */
  async function verifyAuthentication(
    principal: SessionPrincipal,
    response: AuthenticationResponseJSON,
    address: string,
  ): Promise<SessionTicket> {
    await users.refuseIfThrottled(principal, address);
    const assessed = await assess(principal, response);
    const passed =
      'reason' in assessed
        ? { refused: assessed }
        : await users.passSecondFactor(principal, {
            address,
            method: 'webauthn',
            claim: claimCounter(assessed.row, assessed.counter),
          });
    if ('refused' in passed) {
      const { refused } = passed;
      await users.failSecondFactor({ principal, address, method: 'webauthn', reason: refused.reason });
      throw new BulwarkError('invalid_credentials', `the passkey was not accepted: ${refused.message}`, {
        cause: refused.cause,
      });
    }
    return passed;
  }

  return { authenticationOptions, verifyAuthentication };
}
