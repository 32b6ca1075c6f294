import { createHash, randomUUID } from 'node:crypto';
import { BulwarkError, standardIds, type FrameworkId } from '@bulwark/protocol';
import { subjectOf, type EventBus } from '../events/index.ts';
import type { ComplianceAttestationsTable, Db, Tx } from '../store/index.ts';
import type { AttestationView, ClauseMode } from './model.ts';

/**
 * Manual clauses (a framework clause in `manual` mode) are satisfied by an attestation: a statement by its
 * owner, with evidence files, a review date and an expiry (ETSI EN 303 645 4-1 asks for the justification of
 * what is not automated; IEC 62443-4-2 CR 1.x ask for documented procedures). Each recorded or revoked
 * attestation is committed with its event; files are kept once per content (sha256).
 */

/** Evidence files per attestation, and the size of each (decoded). */
export const MAX_ATTESTATION_FILES = 10;
export const MAX_EVIDENCE_FILE_BYTES = 2 * 1024 * 1024;
export const MAX_STATEMENT_LENGTH = 4000;
export const MAX_OWNER_LENGTH = 200;
export const MAX_REVOKE_REASON_LENGTH = 1000;

export interface EvidenceFileInput {
  name: string;
  mediaType: string;
  /** The file's bytes, base64. */
  content: string;
}

export interface AttestationInput {
  standard: FrameworkId;
  clause: string;
  statement: string;
  /** A person or a team. */
  owner: string;
  files?: EvidenceFileInput[];
  reviewAt: number;
  expiresAt: number;
}

/** An attestation as stored: the view the reports show, and when it was revoked (null: not revoked). */
export type AttestationRecord = AttestationView & { revokedAt: number | null };

export interface EvidenceFile {
  mediaType: string;
  size: number;
  content: Buffer;
}

export interface AttestationsDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  /** The clause's mode in the standard's framework (undefined: no such clause). */
  clauseExists(standard: FrameworkId, clause: string): ClauseMode | undefined;
  /** The frameworks in force, built-in and added (default: the built-in standards). */
  standards?: readonly FrameworkId[] | undefined;
}

export interface AttestationListOptions {
  includeRevoked?: boolean;
  /** At most this many, newest first (default: all). */
  limit?: number;
}

export interface Attestations {
  record(input: AttestationInput, actor: string): Promise<AttestationRecord>;
  /** Newest first; revoked ones only with includeRevoked. */
  list(options?: AttestationListOptions): Promise<AttestationRecord[]>;
  /** Not revoked and not expired at `now`. */
  inForce(now: number): Promise<AttestationRecord[]>;
  revoke(id: string, reason: string, actor: string): Promise<AttestationRecord>;
  file(sha256: string): Promise<EvidenceFile>;
}

const invalid = (message: string) => new BulwarkError('validation_failed', message);

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Text that must be there (trimmed), at most `max` characters. */
export function requiredText(value: string, name: string, max: number): string {
  const text = value.trim();
  if (text.length === 0) throw invalid(`${name}: required`);
  if (text.length > max) throw invalid(`${name}: at most ${max} characters (${text.length} given)`);
  return text;
}

interface DecodedFile {
  name: string;
  mediaType: string;
  sha256: string;
  size: number;
  content: Buffer;
}

/** One evidence file, checked before it is decoded (bounded before allocated). */
function decodeFile(file: EvidenceFileInput, index: number): DecodedFile {
  const where = `files[${index}]`;
  const name = requiredText(file.name, `${where}.name`, 255);
  if (/[/\\\0]/.test(name)) throw invalid(`${where}.name: a file name, without / or \\`);
  if (!MEDIA_TYPE.test(file.mediaType))
    throw invalid(`${where}.mediaType: a media type such as application/pdf, not "${file.mediaType}"`);
  const text = file.content.replace(/\s+/g, '');
  if (text.length > Math.ceil(MAX_EVIDENCE_FILE_BYTES / 3) * 4 + 4)
    throw invalid(`${where} (${name}): larger than ${MAX_EVIDENCE_FILE_BYTES} bytes`);
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw invalid(`${where} (${name}): content is not base64`);
  const content = Buffer.from(text, 'base64');
  if (content.length === 0) throw invalid(`${where} (${name}): empty`);
  if (content.length > MAX_EVIDENCE_FILE_BYTES)
    throw invalid(`${where} (${name}): ${content.length} bytes, more than ${MAX_EVIDENCE_FILE_BYTES}`);
  const sha256 = createHash('sha256').update(content).digest('hex');
  return { name, mediaType: file.mediaType.toLowerCase(), sha256, size: content.length, content };
}

function checkClause(deps: AttestationsDeps, standard: FrameworkId, clause: string): void {
  const known = deps.standards ?? standardIds;
  if (!known.includes(standard)) throw invalid(`standard: one of ${known.join(', ')}, not "${standard}"`);
  const mode = deps.clauseExists(standard, clause);
  if (mode === undefined) throw invalid(`clause: ${standard} has no clause "${clause}"`);
  if (mode !== 'manual')
    throw invalid(
      `clause: ${standard} ${clause} is ${mode === 'automated' ? 'automated (checks evidence it)' : 'not applicable'}; only manual clauses are attested`,
    );
}

