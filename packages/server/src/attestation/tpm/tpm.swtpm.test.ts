// attestation/tpm against the real stack: a software TPM (swtpm) driven by tpm2-tools. One swtpm for the file.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// eslint-disable-next-line no-restricted-imports -- test-support is every module's (the rule allows it one level up only)
import { startSwtpm, type Swtpm } from '../../test-support/swtpm.ts';
import {
  akProblems,
  credentialFile,
  makeCredential,
  parseQuote,
  parseTpm2bPublic,
  pcrDigest,
  tpmName,
  verifyQuoteSignature,
  type TpmAlg,
  type TpmPublic,
} from './index.ts';

let tpm: Swtpm;
const file = (name: string) => readFileSync(join(tpm.dir, name));

async function flush(): Promise<void> {
  await tpm.run('tpm2_flushcontext', ['-t']);
  await tpm.run('tpm2_flushcontext', ['-s']);
}

/**
 * Runs a tpm2 tool (arguments split on spaces; none here contains one), then flushes transient objects and
 * sessions: swtpm has no resource manager, so they would stay loaded and fill its 3 object slots.
 */
async function tool(name: string, args: string): Promise<Buffer> {
  try {
    return (await tpm.run(name, args.split(' '))).stdout;
  } finally {
    await flush();
  }
}

/** `tpm2_pcrread` output (`  sha256:\n    0 : 0x…`) as PcrValues. */
function parsePcrRead(text: string): Partial<Record<TpmAlg, Record<string, string>>> {
  const out: Partial<Record<TpmAlg, Record<string, string>>> = {};
  let bank: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const head = /^\s*(sha1|sha256|sha384|sha512):\s*$/.exec(line);
    if (head?.[1] !== undefined) out[head[1] as TpmAlg] = bank = {};
    const value = /^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (value?.[1] !== undefined && value[2] !== undefined && bank) bank[value[1]] = value[2].toLowerCase();
  }
  return out;
}

/** TPM2_ActivateCredential with the EK's policy (PolicySecret on the endorsement hierarchy). */
async function activate(input: { ekCtx: string; akCtx: string; cred: Buffer }): Promise<Buffer> {
  writeFileSync(join(tpm.dir, 'cred'), input.cred);
  try {
    await tpm.run('tpm2_startauthsession', '--policy-session -S s.ctx'.split(' '));
    await tpm.run('tpm2_policysecret', '-S s.ctx -c e'.split(' '));
    const args = `-c ${input.akCtx} -C ${input.ekCtx} -i cred -o out -P session:s.ctx`;
    await tpm.run('tpm2_activatecredential', args.split(' '));
    return file('out');
  } finally {
    await flush();
  }
}

async function quote(
  akCtx: string,
  nonce: Buffer,
  extra = '',
): Promise<{ attest: Buffer; signature: Buffer }> {
  const args = `-c ${akCtx} -l sha256:0,1,2,7 -q ${nonce.toString('hex')} -m m -s s -o pcrs -g sha256${extra}`;
  await tool('tpm2_quote', args);
  return { attest: file('m'), signature: file('s') };
}

const flip = (bytes: Buffer, at: number) => {
  const copy = Buffer.from(bytes);
  const index = at < 0 ? copy.length + at : at;
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
};

let ek: TpmPublic;
let ak: TpmPublic;
let akRsa: TpmPublic;

beforeAll(async () => {
  tpm = await startSwtpm();
  await tool('tpm2_createek', '-c ek.ctx -G rsa -u ek.pub');
  await tool('tpm2_createak', '-C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name');
  await tool('tpm2_createak', '-C ek.ctx -c akrsa.ctx -G rsa -g sha256 -s rsassa -u akrsa.pub -n akrsa.name');
  ek = parseTpm2bPublic(file('ek.pub'));
  ak = parseTpm2bPublic(file('ak.pub'));
  akRsa = parseTpm2bPublic(file('akrsa.pub'));
}, 120_000);

afterAll(async () => {
  await tpm?.stop();
});

