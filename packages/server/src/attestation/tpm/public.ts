// TPM2B_PUBLIC / TPMT_PUBLIC (TPM 2.0 Part 2 §12.2) for RSA and ECC keys, their names (Part 1 §16) and the
// checks that make a key an attestation key (TCG EK Credential Profile; Part 1 §24: a restricted signing key).
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import {
  OBJECT_ATTRIBUTE_BITS,
  TPM_ALG,
  eccCurves,
  hashAlgFromId,
  hashInfo,
  type TpmAlg,
} from './constants.ts';
import { TpmReader } from './marshal.ts';

export interface TpmPublic {
  type: 'rsa' | 'ecc';
  nameAlg: TpmAlg;
  attributes: {
    fixedTPM: boolean;
    fixedParent: boolean;
    sensitiveDataOrigin: boolean;
    userWithAuth: boolean;
    restricted: boolean;
    decrypt: boolean;
    sign: boolean;
    adminWithPolicy: boolean;
  };
  /** 'rsa-2048', 'ecc-p256', 'ecc-p384' */
  algorithm: string;
  /** The public key. */
  key: KeyObject;
  /** The TPMT_PUBLIC bytes (without the 2-byte size), for the name. */
  publicArea: Buffer;
  /** Symmetric scheme of a storage/EK key (for MakeCredential): 'aes-128-cfb' | 'aes-256-cfb' | null */
  symmetric: string | null;
}

const MAX_RSA_KEY_BYTES = 512;
const MAX_ECC_KEY_BYTES = 128;

function attributesOf(bits: number): TpmPublic['attributes'] {
  const has = (bit: number) => ((bits >>> bit) & 1) === 1;
  const b = OBJECT_ATTRIBUTE_BITS;
  return {
    fixedTPM: has(b.fixedTPM),
    fixedParent: has(b.fixedParent),
    sensitiveDataOrigin: has(b.sensitiveDataOrigin),
    userWithAuth: has(b.userWithAuth),
    restricted: has(b.restricted),
    decrypt: has(b.decrypt),
    sign: has(b.sign),
    adminWithPolicy: has(b.adminWithPolicy),
  };
}

/** TPMT_SYM_DEF_OBJECT: only AES in CFB mode is usable for MakeCredential; anything else but NULL is refused. */
function readSymmetric(r: TpmReader): string | null {
  const alg = r.u16('parameters.symmetric.algorithm');
  if (alg === TPM_ALG.NULL) return null;
  if (alg !== TPM_ALG.AES) r.fail('parameters.symmetric.algorithm', `unsupported 0x${alg.toString(16)}`);
  const keyBits = r.u16('parameters.symmetric.keyBits');
  const mode = r.u16('parameters.symmetric.mode');
  if (keyBits !== 128 && keyBits !== 256) r.fail('parameters.symmetric.keyBits', `unsupported ${keyBits}`);
  if (mode !== TPM_ALG.CFB) r.fail('parameters.symmetric.mode', `unsupported 0x${mode.toString(16)}`);
  return `aes-${keyBits}-cfb`;
}

/** TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME: alg, then details by alg (Part 2 §11.2.3–§11.2.5). */
function readScheme(r: TpmReader, field: string): void {
  const alg = r.u16(`${field}.scheme`);
  if (alg === TPM_ALG.NULL || alg === TPM_ALG.RSAES) return; // RSAES has empty details
  r.u16(`${field}.details.hashAlg`);
  if (alg === TPM_ALG.ECDAA) r.u16(`${field}.details.count`);
}

function unsignedB64url(bytes: Buffer, size?: number): string {
  let out = bytes;
  if (size !== undefined && bytes.length < size)
    out = Buffer.concat([Buffer.alloc(size - bytes.length), bytes]);
  return out.toString('base64url');
}

/** JWK `e`: the exponent as big-endian bytes without leading zeros (RFC 7518 §6.3.1.2). */
function exponentB64url(exponent: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(exponent);
  let start = 0;
  while (start < 3 && bytes[start] === 0) start++;
  return bytes.subarray(start).toString('base64url');
}

