import { createHash, randomBytes } from 'node:crypto';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';

/** Authenticator data flags (WebAuthn L3 §6.1): user present, user verified, attested credential data. */
const UP = 0x01;
const UV = 0x04;
const AT = 0x40;

interface SoftCredential {
  id: string;
  rpId: string;
  userHandle: string;
  keys: CryptoKeyPair;
  counter: number;
}

const b64url = (bytes: Uint8Array | ArrayBuffer) => Buffer.from(new Uint8Array(bytes)).toString('base64url');
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** An unsigned big-endian integer as ASN.1 DER (leading zeros dropped, a zero byte added before a high bit). */
function derInteger(bytes: Uint8Array): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let value = Buffer.from(bytes.subarray(i));
  if ((value[0] ?? 0) & 0x80) value = Buffer.concat([Buffer.from([0]), value]);
  return Buffer.concat([Buffer.from([0x02, value.length]), value]);
}

/** WebCrypto's ECDSA signature is r‖s; WebAuthn wants ES256 signatures as DER `SEQUENCE { r, s }` (§6.5.5). */
function rawToDer(raw: Uint8Array): Buffer {
  const r = derInteger(raw.subarray(0, 32));
  const s = derInteger(raw.subarray(32));
  return Buffer.concat([Buffer.from([0x30, r.length + s.length]), r, s]);
}

/** The credential public key as a COSE_Key (RFC 9052 §7, RFC 9053 §7.1.1): EC2, ES256, P-256. */
async function coseKey(publicKey: CryptoKey): Promise<Uint8Array> {
  const jwk = await crypto.subtle.exportKey('jwk', publicKey);
  const map = new Map<number, CBORType>([
    [1, 2], // kty: EC2
    [3, -7], // alg: ES256
    [-1, 1], // crv: P-256
    [-2, new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'))],
    [-3, new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url'))],
  ]);
  return encodeCBOR(map);
}

function clientDataJSON(type: 'webauthn.create' | 'webauthn.get', challenge: string, origin: string): string {
  return b64url(Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false })));
}

export interface CeremonyOverrides {
  /** The origin the "browser" reports (default: the authenticator's origin). */
  origin?: string;
  /** Sign this challenge instead of the one in the options (a stale or replayed response). */
  challenge?: string;
}

/**
 * A software WebAuthn authenticator and the browser in front of it, for tests: ES256 keys from WebCrypto,
 * `none` attestation, a signature counter that grows by one per assertion. Each call produces exactly what
 * `PublicKeyCredential.toJSON()` gives a web page.
 */
export function createSoftAuthenticator(options: { origin: string }) {
  const credentials: SoftCredential[] = [];

  return {
    credentials,

    /** `navigator.credentials.create()`: a new key pair, answered with `none` attestation. */
    async register(
      creation: PublicKeyCredentialCreationOptionsJSON,
      overrides: CeremonyOverrides = {},
    ): Promise<RegistrationResponseJSON> {
      const rpId = creation.rp.id ?? new URL(options.origin).hostname;
      const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ]);
      const id = randomBytes(32);
      const credential: SoftCredential = {
        id: b64url(id),
        rpId,
        userHandle: creation.user.id,
        keys,
        counter: 0,
      };
      credentials.push(credential);
      const idLength = Buffer.alloc(2);
      idLength.writeUInt16BE(id.length);
      const authData = Buffer.concat([
        sha256(rpId),
        Buffer.from([UP | UV | AT]),
        u32(credential.counter),
        Buffer.alloc(16), // AAGUID: zeros, as `none` attestation allows
        idLength,
        id,
        await coseKey(keys.publicKey),
      ]);
      const attestationObject = encodeCBOR(
        new Map<string, CBORType>([
          ['fmt', 'none'],
          ['attStmt', new Map()],
          ['authData', new Uint8Array(authData)],
        ]),
      );
      return {
        id: credential.id,
        rawId: credential.id,
        type: 'public-key',
        response: {
          clientDataJSON: clientDataJSON(
            'webauthn.create',
            overrides.challenge ?? creation.challenge,
            overrides.origin ?? options.origin,
          ),
          attestationObject: b64url(attestationObject),
          transports: ['internal'],
        },
        authenticatorAttachment: 'platform',
        clientExtensionResults: {},
      };
    },

    /**
     * `navigator.credentials.get()`: signs with the first allowed credential this authenticator holds (or
     * its first one, as a discoverable credential would), counting up unless `counter` says otherwise.
     */
    async authenticate(
      request: PublicKeyCredentialRequestOptionsJSON,
      overrides: CeremonyOverrides & { counter?: number } = {},
    ): Promise<AuthenticationResponseJSON> {
      const allowed = new Set((request.allowCredentials ?? []).map((c) => c.id));
      const credential = credentials.find((c) => allowed.has(c.id)) ?? credentials[0];
      if (!credential) throw new Error('this soft authenticator holds no credential');
      credential.counter = overrides.counter ?? credential.counter + 1;
      const authData = Buffer.concat([
        sha256(request.rpId ?? credential.rpId),
        Buffer.from([UP | UV]),
        u32(credential.counter),
      ]);
      const client = clientDataJSON(
        'webauthn.get',
        overrides.challenge ?? request.challenge,
        overrides.origin ?? options.origin,
      );
      // §6.3.3: the signature covers authenticatorData ‖ SHA-256(clientDataJSON).
      const signed = Buffer.concat([authData, sha256(Buffer.from(client, 'base64url'))]);
      const raw = await crypto.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        credential.keys.privateKey,
        signed,
      );
      return {
        id: credential.id,
        rawId: credential.id,
        type: 'public-key',
        response: {
          clientDataJSON: client,
          authenticatorData: b64url(authData),
          signature: b64url(rawToDer(new Uint8Array(raw))),
          userHandle: credential.userHandle,
        },
        authenticatorAttachment: 'platform',
        clientExtensionResults: {},
      };
    },
  };
}

export type SoftAuthenticator = ReturnType<typeof createSoftAuthenticator>;
