import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  type KeyObject,
} from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Signature } from '@tufjs/models';
import { BulwarkError } from '@bulwark/protocol';

/** A TUF public key as metadata names it (TUF specification §4.2, key objects). */
export interface TufPublicKey {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string };
}

export interface TufPrivateKey {
  keyid: string;
  public: TufPublicKey;
  key: KeyObject;
}

/** The TUF key id: SHA-256 of the canonical JSON of the public key object. */
export function keyIdOf(key: TufPublicKey): string {
  return createHash('sha256').update(canonicalize(key)).digest('hex');
}

/** The TUF form of an Ed25519 public key: the raw 32 bytes, hex. */
export function tufPublicKeyOf(key: KeyObject): TufPublicKey {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType !== 'ed25519')
    throw new BulwarkError(
      'key_unsupported',
      `TUF keys must be Ed25519 (openssl genpkey -algorithm ed25519), not ${publicKey.asymmetricKeyType ?? 'unknown'}`,
    );
  const jwk = publicKey.export({ format: 'jwk' });
  if (!jwk.x) throw new BulwarkError('key_unsupported', 'cannot read the Ed25519 public key');
  return {
    keytype: 'ed25519',
    scheme: 'ed25519',
    keyval: { public: Buffer.from(jwk.x, 'base64url').toString('hex') },
  };
}

export function modelKeyOf(key: TufPublicKey): Key {
  return new Key({ keyID: keyIdOf(key), keyType: key.keytype, scheme: key.scheme, keyVal: key.keyval });
}

/** A new Ed25519 key pair, PKCS#8 / SPKI PEM. */
export function generateTufKey(): { privatePem: string; publicPem: string; keyid: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyid: keyIdOf(tufPublicKeyOf(publicKey)),
  };
}

export function privateKeyFromPem(pem: string, from = 'key'): TufPrivateKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new BulwarkError('key_unsupported', `${from} is not a PEM private key (${(err as Error).message})`);
  }
  const pub = tufPublicKeyOf(key);
  return { keyid: keyIdOf(pub), public: pub, key };
}

/**
 * A public key from PEM (SPKI or a private key, of which only the public half is used) or from a TUF key
 * object in JSON.
 */
export function publicKeyFrom(text: string, from = 'key'): TufPublicKey {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new BulwarkError('key_unsupported', `${from} is not JSON`);
    }
    const k = parsed as Partial<TufPublicKey>;
    if (
      k.keytype !== 'ed25519' ||
      k.scheme !== 'ed25519' ||
      typeof k.keyval?.public !== 'string' ||
      !/^[0-9a-f]{64}$/.test(k.keyval.public)
    )
      throw new BulwarkError('key_unsupported', `${from} is not an Ed25519 TUF key object`);
    return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: k.keyval.public } };
  }
  try {
    return tufPublicKeyOf(createPublicKey(trimmed));
  } catch (err) {
    if (err instanceof BulwarkError) throw err;
    throw new BulwarkError('key_unsupported', `${from} is not a PEM key (${(err as Error).message})`);
  }
}

/** What @tufjs/models' `Metadata.sign` calls with the canonical bytes of `signed`. */
export function signerOf(key: TufPrivateKey): (data: Buffer) => Signature {
  return (data) => new Signature({ keyID: key.keyid, sig: sign(null, data, key.key).toString('hex') });
}
