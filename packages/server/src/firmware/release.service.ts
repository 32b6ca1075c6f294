import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type EventBus } from '../events/index.ts';
import { isUniqueViolation, type Db, type Tx } from '../store/index.ts';
import type { ArtifactStore } from './artifact-store.ts';
import { checkReferenceValues } from './reference-values.ts';
import * as store from './release.store.ts';
import {
  checkEndOfSupport,
  checkFilename,
  checkHardwareIds,
  checkName,
  checkReleaseNotes,
  checkSecurityVersion,
  checkSha256,
  checkVersion,
  releaseStatuses,
  targetPathOf,
  type NewRelease,
  type Release,
} from './release.types.ts';
import { parseSbom, type ParsedSbom } from './sbom.ts';
import type { TargetEntry } from './tuf.repository.ts';

export interface ReleaseServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  artifacts: ArtifactStore;
  maxArtifactSize: number;
  /** Other modules' records of a draft being discarded go first, in its transaction (risk's matches). */
  onDiscard?: ((tx: Tx, releaseId: string) => Promise<unknown>) | undefined;
}

/** What the custom field of a TUF target carries; devices read hardware fit and anti-rollback from it. */
export function targetCustom(r: Release): TargetEntry['custom'] {
  return {
    releaseId: r.id,
    name: r.name,
    version: r.version,
    securityVersion: r.securityVersion,
    hardwareIds: r.hardwareIds,
    endOfSupport: new Date(r.endOfSupport).toISOString(),
  };
}

/** A release by id, or by `name@version`. */
async function findRelease(deps: ReleaseServiceDeps, ref: string): Promise<Release | undefined> {
  if (typeof ref !== 'string' || ref.length > 200) return undefined;
  const at = ref.lastIndexOf('@');
  if (at > 0) return store.findByNameVersion(deps.db, ref.slice(0, at), ref.slice(at + 1));
  return store.getRelease(deps.db, ref);
}

async function requireRelease(deps: ReleaseServiceDeps, ref: string): Promise<Release> {
  const release = await findRelease(deps, ref);
  if (!release) throw new BulwarkError('not_found', `release ${ref} does not exist`);
  return release;
}

const subjectOfRelease = (r: { name: string; version: string }) =>
  subjectOf.firmware(`${r.name}@${r.version}`);

/** The release row of checked input (refused before anything is stored). */
function releaseRow(deps: ReleaseServiceDeps, input: NewRelease, actor: string) {
  const t = deps.now();
  const name = checkName(input.name);
  const version = checkVersion(input.version);
  const filename = checkFilename(input.filename ?? `${name}-${version}.bin`);
  const hardwareIds = checkHardwareIds(input.hardwareIds);
  const securityVersion = checkSecurityVersion(input.securityVersion);
  const endOfSupport = checkEndOfSupport(input.endOfSupport, t);
  const releaseNotes = checkReleaseNotes(input.releaseNotes);
  const sha256 = checkSha256(input.sha256);
  const referenceValues = checkReferenceValues(input.referenceValues);
  if (!Number.isSafeInteger(input.size) || input.size < 1)
    throw new BulwarkError('validation_failed', 'size must be the artifact size in bytes');
  if (input.size > deps.maxArtifactSize)
    throw new BulwarkError(
      'payload_too_large',
      `the artifact is ${input.size} bytes; the limit (firmware.maxArtifactSize) is ${deps.maxArtifactSize}`,
    );
  return {
    id: randomUUID(),
    name,
    version,
    filename,
    target_path: targetPathOf(name, version, filename),
    hardware_ids: JSON.stringify(hardwareIds),
    security_version: securityVersion,
    release_notes: releaseNotes,
    end_of_support: endOfSupport,
    size: input.size,
    sha256,
    status: 'draft',
    sbom: null as string | null,
    created_by: actor,
    created_at: t,
    updated_at: t,
    uploaded_at: null,
    retired_at: null,
    reference_values: referenceValues && JSON.stringify(referenceValues),
  };
}

