// Algorithm identifiers and constants from TPM 2.0 Library, Part 2 (Structures), §6 and §10.
import { TpmFormatError } from './errors.ts';

export const tpmAlgs = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
export type TpmAlg = (typeof tpmAlgs)[number];

export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  AES: 0x0006,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

/** TPM_GENERATED_VALUE: every TPMS_ATTEST the TPM signs starts with it (Part 2 §6.2). */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_QUOTE (Part 2 §6.9). */
export const TPM_ST_ATTEST_QUOTE = 0x8018;

interface HashInfo {
  id: number;
  size: number;
}
export const hashInfo: Record<TpmAlg, HashInfo> = {
  sha1: { id: TPM_ALG.SHA1, size: 20 },
  sha256: { id: TPM_ALG.SHA256, size: 32 },
  sha384: { id: TPM_ALG.SHA384, size: 48 },
  sha512: { id: TPM_ALG.SHA512, size: 64 },
};

export function isTpmAlg(name: string): name is TpmAlg {
  return (tpmAlgs as readonly string[]).includes(name);
}

export function hashAlgFromId(id: number, field: string): TpmAlg {
  const found = tpmAlgs.find((alg) => hashInfo[alg].id === id);
  if (found === undefined) {
    throw new TpmFormatError(field, `unsupported hash algorithm 0x${id.toString(16).padStart(4, '0')}`);
  }
  return found;
}

/** TPM_ECC_CURVE (Part 2 §6.4) → JWK curve and our algorithm name. */
export const eccCurves: Record<number, { crv: 'P-256' | 'P-384'; name: 'p256' | 'p384'; size: number }> = {
  0x0003: { crv: 'P-256', name: 'p256', size: 32 },
  0x0004: { crv: 'P-384', name: 'p384', size: 48 },
};

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const OBJECT_ATTRIBUTE_BITS = {
  fixedTPM: 1,
  stClear: 2,
  fixedParent: 4,
  sensitiveDataOrigin: 5,
  userWithAuth: 6,
  adminWithPolicy: 7,
  noDA: 10,
  encryptedDuplication: 11,
  restricted: 16,
  decrypt: 17,
  sign: 18,
} as const;
