// The door of attestation/tpm: TPM 2.0 structures and crypto in software (no TPM needed on the server).
export type { TpmAlg } from './constants.ts';
export { TpmFormatError } from './errors.ts';
export { akProblems, parseTpm2bPublic, tpmName, type TpmPublic } from './public.ts';
export { credentialFile, makeCredential } from './credential.ts';
export { parseQuote, verifyQuoteSignature, type ParsedQuote } from './quote.ts';
export { formatPcrSelection, parsePcrSelection, pcrDigest } from './pcr.ts';