/** Records a release's metadata (and SBOM); the artifact follows with `upload`. */
async function createRelease(deps: ReleaseServiceDeps, input: NewRelease, actor: string): Promise<Release> {
  const row = releaseRow(deps, input, actor);
  const sbom: ParsedSbom | undefined =
    input.sbom === undefined || input.sbom === null ? undefined : await parseSbom(input.sbom);
  row.sbom = sbom?.text ?? null;
  const { id, name, version } = row;
  const components = (sbom?.components ?? []).map((c, idx) => ({
    release_id: id,
    idx,
    name: c.name,
    version: c.version,
    purl: c.purl,
  }));
  try {
    await deps.db.transaction().execute(async (trx) => {
      await store.insertRelease(trx, row);
      await store.insertComponents(trx, components);
    });
  } catch (err) {
    if (isUniqueViolation(err) || (await store.findByNameVersion(deps.db, name, version)))
      throw new BulwarkError('conflict', `release ${name}@${version} already exists`);
    throw err;
  }
  await deps.events.emit({
    type: 'firmware.release_created',
    actor,
    subject: subjectOfRelease(row),
    data: {
      name,
      version,
      securityVersion: row.security_version,
      hardwareIds: JSON.parse(row.hardware_ids) as string[],
      sbomComponents: components.length,
    },
  });
  return requireRelease(deps, id);
}

/** Who uploads, and the length the request declared (when it did). */
export interface UploadBy {
  actor: string;
  contentLength?: number | undefined;
}

/** Refuses an upload to a release that is not a draft, or whose declared length is not the release's size. */
function checkUpload(release: Release, length: number | undefined): void {
  const named = `release ${release.name}@${release.version}`;
  if (release.status !== 'draft')
    throw new BulwarkError(
      'conflict',
      release.status === 'retired' ? `${named} is retired` : `${named} already has its artifact`,
    );
  if (length !== undefined && length > release.size)
    throw new BulwarkError(
      'payload_too_large',
      `the upload is ${length} bytes; the release declares ${release.size}`,
    );
  if (length !== undefined && length < release.size)
    throw new BulwarkError(
      'upload_incomplete',
      `the upload is ${length} bytes; the release declares ${release.size}`,
    );
}

/**
 * Streams the artifact to disk (size cap, SHA-256 check). A refused upload leaves nothing behind: the
 * release stays a draft and no bytes are kept.
 */
async function uploadArtifact(
  deps: ReleaseServiceDeps,
  upload: { ref: string; source: Readable; by: UploadBy },
): Promise<Release> {
  const { source, by } = upload;
  const release = await requireRelease(deps, upload.ref);
  const subject = subjectOfRelease(release);
  try {
    checkUpload(release, by.contentLength);
    await deps.artifacts.put(source, { size: release.size, sha256: release.sha256 });
  } catch (err) {
    source.resume(); // let the rest of a refused body drain instead of stalling the connection
    const e = BulwarkError.from(err);
    if (e.code !== 'conflict' && e.code !== 'internal')
      await deps.events.emit({
        type: 'firmware.upload_refused',
        actor: by.actor,
        subject,
        data: { name: release.name, version: release.version, code: e.code, reason: e.message },
      });
    throw err;
  }
  const t = deps.now();
  await store.updateRelease(deps.db, {
    id: release.id,
    changes: { status: 'ready', uploaded_at: t, updated_at: t },
    onlyIfStatus: ['draft'],
  });
  await deps.events.emit({
    type: 'firmware.release_uploaded',
    actor: by.actor,
    subject,
    data: { name: release.name, version: release.version, size: release.size, sha256: release.sha256 },
  });
  return requireRelease(deps, release.id);
}

async function listReleases(
  deps: ReleaseServiceDeps,
  filter: { name?: string | undefined; status?: string | undefined; limit?: number | undefined } = {},
): Promise<Release[]> {
  const status = releaseStatuses.find((s) => s === filter.status);
  if (filter.status !== undefined && !status)
    throw new BulwarkError('validation_failed', `status must be one of ${releaseStatuses.join(', ')}`);
  return store.listReleases(deps.db, { name: filter.name, status, limit: filter.limit ?? 1000 });
}