describe('TPM2B_PUBLIC from tpm2_createek / tpm2_createak', () => {
  it('parses the RSA EK: a restricted decryption key, unfit as an attestation key', () => {
    expect(ek).toMatchObject({
      type: 'rsa',
      algorithm: 'rsa-2048',
      nameAlg: 'sha256',
      symmetric: 'aes-128-cfb',
    });
    expect(ek.attributes).toMatchObject({ restricted: true, decrypt: true, sign: false, fixedTPM: true });
    const problems = akProblems(ek).join('; ');
    expect(problems).toMatch(/restricted decryption/);
    expect(problems).toMatch(/not a signing key/);
  });

  it("parses ECC and RSA AKs: fit, named as tpm2-tools' -n output, keys as tpm2_readpublic's PEM", async () => {
    expect(ak).toMatchObject({ type: 'ecc', algorithm: 'ecc-p256', nameAlg: 'sha256', symmetric: null });
    expect(akRsa).toMatchObject({ type: 'rsa', algorithm: 'rsa-2048', symmetric: null });
    expect(akProblems(ak)).toEqual([]);
    expect(akProblems(akRsa)).toEqual([]);
    expect(tpmName(ak).equals(file('ak.name'))).toBe(true);
    expect(tpmName(akRsa).equals(file('akrsa.name'))).toBe(true);
    for (const [ctx, pub] of [
      ['ak.ctx', ak],
      ['akrsa.ctx', akRsa],
      ['ek.ctx', ek],
    ] as const) {
      await tool('tpm2_readpublic', `-c ${ctx} -f pem -o key.pem`);
      expect(pub.key.export({ type: 'spki', format: 'pem' })).toBe(file('key.pem').toString('utf8'));
    }
  });
});

describe('makeCredential → tpm2_activatecredential', () => {
  it('releases the credential to the TPM holding the EK, for the named AK', async () => {
    const credential = randomBytes(32);
    const cred = credentialFile(makeCredential({ ek, akName: tpmName(ak), credential }));
    expect((await activate({ ekCtx: 'ek.ctx', akCtx: 'ak.ctx', cred })).equals(credential)).toBe(true);
  });

  it('fails for another AK than the one named', async () => {
    const cred = credentialFile(makeCredential({ ek, akName: tpmName(akRsa), credential: randomBytes(32) }));
    await expect(activate({ ekCtx: 'ek.ctx', akCtx: 'ak.ctx', cred })).rejects.toThrow(
      /tpm2_activatecredential/,
    );
  });

  it('writes the same file layout as tpm2_makecredential -T none, whose output activates too', async () => {
    writeFileSync(join(tpm.dir, 'secret'), randomBytes(32));
    await tpm.run('tpm2_makecredential', [
      ...'-T none -u ek.pub -s secret -o theirs -n'.split(' '),
      file('ak.name').toString('hex'),
    ]);
    const theirs = file('theirs');
    const ours = credentialFile(makeCredential({ ek, akName: tpmName(ak), credential: randomBytes(32) }));
    expect(ours.length).toBe(theirs.length);
    expect(ours.subarray(0, 10).equals(theirs.subarray(0, 10))).toBe(true); // magic, version, TPM2B_ID_OBJECT size
    expect((await activate({ ekCtx: 'ek.ctx', akCtx: 'ak.ctx', cred: theirs })).equals(file('secret'))).toBe(
      true,
    );
  });

  it('works with an ECC EK (one-pass ECDH, KDFe)', async () => {
    await tool('tpm2_createek', '-c ekecc.ctx -G ecc -u ekecc.pub');
    await tool('tpm2_createak', '-C ekecc.ctx -c akecc.ctx -G ecc -g sha256 -s ecdsa -u akecc.pub');
    const eccEk = parseTpm2bPublic(file('ekecc.pub'));
    expect(eccEk).toMatchObject({ type: 'ecc', algorithm: 'ecc-p256', symmetric: 'aes-128-cfb' });
    const credential = randomBytes(32);
    const akName = tpmName(parseTpm2bPublic(file('akecc.pub')));
    const cred = credentialFile(makeCredential({ ek: eccEk, akName, credential }));
    expect((await activate({ ekCtx: 'ekecc.ctx', akCtx: 'akecc.ctx', cred })).equals(credential)).toBe(true);
  });
});