function checkDates(input: AttestationInput, now: number): void {
  if (!Number.isSafeInteger(input.expiresAt) || input.expiresAt <= now)
    throw invalid('expiresAt: must be in the future');
  if (!Number.isSafeInteger(input.reviewAt) || input.reviewAt <= now)
    throw invalid('reviewAt: must be in the future');
  if (input.reviewAt > input.expiresAt) throw invalid('reviewAt: must not be after expiresAt');
}

/** The checked input: every refusal names the field and the rule, before anything is written. */
function validateInput(deps: AttestationsDeps, input: AttestationInput) {
  checkClause(deps, input.standard, input.clause);
  const statement = requiredText(input.statement, 'statement', MAX_STATEMENT_LENGTH);
  const owner = requiredText(input.owner, 'owner', MAX_OWNER_LENGTH);
  checkDates(input, deps.now());
  const given = input.files ?? [];
  if (given.length > MAX_ATTESTATION_FILES)
    throw invalid(`files: at most ${MAX_ATTESTATION_FILES} (${given.length} given)`);
  const files = given.map((f, i) => decodeFile(f, i));
  return { statement, owner, files };
}

type StoredFiles = AttestationView['files'];

function toRecord(row: ComplianceAttestationsTable): AttestationRecord {
  return {
    id: row.id,
    standard: row.standard,
    clause: row.clause,
    statement: row.statement,
    owner: row.owner,
    files: JSON.parse(row.files) as StoredFiles,
    reviewAt: Number(row.review_at),
    expiresAt: Number(row.expires_at),
    createdAt: Number(row.created_at),
    createdBy: row.created_by,
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

async function storeFiles(tx: Tx, files: DecodedFile[], now: number): Promise<void> {
  for (const f of files) {
    await tx
      .insertInto('compliance_evidence_files')
      .values({
        sha256: f.sha256,
        media_type: f.mediaType,
        size: f.size,
        content: f.content.toString('base64'),
        created_at: now,
      })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
  }
}

async function record(deps: AttestationsDeps, input: AttestationInput, actor: string) {
  const { statement, owner, files } = validateInput(deps, input);
  const now = deps.now();
  const views: StoredFiles = files.map((f) => ({
    name: f.name,
    sha256: f.sha256,
    size: f.size,
    mediaType: f.mediaType,
  }));
  const row: ComplianceAttestationsTable = {
    id: randomUUID(),
    standard: input.standard,
    clause: input.clause,
    statement,
    owner,
    files: JSON.stringify(views),
    review_at: input.reviewAt,
    expires_at: input.expiresAt,
    created_at: now,
    created_by: actor,
    revoked_at: null,
  };
  await deps.events.atomically(async (tx, emit) => {
    await storeFiles(tx, files, now);
    await tx.insertInto('compliance_attestations').values(row).execute();
    emit({
      type: 'compliance.attestation_recorded',
      actor,
      subject: subjectOf.attestation(row.id),
      data: {
        attestationId: row.id,
        standard: row.standard,
        clause: row.clause,
        owner,
        reviewAt: input.reviewAt,
        expiresAt: input.expiresAt,
        files: views.map(({ name, sha256, size }) => ({ name, sha256, size })),
      },
    });
  });
  return toRecord(row);
}

async function revoke(deps: AttestationsDeps, id: string, change: { reason: string; actor: string }) {
  const { reason, actor } = change;
  const why = requiredText(reason, 'reason', MAX_REVOKE_REASON_LENGTH);
  return deps.events.atomically(async (tx, emit) => {
    const row = await tx
      .selectFrom('compliance_attestations')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new BulwarkError('not_found', `no attestation ${id}`);
    if (row.revoked_at !== null) throw new BulwarkError('conflict', `attestation ${id} is already revoked`);
    const revokedAt = deps.now();
    await tx
      .updateTable('compliance_attestations')
      .set({ revoked_at: revokedAt })
      .where('id', '=', id)
      .execute();
    emit({
      type: 'compliance.attestation_revoked',
      actor,
      subject: subjectOf.attestation(id),
      data: { attestationId: id, standard: row.standard, clause: row.clause, reason: why },
    });
    return toRecord({ ...row, revoked_at: revokedAt });
  });
}

async function list(deps: AttestationsDeps, options: AttestationListOptions = {}) {
  let query = deps.db.selectFrom('compliance_attestations').selectAll();
  if (options.includeRevoked !== true) query = query.where('revoked_at', 'is', null);
  query = query.orderBy('created_at', 'desc').orderBy('id', 'desc');
  if (options.limit !== undefined) query = query.limit(options.limit);
  return (await query.execute()).map(toRecord);
}

async function file(deps: AttestationsDeps, sha256: string): Promise<EvidenceFile> {
  const key = sha256.toLowerCase();
  const row = SHA256_HEX.test(key)
    ? await deps.db
        .selectFrom('compliance_evidence_files')
        .selectAll()
        .where('sha256', '=', key)
        .executeTakeFirst()
    : undefined;
  if (!row) throw new BulwarkError('not_found', `no evidence file ${sha256}`);
  return { mediaType: row.media_type, size: Number(row.size), content: Buffer.from(row.content, 'base64') };
}

/** Attestations of manual clauses: see the module comment. */
export function createAttestations(deps: AttestationsDeps): Attestations {
  return {
    record: (input, actor) => record(deps, input, actor),
    list: (options) => list(deps, options),
    async inForce(now) {
      return (await list(deps)).filter((a) => a.expiresAt > now);
    },
    revoke: (id, reason, actor) => revoke(deps, id, { reason, actor }),
    file: (sha256) => file(deps, sha256),
  };
}
