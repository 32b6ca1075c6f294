// PCR selections: tpm2-tools' text form (`sha256:0,1,2+sha1:7`), TPML_PCR_SELECTION (Part 2 §10.6) and the
// quote's pcrDigest (Part 3 §18.4: the hash of the selected PCR values, banks in selection order, PCRs ascending).
import { createHash } from 'node:crypto';
import { hashAlgFromId, hashInfo, isTpmAlg, type TpmAlg } from './constants.ts';
import type { TpmReader } from './marshal.ts';

export interface PcrSelection {
  alg: TpmAlg;
  pcrs: number[];
}

/** PCR indexes a TPM 2.0 PC Client platform has (0–23). */
const PCR_COUNT = 24;

/** Parses tpm2-tools' PCR selection, e.g. `sha256:0,1,2` or `sha1:0+sha256:0,7`; throws a RangeError. */
export function parsePcrSelection(text: string): PcrSelection[] {
  const out: PcrSelection[] = [];
  for (const part of text.trim().split('+')) {
    const match = /^([a-z0-9]+):([0-9]+(?:,[0-9]+)*)$/.exec(part.trim());
    const alg = match?.[1];
    const list = match?.[2];
    if (alg === undefined || list === undefined)
      throw new RangeError(`not a PCR selection: ${JSON.stringify(part)}`);
    if (!isTpmAlg(alg)) throw new RangeError(`unknown PCR bank ${JSON.stringify(alg)}`);
    if (out.some((s) => s.alg === alg)) throw new RangeError(`PCR bank ${alg} selected twice`);
    const pcrs = list.split(',').map(Number);
    if (pcrs.some((p) => p >= PCR_COUNT))
      throw new RangeError(`PCR index out of range (0-${PCR_COUNT - 1}): ${list}`);
    out.push({ alg, pcrs: [...new Set(pcrs)].sort((a, b) => a - b) });
  }
  return out;
}

/** The text form tpm2-tools takes (`-l`): `sha256:0,1,2`, banks joined by `+`, PCRs ascending. */
export function formatPcrSelection(sel: PcrSelection[]): string {
  return sel.map((s) => `${s.alg}:${[...new Set(s.pcrs)].sort((a, b) => a - b).join(',')}`).join('+');
}

/** Reads a TPML_PCR_SELECTION: count, then per bank hash, sizeofSelect and the PCR bitmap (bit n = PCR n). */
export function readPcrSelection(r: TpmReader, field: string): PcrSelection[] {
  const count = r.u32(`${field}.count`);
  if (count > 16) r.fail(`${field}.count`, `${count} banks`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const alg = hashAlgFromId(r.u16(`${field}[${i}].hash`), `${field}[${i}].hash`);
    const size = r.u8(`${field}[${i}].sizeofSelect`);
    const bitmap = r.bytesOf(`${field}[${i}].pcrSelect`, size);
    const pcrs: number[] = [];
    bitmap.forEach((byte, index) => {
      for (let bit = 0; bit < 8; bit++) if ((byte >> bit) & 1) pcrs.push(index * 8 + bit);
    });
    out.push({ alg, pcrs });
  }
  return out;
}

/**
 * H_alg(concatenation of the selected PCR values in selection order, PCRs ascending within a bank) — what a
 * quote's pcrDigest must equal. Undefined when a selected value is missing or not a digest of its bank's size.
 */
export function pcrDigest(input: {
  alg: TpmAlg;
  selection: PcrSelection[];
  values: Partial<Record<TpmAlg, Record<string, string>>>;
}): Buffer | undefined {
  const parts: Buffer[] = [];
  for (const { alg, pcrs } of input.selection) {
    const bank = input.values[alg];
    for (const pcr of [...new Set(pcrs)].sort((a, b) => a - b)) {
      const hex = bank?.[String(pcr)];
      if (hex === undefined || !/^[0-9a-fA-F]*$/.test(hex) || hex.length !== hashInfo[alg].size * 2)
        return undefined;
      parts.push(Buffer.from(hex, 'hex'));
    }
  }
  return createHash(input.alg).update(Buffer.concat(parts)).digest();
}
