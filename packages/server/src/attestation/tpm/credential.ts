// TPM2_MakeCredential in software (TPM 2.0 Part 1 §24 "Credential Protection", Part 3 §12.6), with KDFa
// (Part 1 §11.4.10.2, NIST SP 800-108 counter mode with HMAC) and KDFe (Part 1 §11.4.10.3, SP 800-56A
// concatenation KDF), so the server can bind an attestation key to an endorsement key without a TPM of its own.
import {
  createCipheriv,
  createECDH,
  createHash,
  createHmac,
  constants,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { hashInfo, type TpmAlg } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { tpm2b, u32be } from './marshal.ts';
import type { TpmPublic } from './public.ts';

/** A label as the KDFs use it: its bytes and a terminating NUL (added when missing; Part 1 §11.4.10.2). */
function labelBytes(label: string): Buffer {
  const bytes = Buffer.from(label, 'utf8');
  return bytes.at(-1) === 0 ? bytes : Buffer.concat([bytes, Buffer.alloc(1)]);
}

/** Keeps the leftmost `bits` bits: whole bytes, then the unused high bits of the first byte cleared. */
function truncateBits(out: Buffer, bits: number): Buffer {
  const bytes = Math.ceil(bits / 8);
  const result = Buffer.from(out.subarray(0, bytes));
  const extra = bytes * 8 - bits;
  if (extra > 0 && result.length > 0) result[0] = (result[0] ?? 0) & (0xff >> extra);
  return result;
}

export interface KdfInput {
  hash: TpmAlg;
  key: Buffer;
  label: string;
  contextU: Buffer;
  contextV: Buffer;
  bits: number;
}

/** KDFa: HMAC_hash(key, [i]_32 || label || 0 || contextU || contextV || [bits]_32) for i = 1, 2, …. */
export function kdfa(input: KdfInput): Buffer {
  const parts: Buffer[] = [];
  const label = labelBytes(input.label);
  let produced = 0;
  for (let i = 1; produced * 8 < input.bits; i++) {
    const block = createHmac(input.hash, input.key)
      .update(Buffer.concat([u32be(i), label, input.contextU, input.contextV, u32be(input.bits)]))
      .digest();
    parts.push(block);
    produced += block.length;
  }
  return truncateBits(Buffer.concat(parts), input.bits);
}

/** KDFe: H_hash([i]_32 || Z || label || 0 || partyU || partyV) for i = 1, 2, … (`key` is Z). */
export function kdfe(input: KdfInput): Buffer {
  const parts: Buffer[] = [];
  const label = labelBytes(input.label);
  let produced = 0;
  for (let i = 1; produced * 8 < input.bits; i++) {
    const block = createHash(input.hash)
      .update(Buffer.concat([u32be(i), input.key, label, input.contextU, input.contextV]))
      .digest();
    parts.push(block);
    produced += block.length;
  }
  return truncateBits(Buffer.concat(parts), input.bits);
}

const eccCurveNames: Record<string, { openssl: string; size: number }> = {
  'P-256': { openssl: 'prime256v1', size: 32 },
  'P-384': { openssl: 'secp384r1', size: 48 },
};

/**
 * The seed and the TPM2B_ENCRYPTED_SECRET that carries it to the EK (Part 1 §24.3, Annex B.10.3 / C.6.4):
 * RSA: a random seed, RSA-OAEP(nameAlg, label "IDENTITY\0"); ECC: one-pass ECDH with an ephemeral key on the
 * EK's curve, seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, ek.x), the secret being the ephemeral point.
 */
function seedFor(ek: TpmPublic): { seed: Buffer; encryptedSecret: Buffer } {
  const digestSize = hashInfo[ek.nameAlg].size;
  if (ek.type === 'rsa') {
    const seed = randomBytes(digestSize);
    const secret = publicEncrypt(
      {
        key: ek.key,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: ek.nameAlg,
        oaepLabel: labelBytes('IDENTITY'),
      },
      seed,
    );
    return { seed, encryptedSecret: tpm2b(secret) };
  }
  const jwk = ek.key.export({ format: 'jwk' });
  const curve = eccCurveNames[jwk.crv ?? ''];
  if (curve === undefined || jwk.x === undefined || jwk.y === undefined) {
    throw new TpmFormatError('TPMT_PUBLIC.parameters.curveID', 'unsupported curve for MakeCredential');
  }
  const ekX = Buffer.from(jwk.x, 'base64url');
  const ekPoint = Buffer.concat([Buffer.from([4]), ekX, Buffer.from(jwk.y, 'base64url')]);
  const ecdh = createECDH(curve.openssl);
  const ephemeral = ecdh.generateKeys(); // uncompressed: 04 || x || y
  const z = ecdh.computeSecret(ekPoint); // the x-coordinate of the shared point
  const ephX = ephemeral.subarray(1, 1 + curve.size);
  const ephY = ephemeral.subarray(1 + curve.size);
  const seed = kdfe({
    hash: ek.nameAlg,
    key: z,
    label: 'IDENTITY',
    contextU: ephX,
    contextV: ekX,
    bits: digestSize * 8,
  });
  return { seed, encryptedSecret: tpm2b(Buffer.concat([tpm2b(ephX), tpm2b(ephY)])) };
}

/**
 * TPM2_MakeCredential in software: the blobs the device hands to TPM2_ActivateCredential, which releases
 * `credential` only inside the TPM that holds the EK and only for the key named `akName` loaded in it.
 * `credential` must not be longer than the digest of the EK's nameAlg.
 */
export function makeCredential(input: { ek: TpmPublic; akName: Buffer; credential: Buffer }): {
  idObject: Buffer;
  encryptedSecret: Buffer;
} {
  const { ek, akName, credential } = input;
  const digestSize = hashInfo[ek.nameAlg].size;
  if (credential.length === 0 || credential.length > digestSize) {
    throw new RangeError(`credential of ${credential.length} bytes (1-${digestSize} for ${ek.nameAlg})`);
  }
  const symBits = ek.symmetric === 'aes-128-cfb' ? 128 : ek.symmetric === 'aes-256-cfb' ? 256 : undefined;
  if (symBits === undefined || !ek.attributes.restricted || !ek.attributes.decrypt) {
    throw new TpmFormatError(
      'TPMT_PUBLIC.parameters.symmetric',
      'the EK is not a restricted decryption key with AES-CFB',
    );
  }
  const { seed, encryptedSecret } = seedFor(ek);
  const empty = Buffer.alloc(0);
  const symKey = kdfa({
    hash: ek.nameAlg,
    key: seed,
    label: 'STORAGE',
    contextU: akName,
    contextV: empty,
    bits: symBits,
  });
  const cipher = createCipheriv(`aes-${symBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(credential)), cipher.final()]);
  const hmacKey = kdfa({
    hash: ek.nameAlg,
    key: seed,
    label: 'INTEGRITY',
    contextU: empty,
    contextV: empty,
    bits: digestSize * 8,
  });
  const outerHmac = createHmac(ek.nameAlg, hmacKey)
    .update(Buffer.concat([encIdentity, akName]))
    .digest();
  return { idObject: tpm2b(Buffer.concat([tpm2b(outerHmac), encIdentity])), encryptedSecret };
}

/** tpm2-tools' credential file magic (`tpm2_makecredential -o`, `tpm2_activatecredential -i`). */
const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;

/** tpm2-tools' credential file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
export function credentialFile(blobs: { idObject: Buffer; encryptedSecret: Buffer }): Buffer {
  return Buffer.concat([u32be(CREDENTIAL_FILE_MAGIC), u32be(1), blobs.idObject, blobs.encryptedSecret]);
}
