// attestation/tpm without a TPM: KDF vectors, PCR selections, and structures captured from swtpm + tpm2-tools
// (tpm2_createek -G rsa, tpm2_createak -G ecc -g sha256 -s ecdsa, tpm2_quote -q 0011223344 -l sha256:0,1,2,7).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kdfa, kdfe } from './credential.ts';
import {
  akProblems,
  formatPcrSelection,
  makeCredential,
  parsePcrSelection,
  parseQuote,
  parseTpm2bPublic,
  pcrDigest,
  tpmName,
  TpmFormatError,
  verifyQuoteSignature,
} from './index.ts';

const hex = (s: string) => Buffer.from(s, 'hex');
const EK_PUB = hex(
  '013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080004300100800' +
    '0000000001009254d356847bb86bdec5375ae1a05325d9c136e8e422af9115311ba059ec3e92ab5fb7715c025f743d8d977036c76b9f6e' +
    '2948f8fa40deea2ddedd7e3e24dc457365baaf716fd0551d549258e7a8e0b67608521720ca20f394263c06fdd4f61501c1ea5187b52104' +
    '31fa54d1af83528d2daed71744c6717fe96e5b833334855aa0465e9756e0a19adebb4c463963adef4d108dc3baacaccbb5c3d28e5ac79d' +
    '19ead141b8eba5a8e5f00b9c32115e829b2a017b37c13da0af48dd64a83b580df95b9cb2cb4167378127bc79e8b90d8d8ca57cdbcb336c' +
    '79a8166aaad0d24d8fde1c88656cfda965719d35f37a383890144748ed0f92cdcc0012d7ee1232764923',
);
const AK_PUB = hex(
  '00580023000b00050072000000100018000b00030010002092d11d9cbba540107a9f0753458d8f762dbc62f66cc2386f14c9eb32edc6' +
    'b3fe002031eff7003792ac1a73c59fac35dd1ebffb52fc29a018550f5daf44e098c6c295',
);
const AK_NAME = hex('000b92c8f03b516ef442afcb17607b4dca2c9c26936ce835ba664cac37caa815b0a4');
const ATTEST = hex(
  'ff54434780180022000b00a7f08578f36ef2cc3fb66f4ac652c68c67cfb0c8687a3cb0f8adcc492404320005001122334400000000000' +
    '00eb3000000010000000001201910230016363600000001000b03870000002038723a2e5e8a17aa7950dc008209944e898f69a7bd10a2' +
    '3c839d341e935fd5ca',
);
const SIGNATURE = hex(
  '0018000b0020056eb1960fc2530bd5422c83daf96a1947389c0ce9653efa2675ba8aff97d0270020abd70785be3b4b9e9796c48148111975' +
    '4045ef6507da8f26fee70ce97acde53c',
);

/** Expects `run` to throw a TpmFormatError whose message names `field`. */
function expectFormatError(run: () => unknown, field: RegExp): void {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TpmFormatError);
  expect((caught as Error).message).toMatch(field);
}

/** A copy of `bytes` with `patch` written at `at`. */
function patched(bytes: Buffer, at: number, patch: string): Buffer {
  const copy = Buffer.from(bytes);
  hex(patch).copy(copy, at);
  return copy;
}

/** A TPM2B_PUBLIC around the first `length` bytes of AK_PUB's TPMT_PUBLIC. */
function truncatedPublic(length: number): Buffer {
  const area = AK_PUB.subarray(2, 2 + length);
  const size = Buffer.alloc(2);
  size.writeUInt16BE(area.length);
  return Buffer.concat([size, area]);
}

