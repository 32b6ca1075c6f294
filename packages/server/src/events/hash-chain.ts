import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

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

/** SHA-256 over the RFC 8785 (JCS) canonical JSON of the entry, including its sequence and the previous hash. */
export function entryHash(fields: ChainFields): string {
  const canonical = canonicalize({
    seq: fields.seq,
    ts: fields.ts,
    type: fields.type,
    actor: fields.actor,
    subject: fields.subject,
    data: fields.data,
    prevHash: fields.prevHash,
  });
  if (canonical === undefined) throw new Error('audit entry cannot be canonicalized');
  return createHash('sha256').update(canonical).digest('hex');
}

export const anchorMessage = (seq: number, hash: string) => `${seq}:${hash}`;
