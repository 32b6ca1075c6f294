import { createHash } from 'node:crypto';
import { canonicalJson } from './jcs.ts';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainFields {
  seq: number;
  ts: number;
  type: string;
  actor: string;
  subject: string | null;
  data: unknown;
  prevHash: string;
}

/**
 * The RFC 8785 (JCS) canonical JSON of an entry, given its data already in canonical JSON: the members in
 * JCS order (actor, data, prevHash, seq, subject, ts, type), strings and integers as JCS writes them.
 */
function canonicalEntry(fields: Omit<ChainFields, 'data'>, dataJson: string): string {
  return (
    `{"actor":${JSON.stringify(fields.actor)},"data":${dataJson},"prevHash":${JSON.stringify(fields.prevHash)}` +
    `,"seq":${canonicalJson(fields.seq)},"subject":${JSON.stringify(fields.subject)},"ts":${canonicalJson(fields.ts)}` +
    `,"type":${JSON.stringify(fields.type)}}`
  );
}

/** SHA-256 over the RFC 8785 (JCS) canonical JSON of the entry, including its sequence and the previous hash. */
export function entryHash(fields: ChainFields): string {
  const dataJson = canonicalJson(fields.data);
  if (dataJson === undefined) throw new Error('audit entry data cannot be canonicalized');
  return entryHashOfCanonicalData(fields, dataJson);
}

/** The same hash, for data that is already canonical JSON (as the log stores it): no parsing needed. */
export function entryHashOfCanonicalData(fields: Omit<ChainFields, 'data'>, dataJson: string): string {
  return createHash('sha256').update(canonicalEntry(fields, dataJson)).digest('hex');
}

export const anchorMessage = (seq: number, hash: string) => `${seq}:${hash}`;
