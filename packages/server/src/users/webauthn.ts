import type * as SimpleWebauthn from '@simplewebauthn/server';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import { isUniqueViolation, type Db, type WebauthnCredentialsTable } from '../store/index.ts';
import type { Role } from './roles.ts';
import type { SessionPrincipal, SessionTicket, UserService } from './user.service.ts';
import { actorOf, type Principal } from './user.types.ts';

// Loaded on first use: every CLI command loads this module, and the library takes ~0.2 s to load.
let library: Promise<typeof SimpleWebauthn> | undefined;
const simpleWebauthn = () => (library ??= import('@simplewebauthn/server'));

export interface WebauthnServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  users: Pick<
    UserService,
    'requires2fa' | 'refuseIfThrottled' | 'failSecondFactor' | 'passSecondFactor' | 'completeEnrolment'
  >;
  now: () => number;
  settings: {
    /** The relying party id: a host name the browser's origin is (a subdomain of). */
    rpId: string;
    rpName: string;
    /** Origins a response may come from; read at each verification (the HTTPS port is known once listening). */
    origins: () => readonly string[];
  };
}

/** A registered passkey as its owner sees it (never the public key). */
export interface WebauthnCredentialInfo {
  id: string;
  name: string;
  transports: string[];
  createdAt: number;
  lastUsedAt: number | null;
}

/** COSE algorithm ids (RFC 9053 §2.1, RFC 8812 §2): ES256 and RS256, what every authenticator offers. */
const ES256 = -7;
const RS256 = -257;
const supportedAlgorithmIDs = [ES256, RS256];
/** How long a challenge stays good, and the timeout the browser is told. */
const CHALLENGE_TTL_MS = 180_000;

const challengePurposes = ['register', 'authenticate'] as const;
type ChallengePurpose = (typeof challengePurposes)[number];
const storedChallenge = z.object({
  purpose: z.enum(challengePurposes),
  challenge: z.string(),
  expiresAt: z.number(),
});

const clientData = z.object({ type: z.string(), challenge: z.string(), origin: z.string() });

/** `https://<rpId>:<port>` (and the port-less form browsers send for 443), then the configured extra origins. */
export function webauthnOrigins(rpId: string, httpsPort: number, extra: readonly string[]): string[] {
  const own =
    httpsPort === 443 ? [`https://${rpId}`, `https://${rpId}:443`] : [`https://${rpId}:${httpsPort}`];
  return [...new Set([...own, ...extra])];
}

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
/** The WebAuthn user handle: the account id, never the name (WebAuthn L3 §14.6.1: no personal data). */
const userHandleOf = (userId: string) => new TextEncoder().encode(userId);
const shown = (value: string) => JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);

