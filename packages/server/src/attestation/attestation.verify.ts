import type { AttestationReason, AttestationStanding, PcrValues, TrustTier } from '@bulwark/protocol';
import {
  parsePcrSelection,
  parseQuote,
  pcrDigest,
  TpmFormatError,
  verifyQuoteSignature,
  type ParsedQuote,
  type TpmAlg,
  type TpmPublic,
} from './tpm/index.ts';

/**
 * The verifier of the IETF RATS roles (RFC 9334 §3): appraises one TPM2_Quote against the device's bound
 * attestation key, the nonce it was given and the reference values of the release it runs, and answers an
 * AR4SI trust tier with one reason. Pure: the service reads the store and passes what it read.
 */

export type PcrSelection = { alg: TpmAlg; pcrs: number[] }[];

/** What the store knows for one quote: the device's key and the nonce named by the quote's body. */
export interface QuoteEvidence {
  key: { status: 'pending' | 'bound'; ak: TpmPublic } | undefined;
  /** TPMS_ATTEST bytes as signed. */
  attest: Buffer;
  /** TPMT_SIGNATURE bytes. */
  signature: Buffer;
  /** The nonce the body names (hex). */
  nonce: string;
  /** That nonce's row for this device, if any. */
  nonceRow: { pcrSelection: string; expiresAt: number; usedAt: number | null } | undefined;
  /** The PCR values the device sent. */
  pcrs: PcrValues;
  /** What the device runs and its release's reference values (firmware). */
  reference: { release: string; values: PcrValues | null } | undefined;
  now: number;
}

export interface Verdict {
  tier: TrustTier;
  reason: AttestationReason;
  detail: string;
  release: string | null;
  pcrSelection: string | null;
  mismatchedPcrs: number[];
}

/** The TPM primitives the verifier uses (the real ones by default; tests may stand in). */
export interface QuoteTpm {
  parseQuote(attest: Buffer): ParsedQuote;
  verifyQuoteSignature(input: { ak: TpmPublic; attest: Buffer; signature: Buffer }): boolean;
  pcrDigest: typeof pcrDigest;
}

const realTpm: QuoteTpm = { parseQuote, verifyQuoteSignature, pcrDigest };

const algOrder: readonly TpmAlg[] = ['sha1', 'sha256', 'sha384', 'sha512'];

/** One spelling per selection (banks in a fixed order, indexes ascending, empty banks left out). */
export function normalizeSelection(sel: PcrSelection): string {
  return [...sel]
    .filter((s) => s.pcrs.length > 0)
    .sort((a, b) => algOrder.indexOf(a.alg) - algOrder.indexOf(b.alg))
    .map((s) => `${s.alg}:${[...new Set(s.pcrs)].sort((a, b) => a - b).join(',')}`)
    .join('+');
}

function contraindicated(
  reason: AttestationReason,
  detail: string,
  more: Partial<Pick<Verdict, 'release' | 'pcrSelection' | 'mismatchedPcrs'>> = {},
): Verdict {
  return {
    tier: 'contraindicated',
    reason,
    detail,
    release: null,
    pcrSelection: null,
    mismatchedPcrs: [],
    ...more,
  };
}

/** Steps 2 and 3: the structures parse, and the registered AK signed them. */
function checkSignature(
  ev: QuoteEvidence & { key: { ak: TpmPublic } },
  tpm: QuoteTpm,
): ParsedQuote | Verdict {
  let quote: ParsedQuote;
  let valid: boolean;
  try {
    quote = tpm.parseQuote(ev.attest);
    valid = tpm.verifyQuoteSignature({ ak: ev.key.ak, attest: ev.attest, signature: ev.signature });
  } catch (err) {
    if (!(err instanceof TpmFormatError)) throw err;
    return contraindicated('malformed_quote', `the quote does not parse: ${err.message}`);
  }
  if (!valid)
    return contraindicated(
      'signature_invalid',
      "the quote is not signed by the device's registered attestation key",
    );
  return quote;
}

/** Step 4: the quote's qualifying data is an outstanding nonce of this device. */
function checkNonce(ev: QuoteEvidence, quote: ParsedQuote): Verdict | undefined {
  const quoted = quote.extraData.toString('hex');
  if (quoted !== ev.nonce)
    return contraindicated(
      'nonce_mismatch',
      'the quote was made for another nonce than the one sent with it',
    );
  const row = ev.nonceRow;
  if (!row) return contraindicated('nonce_mismatch', 'the nonce was never issued to this device');
  if (row.usedAt !== null)
    return contraindicated('nonce_mismatch', 'the nonce was already used: a replayed quote');
  if (row.expiresAt <= ev.now) return contraindicated('nonce_mismatch', 'the nonce expired');
  return undefined;
}