describe('tpm2_quote → parseQuote, verifyQuoteSignature, pcrDigest', () => {
  it('parses and verifies an ECDSA quote (as tpm2_checkquote does); tampered bytes and another AK fail', async () => {
    const nonce = randomBytes(32);
    const { attest, signature } = await quote('ak.ctx', nonce);
    const parsed = parseQuote(attest);
    expect(parsed.extraData.equals(nonce)).toBe(true);
    expect(parsed.pcrSelection).toEqual([{ alg: 'sha256', pcrs: [0, 1, 2, 7] }]);
    expect(verifyQuoteSignature({ ak, attest, signature })).toBe(true);
    await tool('tpm2_checkquote', `-u ak.pub -m m -s s -f pcrs -g sha256 -q ${nonce.toString('hex')}`);
    expect(verifyQuoteSignature({ ak, attest: flip(attest, 40), signature })).toBe(false);
    writeFileSync(join(tpm.dir, 'm'), flip(attest, 40));
    await expect(
      tool('tpm2_checkquote', `-u ak.pub -m m -s s -f pcrs -g sha256 -q ${nonce.toString('hex')}`),
    ).rejects.toThrow();
    expect(verifyQuoteSignature({ ak, attest, signature: flip(signature, -1) })).toBe(false);
    expect(verifyQuoteSignature({ ak: akRsa, attest, signature })).toBe(false);
  });

  it('verifies an RSASSA quote with its AK and not with another', async () => {
    const { attest, signature } = await quote('akrsa.ctx', randomBytes(32));
    expect(verifyQuoteSignature({ ak: akRsa, attest, signature })).toBe(true);
    expect(verifyQuoteSignature({ ak: akRsa, attest: flip(attest, -1), signature })).toBe(false);
    expect(verifyQuoteSignature({ ak: akRsa, attest, signature: flip(signature, 100) })).toBe(false);
    expect(verifyQuoteSignature({ ak, attest, signature })).toBe(false);
  });

  it('verifies an RSAPSS quote', async () => {
    await tool('tpm2_createak', '-C ek.ctx -c akpss.ctx -G rsa -g sha256 -s rsapss -u akpss.pub');
    const akPss = parseTpm2bPublic(file('akpss.pub'));
    const { attest, signature } = await quote('akpss.ctx', randomBytes(16), ' --scheme rsapss');
    expect(signature.readUInt16BE(0)).toBe(0x0016);
    expect(verifyQuoteSignature({ ak: akPss, attest, signature })).toBe(true);
    expect(verifyQuoteSignature({ ak: akPss, attest: flip(attest, 10), signature })).toBe(false);
  });

  it("pcrDigest of tpm2_pcrread's values equals the quote's; after tpm2_pcrextend the old ones do not", async () => {
    const selection = [{ alg: 'sha256' as const, pcrs: [0, 1, 2, 7] }];
    const before = parsePcrRead((await tool('tpm2_pcrread', 'sha256:0,1,2,7')).toString('utf8'));
    const first = parseQuote((await quote('ak.ctx', randomBytes(32))).attest);
    expect(pcrDigest({ alg: 'sha256', selection, values: before })?.equals(first.pcrDigest)).toBe(true);

    await tool('tpm2_pcrextend', `7:sha256=${randomBytes(32).toString('hex')}`);
    const after = parsePcrRead((await tool('tpm2_pcrread', 'sha256:0,1,2,7')).toString('utf8'));
    const second = parseQuote((await quote('ak.ctx', randomBytes(32))).attest);
    expect(after['sha256']?.['7']).not.toBe(before['sha256']?.['7']);
    expect(pcrDigest({ alg: 'sha256', selection, values: before })?.equals(second.pcrDigest)).toBe(false);
    expect(pcrDigest({ alg: 'sha256', selection, values: after })?.equals(second.pcrDigest)).toBe(true);
  });
});