describe('KDFa and KDFe', () => {
  const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const empty = Buffer.alloc(0);

  // Vectors from OpenSSL's own SP 800-108 implementation (`openssl kdf -kdfopt mac:HMAC -kdfopt digest:SHA256
  // -kdfopt hexkey:… -kdfopt salt:LABEL -kdfopt hexinfo:CONTEXT -keylen N KBKDF`): counter mode, a 32-bit
  // counter first, label, a zero byte, context, and L as 32 bits, which is KDFa.
  it('KDFa matches SP 800-108 counter mode (one block and several)', () => {
    const storage = kdfa({
      hash: 'sha256',
      key,
      label: 'STORAGE',
      contextU: hex('000b01'),
      contextV: hex('02030405'),
      bits: 128,
    });
    expect(storage.toString('hex')).toBe('b2f5e6ef67ca5c13a538d767931d6dc8');
    const integrity = kdfa({
      hash: 'sha256',
      key,
      label: 'INTEGRITY',
      contextU: empty,
      contextV: empty,
      bits: 320,
    });
    expect(integrity.toString('hex')).toBe(
      '5d667f96855df2608a698bfb8824b1268723b3e10f4dd14ced3899b162e3e939c5d5fc375e5a916f',
    );
  });

  it('KDFa keeps the leftmost bits when the length is not whole bytes', () => {
    const out = kdfa({ hash: 'sha256', key, label: 'X', contextU: empty, contextV: empty, bits: 12 });
    expect(out.length).toBe(2);
    expect((out[0] ?? 0) & 0xf0).toBe(0);
  });

  // From OpenSSL's SP 800-56C single-step KDF (`openssl kdf -kdfopt digest:SHA256 -kdfopt hexkey:Z -kdfopt
  // hexinfo:"IDENTITY\0"||U||V -keylen 32 SSKDF`), which is KDFe.
  it('KDFe matches the SP 800-56C one-step KDF', () => {
    const out = kdfe({
      hash: 'sha256',
      key: hex('0a0b0c0d'),
      label: 'IDENTITY',
      contextU: hex('aabbccdd'),
      contextV: hex('11223344'),
      bits: 256,
    });
    expect(out.toString('hex')).toBe('bbacdd7a1f0dbd866af9bd75920dc08aad5950b7796b1b240fbb88c4c9761dbf');
  });
});

describe('PCR selections', () => {
  it('parses and formats tpm2-tools selections', () => {
    expect(parsePcrSelection('sha256:0,1,2,3,4,5,6,7')).toEqual([
      { alg: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7] },
    ]);
    const two = parsePcrSelection('sha1:7+sha256:23,0,0');
    expect(two).toEqual([
      { alg: 'sha1', pcrs: [7] },
      { alg: 'sha256', pcrs: [0, 23] },
    ]);
    expect(formatPcrSelection(two)).toBe('sha1:7+sha256:0,23');
    expect(parsePcrSelection(formatPcrSelection(two))).toEqual(two);
  });

  it.each(['', 'sha256', 'sha256:', 'md5:1', 'sha256:24', 'sha256:1,x', 'sha256:1+sha256:2'])(
    'refuses %j',
    (text) => {
      expect(() => parsePcrSelection(text)).toThrow(RangeError);
    },
  );

  it('pcrDigest hashes the values in selection order; a missing or short value gives undefined', () => {
    const zero = '00'.repeat(32);
    const selection = [{ alg: 'sha256' as const, pcrs: [7, 0, 1, 2] }];
    const values = { sha256: { '0': zero, '1': zero, '2': zero, '7': zero } };
    expect(pcrDigest({ alg: 'sha256', selection, values })?.equals(parseQuote(ATTEST).pcrDigest)).toBe(true);
    const one = { sha256: { '7': 'ab'.repeat(32) }, sha1: { '0': '00'.repeat(20) } };
    const both = [
      { alg: 'sha1' as const, pcrs: [0] },
      { alg: 'sha256' as const, pcrs: [7] },
    ];
    const expected = createHash('sha384')
      .update(Buffer.concat([hex('00'.repeat(20)), hex('ab'.repeat(32))]))
      .digest();
    expect(pcrDigest({ alg: 'sha384', selection: both, values: one })?.equals(expected)).toBe(true);
    expect(pcrDigest({ alg: 'sha256', selection, values: { sha256: { '0': zero } } })).toBeUndefined();
    expect(pcrDigest({ alg: 'sha256', selection: both, values: { sha256: one.sha256 } })).toBeUndefined();
    const short = { sha256: { ...values.sha256, '7': '00'.repeat(20) } };
    expect(pcrDigest({ alg: 'sha256', selection, values: short })).toBeUndefined();
  });
});

