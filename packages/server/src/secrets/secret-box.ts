import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';

const VERSION = 'v1';

export interface SecretBox {
  /** AES-256-GCM with a fresh nonce; `label` is bound as associated data so a sealed value cannot be moved. */
  seal(plaintext: Buffer, label: string): string;
  open(sealed: string, label: string): Buffer;
  /** A sub-key for one purpose (HKDF-SHA256), e.g. the audit anchor MAC key. */
  deriveKey(purpose: string): Buffer;
  mac(purpose: string, message: string): string;
  verifyMac(purpose: string, message: string, mac: string): boolean;
}

export function createSecretBox(masterKey: Buffer): SecretBox {
  const derived = new Map<string, Buffer>();
  const deriveKey = (purpose: string): Buffer => {
    let key = derived.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), `bulwark/${purpose}`, 32));
      derived.set(purpose, key);
    }
    return key;
  };
  const encKey = deriveKey('seal');
  const mac = (purpose: string, message: string) =>
    createHmac('sha256', deriveKey(`mac/${purpose}`))
      .update(message)
      .digest('hex');

  return {
    seal(plaintext, label) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', encKey, iv);
      cipher.setAAD(Buffer.from(label));
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`;
    },
    open(sealed, label) {
      const [version, body] = sealed.split(':');
      if (version !== VERSION || !body)
        throw new BulwarkError('internal', `sealed secret "${label}" has an unknown format`);
      const raw = Buffer.from(body, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', encKey, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(label));
      decipher.setAuthTag(raw.subarray(12, 28));
      try {
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]);
      } catch (err) {
        throw new BulwarkError(
          'config_invalid',
          `cannot decrypt "${label}": the master key does not match the one this data was sealed with`,
          { cause: err },
        );
      }
    },
    deriveKey,
    mac,
    verifyMac(purpose, message, expected) {
      const actual = Buffer.from(mac(purpose, message), 'hex');
      const given = Buffer.from(expected, 'hex');
      return actual.length === given.length && timingSafeEqual(actual, given);
    },
  };
}
