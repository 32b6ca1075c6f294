import type * as SimpleWebauthn from '@simplewebauthn/server';
import type { EventBus } from '../events/index.ts';
import type { Db, WebauthnCredentialsTable } from '../store/index.ts';
import type { UserService } from './user.service.ts';
import { challengeStore } from './webauthn.challenge.ts';

// Loaded on first use: every CLI command loads this module, and the library takes ~0.2 s to load.
let library: Promise<typeof SimpleWebauthn> | undefined;
export const simpleWebauthn = () => (library ??= import('@simplewebauthn/server'));

export interface WebauthnServiceDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
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
export const supportedAlgorithmIDs = [ES256, RS256];

export const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
/** The WebAuthn user handle: the account id, never the name (WebAuthn L3 §14.6.1: no personal data). */
export const userHandleOf = (userId: string) => new TextEncoder().encode(userId);
export const transportsOf = (row: Pick<WebauthnCredentialsTable, 'transports'>) =>
  JSON.parse(row.transports) as string[];

export function toInfo(row: WebauthnCredentialsTable): WebauthnCredentialInfo {
  return {
    id: row.id,
    name: row.name,
    transports: transportsOf(row),
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/** What the passkey use cases share: the deps, the session challenges and the user's credentials. */
export function createWebauthnContext(deps: WebauthnServiceDeps) {
  const credentialsOf = (userId: string) =>
    deps.db
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
  return { ...deps, challenges: challengeStore(deps), credentialsOf };
}

export type WebauthnContext = ReturnType<typeof createWebauthnContext>;
