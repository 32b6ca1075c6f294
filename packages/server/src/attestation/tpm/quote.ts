// TPM2_Quote output: TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (Part 2 §10.12) and the TPMT_SIGNATURE over it
// (Part 2 §11.3.4), verified with the attestation key's public key.
import { constants, verify, type KeyObject } from 'node:crypto';
import {
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  hashAlgFromId,
  type TpmAlg,
} from './constants.ts';
import { TpmReader } from './marshal.ts';
import { readPcrSelection, type PcrSelection } from './pcr.ts';
import type { TpmPublic } from './public.ts';

export interface ParsedQuote {
  magic: number;
  type: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  pcrSelection: PcrSelection[];
  pcrDigest: Buffer;
}

/** Parses the TPMS_ATTEST a quote signs (`tpm2_quote -m`); throws TpmFormatError naming the field. */
export function parseQuote(attest: Buffer): ParsedQuote {
  const r = new TpmReader(attest, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  // A TPM signs with a restricted key only what starts with TPM_GENERATED_VALUE (Part 1 §24.4).
  if (magic !== TPM_GENERATED_VALUE) r.fail('magic', `0x${magic.toString(16)} is not TPM_GENERATED_VALUE`);
  const type = r.u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE) r.fail('type', `0x${type.toString(16)} is not TPM_ST_ATTEST_QUOTE`);
  const qualifiedSigner = r.tpm2b('qualifiedSigner', 2 + 64);
  const extraData = r.tpm2b('extraData', 64);
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safe = r.u8('clockInfo.safe');
  if (safe > 1) r.fail('clockInfo.safe', `${safe} is not a TPMI_YES_NO`);
  const firmwareVersion = r.u64('firmwareVersion');
  const pcrSelection = readPcrSelection(r, 'attested.quote.pcrSelect');
  const pcrDigest = r.tpm2b('attested.quote.pcrDigest', 64);
  r.end();
  return {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe: safe === 1,
    firmwareVersion,
    pcrSelection,
    pcrDigest,
  };
}

export type QuoteSignature =
  | { sigAlg: 'rsassa' | 'rsapss'; hashAlg: TpmAlg; sig: Buffer }
  | { sigAlg: 'ecdsa'; hashAlg: TpmAlg; r: Buffer; s: Buffer };

/** Parses a TPMT_SIGNATURE (`tpm2_quote -s`, tss format): RSASSA, RSAPSS or ECDSA; throws TpmFormatError. */
export function parseSignature(bytes: Buffer): QuoteSignature {
  const r = new TpmReader(bytes, 'TPMT_SIGNATURE');
  const alg = r.u16('sigAlg');
  if (alg !== TPM_ALG.RSASSA && alg !== TPM_ALG.RSAPSS && alg !== TPM_ALG.ECDSA) {
    r.fail('sigAlg', `unsupported 0x${alg.toString(16)}`);
  }
  const hashAlg = hashAlgFromId(r.u16('signature.hash'), 'TPMT_SIGNATURE.signature.hash');
  if (alg === TPM_ALG.ECDSA) {
    const sigR = r.tpm2b('signature.signatureR', 128);
    const sigS = r.tpm2b('signature.signatureS', 128);
    r.end();
    return { sigAlg: 'ecdsa', hashAlg, r: sigR, s: sigS };
  }
  const sig = r.tpm2b('signature.sig', 512);
  r.end();
  return { sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hashAlg, sig };
}

/** r || s, each left-padded to the curve's size (IEEE P1363), or undefined when one is too long. */
function p1363(sig: { r: Buffer; s: Buffer }, size: number): Buffer | undefined {
  const parts: Buffer[] = [];
  for (const value of [sig.r, sig.s]) {
    let start = 0;
    while (value.length - start > size && value[start] === 0) start++; // a TPM may send a leading zero
    const bytes = value.subarray(start);
    if (bytes.length > size) return undefined;
    parts.push(Buffer.alloc(size - bytes.length), bytes);
  }
  return Buffer.concat(parts);
}

const curveSizes: Record<string, number> = { prime256v1: 32, secp384r1: 48 };

function curveSize(key: KeyObject): number | undefined {
  const crv = key.asymmetricKeyDetails?.namedCurve;
  return crv === undefined ? undefined : curveSizes[crv];
}

function verifies(sig: QuoteSignature, ak: TpmPublic, attest: Buffer): boolean {
  const { key } = ak;
  if (sig.sigAlg === 'ecdsa') {
    if (ak.type !== 'ecc') return false;
    const size = curveSize(key);
    const raw = size === undefined ? undefined : p1363(sig, size);
    if (raw === undefined) return false;
    return verify(sig.hashAlg, attest, { key, dsaEncoding: 'ieee-p1363' }, raw);
  }
  if (ak.type !== 'rsa') return false;
  if (sig.sigAlg === 'rsassa')
    return verify(sig.hashAlg, attest, { key, padding: constants.RSA_PKCS1_PADDING }, sig.sig);
  const pss = { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO };
  return verify(sig.hashAlg, attest, pss, sig.sig);
}

/**
 * Verifies a TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA) over the TPMS_ATTEST bytes with the AK's public key: false
 * when it does not verify, or its scheme does not fit the key. Throws TpmFormatError when the signature does not
 * parse (so a caller can tell a malformed quote from a forged one).
 */
export function verifyQuoteSignature(input: { ak: TpmPublic; attest: Buffer; signature: Buffer }): boolean {
  const sig = parseSignature(input.signature);
  try {
    return verifies(sig, input.ak, input.attest);
  } catch {
    return false; // OpenSSL refuses some malformed signatures (wrong length) by throwing: not a valid signature
  }
}
