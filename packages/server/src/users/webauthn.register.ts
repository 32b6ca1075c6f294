import type * as SimpleWebauthn from '@simplewebauthn/server';
import type {
  PublicKeyCredentialCreationOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { BulwarkError } from '@bulwark/protocol';
import { isUniqueViolation, type Tx, type WebauthnCredentialsTable } from '../store/index.ts';
import type { SessionPrincipal, SessionTicket } from './sessions.ts';
import { CHALLENGE_TTL_MS, checkClientData } from './webauthn.challenge.ts';
import {
  b64url,
  simpleWebauthn,
  supportedAlgorithmIDs,
  toInfo,
  transportsOf,
  userHandleOf,
  type WebauthnContext,
  type WebauthnCredentialInfo,
} from './webauthn.context.ts';

type Verification = Awaited<ReturnType<typeof SimpleWebauthn.verifyRegistrationResponse>>;

/** Registering a passkey, from a session allowed to enrol factors. */
export function registrationUseCases(ctx: WebauthnContext) {
  const { users, now, settings, challenges } = ctx;

  /** Options for `navigator.credentials.create()`; the challenge is kept on the session. */
  async function registrationOptions(
    principal: SessionPrincipal,
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await ctx.credentialsOf(principal.userId);
    const options = await (
      await simpleWebauthn()
    ).generateRegistrationOptions({
      rpName: settings.rpName,
      rpID: settings.rpId,
      userName: principal.username,
      userDisplayName: principal.username,
      userID: userHandleOf(principal.userId),
      timeout: CHALLENGE_TTL_MS,
      attestationType: 'none',
      // The same authenticator twice is no second factor: the browser refuses to register it again.
      excludeCredentials: existing.map((c) => ({ id: c.id, transports: transportsOf(c) })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
      supportedAlgorithmIDs,
    });
    await challenges.put(principal.sessionIdHash, 'register', options.challenge);
    return options;
  }

  async function verify(response: RegistrationResponseJSON, challenge: string) {
    let verification: Verification;
    try {
      verification = await (
        await simpleWebauthn()
      ).verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: [...settings.origins()],
        expectedRPID: settings.rpId,
        // A second factor after a password: presence is required, verification (PIN, biometrics) preferred.
        requireUserVerification: false,
        supportedAlgorithmIDs,
      });
    } catch (err) {
      throw new BulwarkError(
        'validation_failed',
        'the passkey response does not verify (relying party id, flags, key algorithm or attestation)',
        { cause: err },
      );
    }
    if (!verification.verified)
      throw new BulwarkError('validation_failed', 'the passkey response does not verify');
    return verification.registrationInfo;
  }

  async function store(tx: Tx, row: WebauthnCredentialsTable): Promise<void> {
    try {
      await tx.insertInto('webauthn_credentials').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err))
        throw new BulwarkError('conflict', 'this passkey is already registered', { cause: err });
      throw err;
    }
  }

  /**
   * Verifies a new passkey against the session's challenge, the expected origins and RP id, and stores it.
   * A session still enrolling becomes `active` (new id); recovery codes come with the user's first factor.
   */
  async function verifyRegistration(
    principal: SessionPrincipal,
    input: { response: RegistrationResponseJSON; name: string },
    address: string,
  ): Promise<{ credential: WebauthnCredentialInfo; recoveryCodes?: string[]; session?: SessionTicket }> {
    const taken = await challenges.take(principal.sessionIdHash, 'register');
    if ('problem' in taken)
      throw new BulwarkError('bad_request', `${taken.problem}: request registration options first`);
    const clientProblem = checkClientData(input.response.response.clientDataJSON, {
      type: 'webauthn.create',
      challenge: taken.challenge,
      origins: settings.origins(),
    });
    if (clientProblem) throw new BulwarkError('validation_failed', clientProblem.message);
    const { credential } = await verify(input.response, taken.challenge);
    const row: WebauthnCredentialsTable = {
      id: credential.id,
      user_id: principal.userId,
      public_key: b64url(credential.publicKey),
      counter: credential.counter,
      transports: JSON.stringify(input.response.response.transports ?? credential.transports ?? []),
      name: input.name,
      created_at: now(),
      last_used_at: null,
    };
    // The passkey commits with its event, the recovery codes and the session's rotation, or not at all.
    const done = await users.completeEnrolment(principal, {
      factor: { factor: 'webauthn', name: row.name },
      address,
      store: (tx) => store(tx, row),
    });
    return { credential: toInfo(row), ...done };
  }

  return { registrationOptions, verifyRegistration };
}
