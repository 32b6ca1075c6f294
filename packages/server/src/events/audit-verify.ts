import type { AuditAnchorTable, AuditLogTable, Db } from '../store/index.ts';
import { anchorMessage, entryHash, entryHashOfCanonicalData, GENESIS_HASH } from './hash-chain.ts';
import { readHeadFile, type HeadMark } from './head-mark.ts';

/** What the audit log needs to authenticate its head (the master-key MAC; see secrets/). */
export interface AnchorMac {
  mac(purpose: string, message: string): string;
  verifyMac(purpose: string, message: string, mac: string): boolean;
}

export const ANCHOR_PURPOSE = 'audit-anchor';
export const ENTRY_PURPOSE = 'audit-entry';

export interface VerifyResult {
  ok: boolean;
  entries: number;
  headSeq: number;
  /** The first entry found bad, and why. */
  badSeq?: number;
  reason?: string;
}

export interface VerifyOptions {
  pageSize?: number;
  onProgress?: (seq: number) => void;
}

interface VerifyDeps {
  db: Db;
  mac: AnchorMac;
  headFile?: string | undefined;
}

/** Where the walk stands, and the hashes it saw at the entries the anchors and the head file name. */
interface Walk {
  expectedSeq: number;
  prevHash: string;
  count: number;
  mark: HeadMark | undefined;
  first: AuditAnchorTable | undefined;
  markedHash?: string;
  firstAnchoredHash?: string;
}

interface Bad {
  badSeq: number;
  reason: string;
}

const failed = (walk: Walk, bad: Bad): VerifyResult => ({
  ok: false,
  entries: walk.count,
  headSeq: walk.expectedSeq - 1,
  ...bad,
});

function checkLink(walk: Walk, row: AuditLogTable): Bad | undefined {
  const expected = walk.expectedSeq;
  if (row.seq !== expected) {
    return row.seq > expected
      ? {
          badSeq: expected,
          reason: `entry ${expected} is missing (next entry found is ${row.seq}): a row was deleted`,
        }
      : { badSeq: row.seq, reason: `entry ${row.seq} is out of sequence` };
  }
  if (row.prev_hash !== walk.prevHash) {
    return {
      badSeq: row.seq,
      reason: `entry ${row.seq} does not link to entry ${row.seq - 1} (previous hash differs): a row was changed, inserted or removed before it`,
    };
  }
  return undefined;
}

function checkHash(row: AuditLogTable, mac: AnchorMac): Bad | undefined {
  const fields = {
    seq: row.seq,
    ts: row.ts,
    type: row.type,
    actor: row.actor,
    subject: row.subject,
    prevHash: row.prev_hash,
  };
  // Fast path: the stored data is the canonical JSON that was hashed. Otherwise (rows written before
  // data was stored canonically, or re-serialized by a tool) canonicalize what it means and compare.
  let recomputed = entryHashOfCanonicalData(fields, row.data);
  if (recomputed !== row.hash) {
    let data: unknown;
    try {
      data = JSON.parse(row.data);
    } catch {
      return {
        badSeq: row.seq,
        reason: `entry ${row.seq} has data that is not valid JSON: the row was edited`,
      };
    }
    recomputed = entryHash({ ...fields, data });
  }
  if (recomputed !== row.hash)
    return {
      badSeq: row.seq,
      reason: `entry ${row.seq} (${row.type}) does not match its hash: the row was edited`,
    };
  if (!mac.verifyMac(ENTRY_PURPOSE, row.hash, row.mac)) {
    return {
      badSeq: row.seq,
      reason: `entry ${row.seq} (${row.type}) has no valid MAC: it was not written by Bulwark (inserted or rewritten)`,
    };
  }
  return undefined;
}

/** Checks one row and advances the walk past it. */
function step(walk: Walk, row: AuditLogTable, mac: AnchorMac): Bad | undefined {
  const bad = checkLink(walk, row) ?? checkHash(row, mac);
  if (bad) return bad;
  if (walk.mark && row.seq === walk.mark.seq) walk.markedHash = row.hash;
  if (walk.first && row.seq === walk.first.seq) walk.firstAnchoredHash = row.hash;
  walk.prevHash = row.hash;
  walk.expectedSeq += 1;
  walk.count += 1;
  return undefined;
}