async function sbomOf(deps: ReleaseServiceDeps, ref: string): Promise<string> {
  const release = await requireRelease(deps, ref);
  const text = await store.getSbom(deps.db, release.id);
  if (!text) throw new BulwarkError('not_found', `release ${release.name}@${release.version} has no SBOM`);
  return text;
}

/** Withdraws a release: no new rollout may use it and its artifact is no longer served. */
async function retireRelease(
  deps: ReleaseServiceDeps,
  ref: string,
  by: { actor: string; reason?: string | undefined },
): Promise<Release> {
  const release = await requireRelease(deps, ref);
  if (release.status === 'retired') return release;
  if (release.status === 'draft')
    throw new BulwarkError('conflict', 'a draft has nothing to retire: discard it instead');
  const t = deps.now();
  await store.updateRelease(deps.db, {
    id: release.id,
    changes: { status: 'retired', retired_at: t, updated_at: t },
  });
  await deps.events.emit({
    type: 'firmware.release_retired',
    actor: by.actor,
    subject: subjectOfRelease(release),
    data: { name: release.name, version: release.version, ...(by.reason ? { reason: by.reason } : {}) },
  });
  return requireRelease(deps, release.id);
}

/** Deletes a draft (metadata without an artifact), e.g. after a refused upload from the CLI. */
async function discardRelease(deps: ReleaseServiceDeps, ref: string, actor: string): Promise<void> {
  const release = await requireRelease(deps, ref);
  if (release.status !== 'draft')
    throw new BulwarkError('conflict', 'only a draft can be discarded: retire a release instead');
  await deps.db.transaction().execute(async (trx) => {
    await deps.onDiscard?.(trx, release.id);
    await store.deleteRelease(trx, release.id);
  });
  await deps.events.emit({
    type: 'firmware.release_discarded',
    actor,
    subject: subjectOfRelease(release),
    data: { name: release.name, version: release.version },
  });
}

/** Ready releases, as TUF targets. */
async function signableTargets(deps: ReleaseServiceDeps): Promise<TargetEntry[]> {
  const ready = await store.listReleases(deps.db, { status: 'ready', limit: 100_000 });
  return ready.map((r) => ({
    path: r.targetPath,
    length: r.size,
    sha256: r.sha256,
    custom: targetCustom(r),
  }));
}

/** The artifact of a ready release by TUF target path and hash (what a device downloads). */
async function artifactOf(
  deps: ReleaseServiceDeps,
  target: { path: string; sha256: string },
): Promise<{ release: Release; stream: Readable } | undefined> {
  const release = await store.findByTargetPath(deps.db, target.path);
  if (!release || release.status !== 'ready' || release.sha256 !== target.sha256) return undefined;
  if (!(await deps.artifacts.has(target.sha256))) return undefined;
  return { release, stream: deps.artifacts.read(target.sha256) };
}

/** Releases: metadata and SBOM, the artifact upload, retirement; each a use case over the deps. */
export function createReleaseService(deps: ReleaseServiceDeps) {
  return {
    find: (ref: string) => findRelease(deps, ref),
    get: (ref: string) => requireRelease(deps, ref),
    create: (input: NewRelease, actor: string) => createRelease(deps, input, actor),
    /** `by` is the actor, or the actor and the length the request declared. */
    upload: (ref: string, source: Readable, by: string | UploadBy) =>
      uploadArtifact(deps, { ref, source, by: typeof by === 'string' ? { actor: by } : by }),
    list: (
      filter: { name?: string | undefined; status?: string | undefined; limit?: number | undefined } = {},
    ) => listReleases(deps, filter),
    sbom: (ref: string) => sbomOf(deps, ref),
    components: async (ref: string) => store.componentsOf(deps.db, (await requireRelease(deps, ref)).id),
    retire: (ref: string, actor: string, reason?: string) => retireRelease(deps, ref, { actor, reason }),
    discard: (ref: string, actor: string) => discardRelease(deps, ref, actor),
    signableTargets: () => signableTargets(deps),
    artifact: (targetPath: string, sha256: string) => artifactOf(deps, { path: targetPath, sha256 }),
  };
}

export type ReleaseService = ReturnType<typeof createReleaseService>;