/** The selected PCRs whose value differs from a reference value; null when no reference covers the selection. */
function comparePcrs(selection: PcrSelection, sent: PcrValues, reference: PcrValues): number[] | null {
  let compared = 0;
  const mismatched = new Set<number>();
  for (const { alg, pcrs } of selection) {
    for (const index of pcrs) {
      const expected = reference[alg]?.[String(index)];
      if (expected === undefined) continue;
      compared += 1;
      if (sent[alg]?.[String(index)]?.toLowerCase() !== expected.toLowerCase()) mismatched.add(index);
    }
  }
  return compared === 0 ? null : [...mismatched].sort((a, b) => a - b);
}

/** Step 7: the values against the release's reference values. */
function appraise(ev: QuoteEvidence, quote: ParsedQuote, selection: string): Verdict {
  const release = ev.reference?.release ?? null;
  const values = ev.reference?.values ?? null;
  const warning = (detail: string): Verdict => ({
    tier: 'warning',
    reason: 'no_reference_values',
    detail,
    release,
    pcrSelection: selection,
    mismatchedPcrs: [],
  });
  if (!ev.reference) return warning('the quote is genuine, but the device reports no known firmware release');
  if (!values) return warning(`the quote is genuine, but release ${release} recorded no reference values`);
  const mismatched = comparePcrs(quote.pcrSelection, ev.pcrs, values);
  if (mismatched === null)
    return warning(`the quote is genuine, but release ${release} has no reference value for ${selection}`);
  if (mismatched.length > 0)
    return contraindicated(
      'pcr_mismatch',
      `PCR ${mismatched.join(', ')} differ${mismatched.length === 1 ? 's' : ''} from the reference values of ${release}`,
      { release, pcrSelection: selection, mismatchedPcrs: mismatched },
    );
  return {
    tier: 'affirming',
    reason: 'ok',
    detail: `${selection} match the reference values of ${release}`,
    release,
    pcrSelection: selection,
    mismatchedPcrs: [],
  };
}

/**
 * Appraises one quote. The first failing check decides: key registered and bound, structures parse,
 * signature by the AK, outstanding nonce, the selection asked for, PCR values that hash to the signed
 * digest, then the reference values (none: warning; a difference: contraindicated).
 */
export function verifyQuote(ev: QuoteEvidence, tpm: QuoteTpm = realTpm): Verdict {
  const { key } = ev;
  if (!key) return contraindicated('key_not_registered', 'the device has no registered attestation key');
  if (key.status !== 'bound')
    return contraindicated(
      'key_not_bound',
      'the attestation key was never bound to its endorsement key (credential activation)',
    );
  const quote = checkSignature({ ...ev, key }, tpm);
  if (!('pcrDigest' in quote)) return quote;
  const nonce = checkNonce(ev, quote);
  if (nonce) return nonce;
  const selection = normalizeSelection(quote.pcrSelection);
  const asked = ev.nonceRow ? normalizeSelection(parsePcrSelection(ev.nonceRow.pcrSelection)) : '';
  if (selection !== asked)
    return contraindicated('selection_mismatch', `the quote covers ${selection}, not ${asked} as asked`, {
      pcrSelection: selection,
    });
  const digest = tpm.pcrDigest({ alg: key.ak.nameAlg, selection: quote.pcrSelection, values: ev.pcrs });
  if (!digest || !digest.equals(quote.pcrDigest))
    return contraindicated(
      'pcr_digest_mismatch',
      digest
        ? 'the PCR values sent do not hash to the digest the TPM signed'
        : `PCR values missing for ${selection}`,
      { pcrSelection: selection },
    );
  return appraise(ev, quote, selection);
}

/** What the standing is computed from (per device, kept in memory by the service). */
export interface StandingState {
  /** When the key was bound; undefined without a bound key. */
  boundAt: number | undefined;
  /** The last verdict since the key was bound. */
  last: { tier: TrustTier; at: number } | undefined;
  /** The last affirming or warning verdict since the key was bound. */
  lastGoodAt: number | undefined;
}

/** When the device becomes overdue (its last good verdict or, before one, its binding, plus maxAge). */
export function dueAt(state: StandingState, maxAgeMs: number): number | null {
  if (state.boundAt === undefined) return null;
  return (state.lastGoodAt ?? state.boundAt) + maxAgeMs;
}

/**
 * A device's standing: `none` without a bound key (or bound and not attested yet, within maxAge);
 * `contraindicated` after such a verdict; `overdue` without an affirming or warning verdict younger than
 * maxAge (a freshly bound key has maxAge to attest first); else the last verdict's tier.
 */
export function standingOf(
  state: StandingState | undefined,
  now: number,
  maxAgeMs: number,
): AttestationStanding {
  if (!state || state.boundAt === undefined) return 'none';
  if (state.last?.tier === 'contraindicated') return 'contraindicated';
  const due = dueAt(state, maxAgeMs);
  if (due !== null && now >= due) return 'overdue';
  return state.last?.tier ?? 'none';
}