describe('structures captured from swtpm', () => {
  it('parses the EK and the AK and names the AK as tpm2_createak -n did', () => {
    const ek = parseTpm2bPublic(EK_PUB);
    expect(ek).toMatchObject({ type: 'rsa', algorithm: 'rsa-2048', symmetric: 'aes-128-cfb' });
    expect(ek.key.asymmetricKeyDetails).toMatchObject({ modulusLength: 2048, publicExponent: 65537n });
    const ak = parseTpm2bPublic(AK_PUB);
    expect(ak).toMatchObject({ type: 'ecc', algorithm: 'ecc-p256', nameAlg: 'sha256' });
    expect(ak.attributes).toEqual({
      fixedTPM: true,
      fixedParent: true,
      sensitiveDataOrigin: true,
      userWithAuth: true,
      restricted: true,
      decrypt: false,
      sign: true,
      adminWithPolicy: false,
    });
    expect(tpmName(ak).equals(AK_NAME)).toBe(true);
  });

  it('names what makes a key unfit as an attestation key', () => {
    const ak = parseTpm2bPublic(AK_PUB);
    expect(akProblems(ak)).toEqual([]);
    const loose = {
      ...ak,
      attributes: { ...ak.attributes, restricted: false, fixedTPM: false, fixedParent: false },
    };
    expect(akProblems(loose).join('; ')).toMatch(/not restricted.*not fixedTPM.*not fixedParent/);
    const imported = { ...ak, attributes: { ...ak.attributes, sensitiveDataOrigin: false } };
    expect(akProblems(imported)).toEqual([expect.stringMatching(/sensitiveDataOrigin/)]);
    expect(akProblems(parseTpm2bPublic(EK_PUB)).join('; ')).toMatch(
      /restricted decryption.*not a signing key/,
    );
  });

  it('parses the quote and verifies its ECDSA signature', () => {
    const quote = parseQuote(ATTEST);
    expect(quote).toMatchObject({
      magic: 0xff544347,
      type: 0x8018,
      clock: 0xeb3n,
      resetCount: 1,
      restartCount: 0,
      safe: true,
      firmwareVersion: 0x2019102300163636n,
      pcrSelection: [{ alg: 'sha256', pcrs: [0, 1, 2, 7] }],
    });
    expect(quote.extraData.toString('hex')).toBe('0011223344');
    expect(quote.qualifiedSigner.length).toBe(34);
    const ak = parseTpm2bPublic(AK_PUB);
    expect(verifyQuoteSignature({ ak, attest: ATTEST, signature: SIGNATURE })).toBe(true);
    expect(
      verifyQuoteSignature({ ak, attest: patched(ATTEST, 0x2c, 'ff11223344'), signature: SIGNATURE }),
    ).toBe(false);
    expect(verifyQuoteSignature({ ak: parseTpm2bPublic(EK_PUB), attest: ATTEST, signature: SIGNATURE })).toBe(
      false,
    );
  });
});

