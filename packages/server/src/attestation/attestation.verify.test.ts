// The verifier's order of checks and the standing rule, on parsed values (the TPM primitives stood in).
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  normalizeSelection,
  standingOf,
  verifyQuote,
  type QuoteEvidence,
  type QuoteTpm,
} from './attestation.verify.ts';
import { TpmFormatError, type ParsedQuote, type TpmPublic } from './tpm/index.ts';

const NOW = 1_800_000_000_000;
const NONCE = 'ab'.repeat(32);
const DIGEST = Buffer.alloc(32, 7);

const ak: TpmPublic = {
  type: 'ecc',
  nameAlg: 'sha256',
  attributes: {
    fixedTPM: true,
    fixedParent: true,
    sensitiveDataOrigin: true,
    userWithAuth: true,
    restricted: true,
    decrypt: false,
    sign: true,
    adminWithPolicy: false,
  },
  algorithm: 'ecc-p256',
  key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  publicArea: Buffer.alloc(0),
  symmetric: null,
};

const parsed: ParsedQuote = {
  magic: 0xff544347,
  type: 0x8018,
  qualifiedSigner: Buffer.alloc(0),
  extraData: Buffer.from(NONCE, 'hex'),
  clock: 1n,
  resetCount: 0,
  restartCount: 0,
  safe: true,
  firmwareVersion: 1n,
  pcrSelection: [{ alg: 'sha256', pcrs: [7, 0] }],
  pcrDigest: DIGEST,
};

const tpm = (
  over: Partial<{
    quote: Partial<ParsedQuote>;
    valid: boolean;
    digest: Buffer | undefined;
    throws: boolean;
  }> = {},
): QuoteTpm => ({
  parseQuote: () => {
    if (over.throws) throw new TpmFormatError('TPMS_ATTEST.magic', 'not a TPM-generated structure');
    return { ...parsed, ...over.quote };
  },
  verifyQuoteSignature: () => over.valid ?? true,
  pcrDigest: () => ('digest' in over ? over.digest : DIGEST),
});

const evidence = (over: Partial<QuoteEvidence> = {}): QuoteEvidence => ({
  key: { status: 'bound', ak },
  attest: Buffer.alloc(1),
  signature: Buffer.alloc(1),
  nonce: NONCE,
  nonceRow: { pcrSelection: 'sha256:0,7', expiresAt: NOW + 1, usedAt: null },
  pcrs: { sha256: { 0: '00'.repeat(32), 7: '11'.repeat(32) } },
  reference: { release: 'fw@1', values: { sha256: { 7: '11'.repeat(32) } } },
  now: NOW,
  ...over,
});

describe('verifyQuote', () => {
  it('affirms a genuine quote whose selected PCRs match the reference values', () => {
    expect(verifyQuote(evidence(), tpm())).toEqual({
      tier: 'affirming',
      reason: 'ok',
      detail: 'sha256:0,7 match the reference values of fw@1',
      release: 'fw@1',
      pcrSelection: 'sha256:0,7',
      mismatchedPcrs: [],
    });
  });

  it('answers the first failing check', () => {
    const reason = (ev: Partial<QuoteEvidence>, t: QuoteTpm = tpm()) => verifyQuote(evidence(ev), t).reason;
    expect(reason({ key: undefined }, tpm({ throws: true }))).toBe('key_not_registered');
    expect(reason({ key: { status: 'pending', ak } }, tpm({ valid: false }))).toBe('key_not_bound');
    expect(reason({}, tpm({ throws: true }))).toBe('malformed_quote');
    expect(reason({ nonceRow: undefined }, tpm({ valid: false }))).toBe('signature_invalid');
    expect(reason({ nonce: 'cd'.repeat(32) })).toBe('nonce_mismatch');
    expect(reason({ nonceRow: undefined })).toBe('nonce_mismatch');
    expect(reason({ nonceRow: { pcrSelection: 'sha256:0,7', expiresAt: NOW, usedAt: null } })).toBe(
      'nonce_mismatch',
    );
    expect(reason({ nonceRow: { pcrSelection: 'sha256:0,7', expiresAt: NOW + 1, usedAt: NOW - 1 } })).toBe(
      'nonce_mismatch',
    );
    expect(reason({ nonceRow: { pcrSelection: 'sha256:0,1,7', expiresAt: NOW + 1, usedAt: null } })).toBe(
      'selection_mismatch',
    );
    expect(reason({}, tpm({ digest: Buffer.alloc(32) }))).toBe('pcr_digest_mismatch');
    expect(reason({}, tpm({ digest: undefined }))).toBe('pcr_digest_mismatch');
  });

  it('warns without reference values (none known, none recorded, none for the selection)', () => {
    const warn = (reference: QuoteEvidence['reference']) => verifyQuote(evidence({ reference }), tpm());
    expect(warn(undefined)).toMatchObject({ tier: 'warning', reason: 'no_reference_values', release: null });
    expect(warn({ release: 'fw@1', values: null })).toMatchObject({ tier: 'warning', release: 'fw@1' });
    expect(warn({ release: 'fw@1', values: { sha256: { 4: '11'.repeat(32) } } })).toMatchObject({
      tier: 'warning',
      reason: 'no_reference_values',
    });
  });

  it('is contraindicated naming every differing PCR', () => {
    const v = verifyQuote(
      evidence({
        reference: { release: 'fw@1', values: { sha256: { 0: 'ff'.repeat(32), 7: 'EE'.repeat(32) } } },
      }),
      tpm(),
    );
    expect(v).toMatchObject({ tier: 'contraindicated', reason: 'pcr_mismatch', mismatchedPcrs: [0, 7] });
    expect(v.detail).toBe('PCR 0, 7 differ from the reference values of fw@1');
  });
});

describe('standingOf', () => {
  const DAY = 86_400_000;
  it('none without a bound key; overdue past maxAge; contraindicated stays until a good verdict', () => {
    expect(standingOf(undefined, NOW, DAY)).toBe('none');
    expect(standingOf({ boundAt: undefined, last: undefined, lastGoodAt: undefined }, NOW, DAY)).toBe('none');
    const bound = { boundAt: NOW, last: undefined, lastGoodAt: undefined };
    expect(standingOf(bound, NOW + DAY - 1, DAY)).toBe('none');
    expect(standingOf(bound, NOW + DAY, DAY)).toBe('overdue');
    const good = { boundAt: NOW, last: { tier: 'warning' as const, at: NOW + 10 }, lastGoodAt: NOW + 10 };
    expect(standingOf(good, NOW + DAY, DAY)).toBe('warning');
    expect(standingOf(good, NOW + DAY + 10, DAY)).toBe('overdue');
    const bad = { ...good, last: { tier: 'contraindicated' as const, at: NOW + 20 } };
    expect(standingOf(bad, NOW + 30, DAY)).toBe('contraindicated');
    expect(standingOf(bad, NOW + 2 * DAY, DAY)).toBe('contraindicated');
  });

  it('one spelling per PCR selection', () => {
    expect(
      normalizeSelection([
        { alg: 'sha256', pcrs: [7, 0, 7] },
        { alg: 'sha1', pcrs: [1] },
        { alg: 'sha384', pcrs: [] },
      ]),
    ).toBe('sha1:1+sha256:0,7');
  });
});