async function walkChain(deps: VerifyDeps, walk: Walk, options: VerifyOptions): Promise<Bad | undefined> {
  const pageSize = options.pageSize ?? 5000;
  for (;;) {
    const rows = await deps.db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>=', walk.expectedSeq)
      .orderBy('seq')
      .limit(pageSize)
      .execute();
    for (const row of rows) {
      const bad = step(walk, row, deps.mac);
      if (bad) return bad;
    }
    options.onProgress?.(walk.expectedSeq - 1);
    if (rows.length < pageSize) return undefined;
  }
}

function checkAnchorMacs(mac: AnchorMac, first: AuditAnchorTable, anchor: AuditAnchorTable): Bad | undefined {
  for (const a of first.seq === anchor.seq && first.mac === anchor.mac ? [anchor] : [first, anchor]) {
    if (!mac.verifyMac(ANCHOR_PURPOSE, anchorMessage(a.seq, a.hash), a.mac)) {
      return {
        badSeq: a.seq,
        reason: `the audit anchor for entry ${a.seq} fails its MAC: the anchor was forged or the master key differs`,
      };
    }
  }
  return undefined;
}

/** The anchor read before the walk must be reached and passed through; the one read after, not passed. */
function checkAnchors(walk: Walk, first: AuditAnchorTable, anchor: AuditAnchorTable): Bad | undefined {
  const last = walk.expectedSeq - 1;
  if (first.seq > last) {
    return {
      badSeq: last + 1,
      reason: `entry ${last + 1} is missing: the log ends at ${last} but was anchored at ${first.seq} (rows removed from the end)`,
    };
  }
  if (first.seq > 0 && walk.firstAnchoredHash !== first.hash)
    return {
      badSeq: first.seq,
      reason: `entry ${first.seq} differs from the anchored head: the chain was rewritten`,
    };
  if (anchor.seq < last) {
    return {
      badSeq: anchor.seq + 1,
      reason: `entry ${anchor.seq + 1} was not written by Bulwark: the log was anchored at ${anchor.seq} but continues to ${last} (rows inserted)`,
    };
  }
  if (anchor.seq === last && anchor.hash !== walk.prevHash)
    return { badSeq: last, reason: `entry ${last} differs from the anchored head: the chain was rewritten` };
  return undefined;
}

/** The head this node recorded (the head file) must be reached, with the hash it recorded. */
function checkMark(walk: Walk): Bad | undefined {
  const { mark } = walk;
  const last = walk.expectedSeq - 1;
  if (mark && mark.seq > last) {
    return {
      badSeq: last + 1,
      reason: `entry ${last + 1} is missing: this node saw the log reach entry ${mark.seq} (rows removed from the end, older anchor restored)`,
    };
  }
  if (mark && walk.markedHash !== undefined && walk.markedHash !== mark.hash)
    return {
      badSeq: mark.seq,
      reason: `entry ${mark.seq} differs from what this node recorded: the chain was rewritten`,
    };
  return undefined;
}

/**
 * Walks the whole chain: sequence numbers contiguous from 1, each hash recomputed, each link to the
 * previous hash, each entry's MAC (so a row with a correctly recomputed hash still cannot be forged
 * without the master key), and the head matching the MAC-protected anchor (which catches rows removed
 * from the end).
 *
 * The log may grow while it is walked (other nodes, the server beside the CLI), so the anchor is read
 * twice. Before the walk: every entry up to it was committed with it, so the walk must reach it and pass
 * through its hash (rows removed from the end). After the walk: every entry Bulwark committed that the
 * walk saw was anchored by then, so the walk must not go past it (rows inserted). Entries appended after
 * the first read are checked like all others; none is taken for a removal or an insertion.
 */
export async function verifyChain(deps: VerifyDeps, options: VerifyOptions = {}): Promise<VerifyResult> {
  const readAnchor = () =>
    deps.db.selectFrom('audit_anchor').selectAll().where('id', '=', 1).executeTakeFirst();
  const mark = readHeadFile(deps.headFile);
  const first = await readAnchor();
  const walk: Walk = { expectedSeq: 1, prevHash: GENESIS_HASH, count: 0, mark, first };
  const bad = await walkChain(deps, walk, options);
  if (bad) return failed(walk, bad);
  const anchor = await readAnchor();
  if (!first || !anchor)
    return failed(walk, { badSeq: walk.expectedSeq, reason: 'the audit anchor is missing: it was deleted' });
  const wrong =
    checkAnchorMacs(deps.mac, first, anchor) ?? checkAnchors(walk, first, anchor) ?? checkMark(walk);
  if (wrong) return failed(walk, wrong);
  return { ok: true, entries: walk.count, headSeq: walk.expectedSeq - 1 };
}
