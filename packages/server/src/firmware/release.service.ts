import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { BulwarkError } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import { isUniqueViolation, type Db } from '../store/index.ts';
import type { ArtifactStore } from './artifact-store.ts';
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
  type ReleaseStatus,
} from './release.types.ts';
import { parseSbom, type ParsedSbom } from './sbom.ts';
import type { TargetEntry } from './tuf.repository.ts';

export interface ReleaseServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  artifacts: ArtifactStore;
  maxArtifactSize: number;
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

export function createReleaseService(deps: ReleaseServiceDeps) {
  const { db, events, now, artifacts } = deps;

  async function require(ref: string): Promise<Release> {
    const release = await find(ref);
    if (!release) throw new BulwarkError('not_found', `release ${ref} does not exist`);
    return release;
  }

  /** A release by id, or by `name@version`. */
  async function find(ref: string): Promise<Release | undefined> {
    if (typeof ref !== 'string' || ref.length > 200) return undefined;
    const at = ref.lastIndexOf('@');
    if (at > 0) return store.findByNameVersion(db, ref.slice(0, at), ref.slice(at + 1));
    return store.getRelease(db, ref);
  }

  return {
    find,
    get: require,

    /** Records a release's metadata (and SBOM); the artifact follows with {@link upload}. */
    async create(input: NewRelease, actor: string): Promise<Release> {
      const t = now();
      const name = checkName(input.name);
      const version = checkVersion(input.version);
      const filename = checkFilename(input.filename ?? `${name}-${version}.bin`);
      const hardwareIds = checkHardwareIds(input.hardwareIds);
      const securityVersion = checkSecurityVersion(input.securityVersion);
      const endOfSupport = checkEndOfSupport(input.endOfSupport, t);
      const releaseNotes = checkReleaseNotes(input.releaseNotes);
      const sha256 = checkSha256(input.sha256);
      if (!Number.isSafeInteger(input.size) || input.size < 1)
        throw new BulwarkError('validation_failed', 'size must be the artifact size in bytes');
      if (input.size > deps.maxArtifactSize)
        throw new BulwarkError(
          'payload_too_large',
          `the artifact is ${input.size} bytes; the limit (firmware.maxArtifactSize) is ${deps.maxArtifactSize}`,
        );
      const sbom: ParsedSbom | undefined =
        input.sbom === undefined || input.sbom === null ? undefined : await parseSbom(input.sbom);
      const id = randomUUID();
      const row = {
        id,
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
        sbom: sbom?.text ?? null,
        created_by: actor,
        created_at: t,
        updated_at: t,
        uploaded_at: null,
        retired_at: null,
      };
      try {
        await db.transaction().execute(async (trx) => {
          await store.insertRelease(trx, row);
          await store.insertComponents(
            trx,
            (sbom?.components ?? []).map((c, idx) => ({
              release_id: id,
              idx,
              name: c.name,
              version: c.version,
              purl: c.purl,
            })),
          );
        });
      } catch (err) {
        if (isUniqueViolation(err) || (await store.findByNameVersion(db, name, version)))
          throw new BulwarkError('conflict', `release ${name}@${version} already exists`);
        throw err;
      }
      await events.emit({
        type: 'firmware.release_created',
        actor,
        subject: `firmware:${name}@${version}`,
        data: {
          name,
          version,
          securityVersion,
          hardwareIds,
          sbomComponents: sbom?.components.length ?? 0,
        },
      });
      return require(id);
    },

    /**
     * Streams the artifact to disk (size cap, SHA-256 check). A refused upload leaves nothing behind: the
     * release stays a draft and no bytes are kept.
     */
    async upload(
      ref: string,
      source: Readable,
      actor: string,
      options: { contentLength?: number | undefined } = {},
    ): Promise<Release> {
      const release = await require(ref);
      const subject = `firmware:${release.name}@${release.version}`;
      try {
        if (release.status !== 'draft')
          throw new BulwarkError(
            'conflict',
            release.status === 'retired'
              ? `release ${release.name}@${release.version} is retired`
              : `release ${release.name}@${release.version} already has its artifact`,
          );
        const length = options.contentLength;
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
        await artifacts.put(source, { size: release.size, sha256: release.sha256 });
      } catch (err) {
        source.resume(); // let the rest of a refused body drain instead of stalling the connection
        const e = BulwarkError.from(err);
        if (e.code !== 'conflict' && e.code !== 'internal')
          await events.emit({
            type: 'firmware.upload_refused',
            actor,
            subject,
            data: { name: release.name, version: release.version, code: e.code, reason: e.message },
          });
        throw err;
      }
      const t = now();
      await store.updateRelease(db, release.id, { status: 'ready', uploaded_at: t, updated_at: t }, [
        'draft',
      ]);
      await events.emit({
        type: 'firmware.release_uploaded',
        actor,
        subject,
        data: { name: release.name, version: release.version, size: release.size, sha256: release.sha256 },
      });
      return require(release.id);
    },

    async list(
      filter: { name?: string | undefined; status?: string | undefined; limit?: number | undefined } = {},
    ): Promise<Release[]> {
      if (filter.status !== undefined && !(releaseStatuses as readonly string[]).includes(filter.status))
        throw new BulwarkError('validation_failed', `status must be one of ${releaseStatuses.join(', ')}`);
      return store.listReleases(db, {
        name: filter.name,
        status: filter.status as ReleaseStatus | undefined,
        limit: filter.limit ?? 1000,
      });
    },

    async sbom(ref: string): Promise<string> {
      const release = await require(ref);
      const text = await store.getSbom(db, release.id);
      if (!text)
        throw new BulwarkError('not_found', `release ${release.name}@${release.version} has no SBOM`);
      return text;
    },

    components: async (ref: string) => store.componentsOf(db, (await require(ref)).id),

    /** Withdraws a release: no new rollout may use it and its artifact is no longer served. */
    async retire(ref: string, actor: string, reason?: string): Promise<Release> {
      const release = await require(ref);
      if (release.status === 'retired') return release;
      if (release.status === 'draft')
        throw new BulwarkError('conflict', 'a draft has nothing to retire: discard it instead');
      const t = now();
      await store.updateRelease(db, release.id, { status: 'retired', retired_at: t, updated_at: t });
      await events.emit({
        type: 'firmware.release_retired',
        actor,
        subject: `firmware:${release.name}@${release.version}`,
        data: { name: release.name, version: release.version, ...(reason ? { reason } : {}) },
      });
      return require(release.id);
    },

    /** Deletes a draft (metadata without an artifact), e.g. after a refused upload from the CLI. */
    async discard(ref: string, actor: string): Promise<void> {
      const release = await require(ref);
      if (release.status !== 'draft')
        throw new BulwarkError('conflict', 'only a draft can be discarded: retire a release instead');
      await db.transaction().execute((trx) => store.deleteRelease(trx, release.id));
      await events.emit({
        type: 'firmware.release_discarded',
        actor,
        subject: `firmware:${release.name}@${release.version}`,
        data: { name: release.name, version: release.version },
      });
    },

    /** Ready releases, as TUF targets. */
    async signableTargets(): Promise<TargetEntry[]> {
      const ready = await store.listReleases(db, { status: 'ready', limit: 100_000 });
      return ready.map((r) => ({
        path: r.targetPath,
        length: r.size,
        sha256: r.sha256,
        custom: targetCustom(r),
      }));
    },

    /** The artifact of a ready release by TUF target path and hash (what a device downloads). */
    async artifact(
      targetPath: string,
      sha256: string,
    ): Promise<{ release: Release; stream: Readable } | undefined> {
      const release = await store.findByTargetPath(db, targetPath);
      if (!release || release.status !== 'ready' || release.sha256 !== sha256) return undefined;
      if (!(await artifacts.has(sha256))) return undefined;
      return { release, stream: artifacts.read(sha256) };
    },
  };
}

export type ReleaseService = ReturnType<typeof createReleaseService>;