function readRsa(r: TpmReader): Pick<TpmPublic, 'algorithm' | 'key' | 'symmetric'> {
  const symmetric = readSymmetric(r);
  readScheme(r, 'parameters.scheme');
  const keyBits = r.u16('parameters.keyBits');
  const exponent = r.u32('parameters.exponent') || 65537;
  const n = r.tpm2b('unique.rsa', MAX_RSA_KEY_BYTES);
  if (keyBits < 2048 || keyBits % 8 !== 0) r.fail('parameters.keyBits', `unsupported ${keyBits}`);
  if (n.length !== keyBits / 8) r.fail('unique.rsa', `modulus of ${n.length} bytes for ${keyBits} bits`);
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: { kty: 'RSA', n: unsignedB64url(n), e: exponentB64url(exponent) },
      format: 'jwk',
    });
  } catch {
    r.fail('unique.rsa', 'not an RSA public key');
  }
  return { algorithm: `rsa-${keyBits}`, key, symmetric };
}

function readEcc(r: TpmReader): Pick<TpmPublic, 'algorithm' | 'key' | 'symmetric'> {
  const symmetric = readSymmetric(r);
  readScheme(r, 'parameters.scheme');
  const curveId = r.u16('parameters.curveID');
  readScheme(r, 'parameters.kdf');
  const x = r.tpm2b('unique.ecc.x', MAX_ECC_KEY_BYTES);
  const y = r.tpm2b('unique.ecc.y', MAX_ECC_KEY_BYTES);
  const curve = eccCurves[curveId];
  if (curve === undefined) r.fail('parameters.curveID', `unsupported curve 0x${curveId.toString(16)}`);
  if (x.length > curve.size || y.length > curve.size) r.fail('unique.ecc', `point larger than ${curve.crv}`);
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: { kty: 'EC', crv: curve.crv, x: unsignedB64url(x, curve.size), y: unsignedB64url(y, curve.size) },
      format: 'jwk',
    });
  } catch {
    r.fail('unique.ecc', `not a point on ${curve.crv}`);
  }
  return { algorithm: `ecc-${curve.name}`, key, symmetric };
}

/** Parses a TPM2B_PUBLIC (tpm2-tools' `-u` output): RSA and ECC keys; throws TpmFormatError naming the field. */
export function parseTpm2bPublic(bytes: Buffer): TpmPublic {
  const outer = new TpmReader(bytes, 'TPM2B_PUBLIC');
  const area = outer.tpm2b('size');
  outer.end();
  const r = new TpmReader(area, 'TPMT_PUBLIC');
  const typeId = r.u16('type');
  if (typeId !== TPM_ALG.RSA && typeId !== TPM_ALG.ECC)
    r.fail('type', `unsupported 0x${typeId.toString(16)}`);
  const nameAlg = hashAlgFromId(r.u16('nameAlg'), 'TPMT_PUBLIC.nameAlg');
  const attributes = attributesOf(r.u32('objectAttributes'));
  r.tpm2b('authPolicy', 64);
  const type = typeId === TPM_ALG.RSA ? 'rsa' : 'ecc';
  const rest = type === 'rsa' ? readRsa(r) : readEcc(r);
  r.end();
  return { type, nameAlg, attributes, publicArea: Buffer.from(area), ...rest };
}

/** The object's name: nameAlg (2 bytes, big-endian) || H_nameAlg(TPMT_PUBLIC) (Part 1 §16). */
export function tpmName(pub: TpmPublic): Buffer {
  const digest = createHash(pub.nameAlg).update(pub.publicArea).digest();
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(hashInfo[pub.nameAlg].id);
  return Buffer.concat([alg, digest]);
}

/**
 * Why a key cannot be an attestation key; empty when fit. An AK must be a restricted signing key (it signs only
 * TPM-generated structures, so a quote cannot be forged with it: Part 1 §24.4 / TCG EK Credential Profile),
 * created inside this TPM and bound to it (fixedTPM, fixedParent, sensitiveDataOrigin), never a decryption key.
 */
export function akProblems(ak: TpmPublic): string[] {
  const a = ak.attributes;
  const problems: string[] = [];
  if (a.restricted && a.decrypt)
    problems.push('a restricted decryption (storage) key, not an attestation key');
  else if (a.decrypt) problems.push('a decryption key (decrypt attribute set)');
  if (!a.sign) problems.push('not a signing key (sign attribute clear)');
  if (!a.restricted) problems.push('not restricted (it could sign data that mimics a quote)');
  if (!a.fixedTPM) problems.push('not fixedTPM (it could leave the TPM)');
  if (!a.fixedParent) problems.push('not fixedParent (it could be duplicated)');
  if (!a.sensitiveDataOrigin)
    problems.push('not sensitiveDataOrigin (its private key was not made by the TPM)');
  return problems;
}