describe('malformed input throws TpmFormatError naming the field', () => {
  it('TPM2B_PUBLIC', () => {
    expectFormatError(() => parseTpm2bPublic(Buffer.alloc(0)), /TPM2B_PUBLIC\.size/);
    expectFormatError(() => parseTpm2bPublic(AK_PUB.subarray(0, 40)), /TPM2B_PUBLIC\.size: truncated/);
    expectFormatError(() => parseTpm2bPublic(Buffer.concat([AK_PUB, hex('00')])), /TPM2B_PUBLIC\.end/);
    expectFormatError(() => parseTpm2bPublic(truncatedPublic(1)), /TPMT_PUBLIC\.type: truncated/);
    expectFormatError(() => parseTpm2bPublic(truncatedPublic(6)), /TPMT_PUBLIC\.objectAttributes: truncated/);
    expectFormatError(
      () => parseTpm2bPublic(truncatedPublic(AK_PUB.length - 4)),
      /TPMT_PUBLIC\.unique\.ecc\.y/,
    );
    expectFormatError(() => parseTpm2bPublic(patched(AK_PUB, 2, '0008')), /TPMT_PUBLIC\.type: unsupported/);
    expectFormatError(() => parseTpm2bPublic(patched(AK_PUB, 4, '0012')), /TPMT_PUBLIC\.nameAlg/);
    expectFormatError(
      () => parseTpm2bPublic(patched(AK_PUB, 18, '0099')),
      /TPMT_PUBLIC\.parameters\.curveID/,
    );
    expectFormatError(() => parseTpm2bPublic(patched(AK_PUB, 0x3b, 'ff')), /TPMT_PUBLIC\.unique\.ecc/);
    expectFormatError(
      () => parseTpm2bPublic(patched(EK_PUB, 0x2c, '0025')),
      /parameters\.symmetric\.algorithm/,
    );
  });

  it('TPMS_ATTEST', () => {
    expectFormatError(() => parseQuote(patched(ATTEST, 0, '00000000')), /TPMS_ATTEST\.magic/);
    expectFormatError(() => parseQuote(patched(ATTEST, 4, '8017')), /TPMS_ATTEST\.type/);
    expectFormatError(() => parseQuote(ATTEST.subarray(0, 3)), /TPMS_ATTEST\.magic: truncated/);
    expectFormatError(() => parseQuote(ATTEST.subarray(0, 50)), /TPMS_ATTEST\.clockInfo\.clock: truncated/);
    expectFormatError(() => parseQuote(ATTEST.subarray(0, ATTEST.length - 1)), /pcrDigest: truncated/);
    expectFormatError(() => parseQuote(Buffer.concat([ATTEST, hex('00')])), /TPMS_ATTEST\.end/);
    expectFormatError(() => parseQuote(patched(ATTEST, 0x4e, '0099')), /pcrSelect\[0\]\.hash/);
  });

  it('TPMT_SIGNATURE (a malformed signature is an error, a wrong one is false)', () => {
    const ak = parseTpm2bPublic(AK_PUB);
    const verify = (signature: Buffer) => () => verifyQuoteSignature({ ak, attest: ATTEST, signature });
    expectFormatError(verify(patched(SIGNATURE, 0, '0005')), /TPMT_SIGNATURE\.sigAlg/);
    expectFormatError(verify(SIGNATURE.subarray(0, 10)), /TPMT_SIGNATURE\.signature\.signatureR: truncated/);
    expectFormatError(verify(Buffer.concat([SIGNATURE, hex('00')])), /TPMT_SIGNATURE\.end/);
    expect(verify(patched(SIGNATURE, 6, '00'))()).toBe(false);
    // r with a leading zero byte (33 bytes) is the same number: it still verifies
    const padded = Buffer.concat([SIGNATURE.subarray(0, 4), hex('0021'), hex('00'), SIGNATURE.subarray(6)]);
    expect(verify(padded)()).toBe(true);
    const tooLong = Buffer.concat([SIGNATURE.subarray(0, 4), hex('0021'), hex('01'), SIGNATURE.subarray(6)]);
    expect(verify(tooLong)()).toBe(false);
  });
});

describe('makeCredential', () => {
  it('refuses a credential longer than the digest and an EK that is no storage key', () => {
    const ek = parseTpm2bPublic(EK_PUB);
    expect(() => makeCredential({ ek, akName: AK_NAME, credential: Buffer.alloc(33) })).toThrow(RangeError);
    const ak = parseTpm2bPublic(AK_PUB);
    expectFormatError(
      () => makeCredential({ ek: ak, akName: AK_NAME, credential: Buffer.alloc(32) }),
      /symmetric/,
    );
  });

  it('makes an ID object sized like TPM2_MakeCredential and a 256-byte RSA secret', () => {
    const blobs = makeCredential({
      ek: parseTpm2bPublic(EK_PUB),
      akName: AK_NAME,
      credential: Buffer.alloc(32, 1),
    });
    // TPM2B(TPM2B(HMAC 32) || AES-CFB(TPM2B(32 bytes))): 2 + 2 + 32 + 34
    expect(blobs.idObject.length).toBe(70);
    expect(blobs.idObject.readUInt16BE(0)).toBe(68);
    expect(blobs.encryptedSecret.length).toBe(2 + 256);
  });
});