function toInfo(row: WebauthnCredentialsTable): WebauthnCredentialInfo {
  return {
    id: row.id,
    name: row.name,
    transports: JSON.parse(row.transports) as string[],
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/**
 * Passkeys (WebAuthn Level 3) as a second factor beside TOTP: registration from a session allowed to enrol
 * factors, assertion as the second sign-in step. Challenges live on the session row and are taken (cleared)
 * by the first verification that reads them, whatever its outcome, so each works once.
 */
export function createWebauthnService(deps: WebauthnServiceDeps) {
  const { db, events, users, now, settings } = deps;

  const credentialsOf = (userId: string) =>
    db
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();

  async function putChallenge(sessionIdHash: string, purpose: ChallengePurpose, challenge: string) {
    const record = { purpose, challenge, expiresAt: now() + CHALLENGE_TTL_MS };
    await db
      .updateTable('sessions')
      .set({ challenge: JSON.stringify(record) })
      .where('id_hash', '=', sessionIdHash)
      .execute();
  }

  /** Reads and clears the session's pending challenge; only one caller can take a given challenge. */
  async function takeChallenge(
    sessionIdHash: string,
    purpose: ChallengePurpose,
  ): Promise<{ challenge: string } | { problem: string }> {
    const row = await db
      .selectFrom('sessions')
      .select('challenge')
      .where('id_hash', '=', sessionIdHash)
      .executeTakeFirst();
    const none = { problem: 'no challenge is pending (each one works once)' };
    if (!row?.challenge) return none;
    const taken = await db
      .updateTable('sessions')
      .set({ challenge: null })
      .where('id_hash', '=', sessionIdHash)
      .where('challenge', '=', row.challenge)
      .executeTakeFirst();
    if (Number(taken.numUpdatedRows) !== 1) return none;
    let parsed: z.infer<typeof storedChallenge> | undefined;
    try {
      parsed = storedChallenge.parse(JSON.parse(row.challenge));
    } catch {
      return none;
    }
    if (parsed.purpose !== purpose) return none;
    if (parsed.expiresAt <= now()) return { problem: 'the challenge has expired' };
    return { challenge: parsed.challenge };
  }

  /**
   * The checks of WebAuthn L3 §7.1 steps 7-9 / §7.2 steps 11-13 done before the library repeats them, so that
   * a refusal can say which one failed (the library's messages are not for clients).
   */
  function checkClientData(
    clientDataJSON: string,
    type: 'webauthn.create' | 'webauthn.get',
    challenge: string,
  ): { reason: string; message: string } | undefined {
    let data: z.infer<typeof clientData>;
    try {
      data = clientData.parse(JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')));
    } catch {
      return { reason: 'malformed client data', message: 'clientDataJSON is not valid client data' };
    }
    if (data.type !== type)
      return {
        reason: 'wrong ceremony type',
        message: `the response is of type ${shown(data.type)}, expected ${type}`,
      };
    const origins = settings.origins();
    if (!origins.includes(data.origin))
      return {
        reason: `wrong origin ${data.origin.slice(0, 100)}`,
        message: `the response was made for origin ${shown(data.origin)}, not for this server (${origins.join(', ')})`,
      };
    if (data.challenge !== challenge)
      return {
        reason: 'challenge does not match (stale or replayed response)',
        message: 'the response answers another challenge (stale or replayed): request new options',
      };
    return undefined;
  }

  return {
    /** Options for `navigator.credentials.create()`; the challenge is kept on the session. */
    async registrationOptions(principal: SessionPrincipal): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const existing = await credentialsOf(principal.userId);
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
        excludeCredentials: existing.map((c) => ({
          id: c.id,
          transports: JSON.parse(c.transports) as string[],
        })),
        authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
        supportedAlgorithmIDs,
      });
      await putChallenge(principal.sessionIdHash, 'register', options.challenge);
      return options;
    },

    /**
     * Verifies a new passkey against the session's challenge, the expected origins and RP id, and stores it.
     * A session still enrolling becomes `active` (new id); recovery codes come with the user's first factor.
     */
    async verifyRegistration(
      principal: SessionPrincipal,
      input: { response: RegistrationResponseJSON; name: string },
      address: string,
    ): Promise<{ credential: WebauthnCredentialInfo; recoveryCodes?: string[]; session?: SessionTicket }> {
      const taken = await takeChallenge(principal.sessionIdHash, 'register');
      if ('problem' in taken)
        throw new BulwarkError('bad_request', `${taken.problem}: request registration options first`);
      const clientProblem = checkClientData(
        input.response.response.clientDataJSON,
        'webauthn.create',
        taken.challenge,
      );
      if (clientProblem) throw new BulwarkError('validation_failed', clientProblem.message);
      let verification: Awaited<ReturnType<typeof SimpleWebauthn.verifyRegistrationResponse>>;
      try {
        verification = await (
          await simpleWebauthn()
        ).verifyRegistrationResponse({
          response: input.response,
          expectedChallenge: taken.challenge,
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
      const { credential } = verification.registrationInfo;
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
      try {
        await db.insertInto('webauthn_credentials').values(row).execute();
      } catch (err) {
        if (isUniqueViolation(err))
          throw new BulwarkError('conflict', 'this passkey is already registered', { cause: err });
        throw err;
      }
      const done = await users.completeEnrolment(principal, { factor: 'webauthn', name: row.name }, address);
      return { credential: toInfo(row), ...done };
    },

    /** Options for `navigator.credentials.get()` naming the user's passkeys; the challenge is kept on the session. */
    async authenticationOptions(principal: SessionPrincipal): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const credentials = await credentialsOf(principal.userId);
      if (credentials.length === 0)
        throw new BulwarkError(
          'bad_request',
          'this account has no passkey: complete sign-in with a TOTP code or a recovery code',
        );
      const options = await (
        await simpleWebauthn()
      ).generateAuthenticationOptions({
        rpID: settings.rpId,
        allowCredentials: credentials.map((c) => ({
          id: c.id,
          transports: JSON.parse(c.transports) as string[],
        })),
        userVerification: 'preferred',
        timeout: CHALLENGE_TTL_MS,
      });
      await putChallenge(principal.sessionIdHash, 'authenticate', options.challenge);
      return options;
    },

    /**
     * The second sign-in step with a passkey. Every refusal is a second-factor failure (event and throttle, as
     * a wrong TOTP code) and leaves the session waiting for its factor; success rotates it to `active`.
     */
    async verifyAuthentication(
      principal: SessionPrincipal,
      response: AuthenticationResponseJSON,
      address: string,
    ): Promise<SessionTicket> {
      await users.refuseIfThrottled(principal, address);
      const refuse = async (reason: string, message: string, cause?: unknown): Promise<never> => {
        await users.failSecondFactor(principal, address, 'webauthn', reason);
        throw new BulwarkError('invalid_credentials', `the passkey was not accepted: ${message}`, {
          cause,
        });
      };
      const taken = await takeChallenge(principal.sessionIdHash, 'authenticate');
      if ('problem' in taken) return refuse(taken.problem, `${taken.problem}; request new options`);
      const row = await db
        .selectFrom('webauthn_credentials')
        .selectAll()
        .where('id', '=', response.id)
        .where('user_id', '=', principal.userId)
        .executeTakeFirst();
      if (!row) return refuse('unknown credential', 'it is not registered for this account');
      const clientProblem = checkClientData(
        response.response.clientDataJSON,
        'webauthn.get',
        taken.challenge,
      );
      if (clientProblem) return refuse(clientProblem.reason, clientProblem.message);
      const handle = response.response.userHandle;
      if (handle && handle !== b64url(userHandleOf(principal.userId)))
        return refuse('user handle mismatch', 'it belongs to another account');
      let verification: Awaited<ReturnType<typeof SimpleWebauthn.verifyAuthenticationResponse>>;
      try {
        verification = await (
          await simpleWebauthn()
        ).verifyAuthenticationResponse({
          response,
          expectedChallenge: taken.challenge,
          expectedOrigin: [...settings.origins()],
          expectedRPID: settings.rpId,
          // Counter 0 here: the counter is checked below, only once the signature is known to be good, so
          // that a forged assertion cannot raise a false clone alarm.
          credential: {
            id: row.id,
            publicKey: Buffer.from(row.public_key, 'base64url'),
            counter: 0,
            transports: JSON.parse(row.transports) as string[],
          },
          requireUserVerification: false,
        });
      } catch (err) {
        return refuse('invalid assertion', 'the relying party id, flags or signature do not verify', err);
      }
      if (!verification.verified) return refuse('bad signature', 'the signature does not verify');
      const counter = verification.authenticationInfo.newCounter;
      // WebAuthn L3 §7.2 step 22: a signature counter that does not grow (unless both are 0, an authenticator
      // without a counter) means two copies of the key exist: a cloned authenticator.
      if ((counter > 0 || row.counter > 0) && counter <= row.counter)
        return refuse(
          `signature counter ${counter} not above ${row.counter} (possible cloned authenticator)`,
          'its signature counter did not increase, so it may have been cloned: sign in with another factor and remove it',
        );
      const updated = await db
        .updateTable('webauthn_credentials')
        .set({ counter, last_used_at: now() })
        .where('id', '=', row.id)
        .where('counter', '=', row.counter)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1)
        return refuse('concurrent use of the credential', 'it was used at the same moment elsewhere');
      return users.passSecondFactor(principal, address, 'webauthn');
    },

    async list(principal: Pick<Principal, 'userId'>): Promise<WebauthnCredentialInfo[]> {
      return (await credentialsOf(principal.userId)).map(toInfo);
    },

    /** Removes one of the user's passkeys, unless it is the last factor of someone who must have one. */
    async remove(principal: Principal, id: string): Promise<void> {
      const removed = await db.transaction().execute(async (trx) => {
        // Writing the user row first serialises concurrent removals (a row lock on PostgreSQL, the write lock
        // on SQLite), so two of them cannot each leave the other's credential as "the remaining factor".
        await trx
          .updateTable('users')
          .set({ updated_at: now() })
          .where('id', '=', principal.userId)
          .execute();
        const user = await trx
          .selectFrom('users')
          .select(['role', 'totp_enabled'])
          .where('id', '=', principal.userId)
          .executeTakeFirstOrThrow();
        const row = await trx
          .selectFrom('webauthn_credentials')
          .selectAll()
          .where('id', '=', id)
          .where('user_id', '=', principal.userId)
          .executeTakeFirst();
        if (!row) throw new BulwarkError('not_found', 'you have no passkey with this id');
        const left = await trx
          .selectFrom('webauthn_credentials')
          .select(db.fn.countAll<number>().as('n'))
          .where('user_id', '=', principal.userId)
          .executeTakeFirst();
        // The user's own role decides, not a token's narrower one.
        const role = user.role as Role;
        if (Number(left?.n ?? 0) <= 1 && user.totp_enabled !== 1 && users.requires2fa(role))
          throw new BulwarkError(
            'conflict',
            `this passkey is your last second factor and your role (${role}) requires two-factor sign-in: enrol another passkey or TOTP first`,
          );
        await trx.deleteFrom('webauthn_credentials').where('id', '=', row.id).execute();
        return row;
      });
      const actor = actorOf(principal);
      await events.emit({
        type: 'auth.factor_removed',
        actor,
        subject: `user:${principal.username}`,
        data: { factor: 'webauthn', name: removed.name },
      });
    },
  };
}

export type WebauthnService = ReturnType<typeof createWebauthnService>;
