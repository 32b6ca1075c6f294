import { createHash, createPublicKey } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import {
  Metadata,
  MetadataKind,
  type Root,
  type Snapshot,
  type Targets,
  type Timestamp,
} from '@tufjs/models';
import { BulwarkError } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import { isUniqueViolation, type Db, type DbOrTx } from '../store/index.ts';
import {
  generateTufKey,
  keyIdOf,
  privateKeyFromPem,
  signerOf,
  tufPublicKeyOf,
  type TufPrivateKey,
  type TufPublicKey,
} from './tuf-keys.ts';
import * as store from './tuf.store.ts';
import { onlineRoles, tufRoles, type OnlineRole, type TufRole } from './tuf.store.ts';

/** TUF specification version our metadata follows. */
export const SPEC_VERSION = '1.0.31';

export interface TufExpiry {
  root: number;
  targets: number;
  snapshot: number;
  timestamp: number;
}

/** One image as targets metadata lists it. */
export interface TargetEntry {
  path: string;
  length: number;
  sha256: string;
  custom: Record<string, string | number | string[]>;
}

export interface TufRepositoryDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  expiry: TufExpiry;
  /** The images that may be listed in targets metadata now (uploaded, verified, not retired). */
  signableTargets(): Promise<TargetEntry[]>;
}

export interface RoleStatus {
  version: number;
  expires: number;
  keyids: string[];
  threshold: number;
}

export interface TufStatus {
  initialized: boolean;
  roles: Partial<Record<TufRole, RoleStatus>>;
  /** Roles with unsigned metadata waiting for offline signatures. */
  pending: TufRole[];
  /** False when the targets metadata no longer verifies under the current root (targets keys rotated). */
  targetsValid: boolean;
}

export interface RootKeysInput {
  rootKeys: TufPublicKey[];
  rootThreshold: number;
  targetsKeys: TufPublicKey[];
  targetsThreshold: number;
}

export interface RootChange {
  /** The role whose keys change; omitted: the same keys, a new version with a fresh expiry. */
  role?: TufRole | undefined;
  /** New keys for root or targets (snapshot and timestamp keys are generated here). */
  keys?: TufPublicKey[] | undefined;
  threshold?: number | undefined;
}

type Json = Record<string, unknown>;

/** TUF wants `YYYY-MM-DDTHH:MM:SSZ`. */
export const tufTime = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const kindOf: Record<TufRole, MetadataKind> = {
  root: MetadataKind.Root,
  targets: MetadataKind.Targets,
  snapshot: MetadataKind.Snapshot,
  timestamp: MetadataKind.Timestamp,
};

interface RoleTypes {
  root: Root;
  targets: Targets;
  snapshot: Snapshot;
  timestamp: Timestamp;
}

/** Parses metadata JSON of the given role with @tufjs/models; anything malformed is a validation error. */
export function parseMetadata<R extends TufRole>(role: R, input: unknown): Metadata<RoleTypes[R]> {
  let json = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      json = JSON.parse(input.toString()) as unknown;
    } catch {
      throw new BulwarkError('validation_failed', `${role} metadata is not JSON`);
    }
  }
  try {
    // fromJSON has one overload per kind; `role` picks the kind at run time.
    return Metadata.fromJSON(kindOf[role] as MetadataKind.Root, json as never) as unknown as Metadata<
      RoleTypes[R]
    >;
  } catch (err) {
    throw new BulwarkError('validation_failed', `not valid ${role} metadata: ${(err as Error).message}`);
  }
}

/** The role named by a metadata document's `signed._type`. */
export function roleOfDocument(input: unknown): TufRole {
  const type = (input as { signed?: { _type?: unknown } } | null)?.signed?._type;
  if (typeof type !== 'string' || !(tufRoles as readonly string[]).includes(type))
    throw new BulwarkError('validation_failed', 'not TUF metadata: signed._type must name a top-level role');
  return type as TufRole;
}

/** Canonical JSON bytes of a whole metadata document, as served and hashed. */
export const serialize = (md: { toJSON(): unknown }) => canonicalize(md.toJSON());

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Adds signatures made with `keys` to a metadata document (the `bulwark firmware sign` command). */
export function signDocument(input: unknown, keys: TufPrivateKey[]): string {
  const role = roleOfDocument(typeof input === 'string' ? (JSON.parse(input) as unknown) : input);
  const md = parseMetadata(role, input);
  for (const key of keys) md.sign(signerOf(key), true);
  return serialize(md);
}

function checkThreshold(what: string, keys: TufPublicKey[], threshold: number): string[] {
  const ids = [...new Set(keys.map(keyIdOf))];
  if (ids.length !== keys.length)
    throw new BulwarkError('validation_failed', `${what}: a key is listed twice`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > ids.length)
    throw new BulwarkError(
      'validation_failed',
      `${what}: the threshold must be from 1 to the number of keys (${ids.length})`,
    );
  return ids;
}

/**
 * The TUF repository (TUF specification 1.0, with consistent snapshots). Root and targets metadata are signed
 * offline by their keys' holders and uploaded; the server holds only the snapshot and timestamp keys, sealed
 * with the master key, re-signs those two whenever targets change and before they expire.
 */
export function createTufRepository(deps: TufRepositoryDeps) {
  const { db, box, events, now, expiry } = deps;

  const sealLabel = (keyid: string) => `tuf/${keyid}`;

  async function onlineKey(q: DbOrTx, role: OnlineRole): Promise<TufPrivateKey> {
    const [row] = await store.keysFor(q, role, 'active');
    if (!row)
      throw new BulwarkError('conflict', `no active ${role} key: initialize the TUF repository first`);
    return privateKeyFromPem(box.open(row.sealed_key, sealLabel(row.keyid)).toString('utf8'));
  }

  async function newOnlineKey(q: DbOrTx, role: OnlineRole): Promise<TufPublicKey> {
    const generated = generateTufKey();
    await store.insertKey(q, {
      keyid: generated.keyid,
      role,
      sealed_key: box.seal(Buffer.from(generated.privatePem), sealLabel(generated.keyid)),
      status: 'pending',
      created_at: now(),
    });
    return tufPublicKeyOf(createPublicKey(generated.publicPem));
  }

  async function currentRoot(q: DbOrTx) {
    const row = await store.latest(q, 'root');
    return row && { row, md: parseMetadata('root', row.body) };
  }

  function rootJson(
    version: number,
    keys: Record<string, TufPublicKey>,
    roles: Record<TufRole, { keyids: string[]; threshold: number }>,
  ): Json {
    return {
      signed: {
        _type: 'root',
        spec_version: SPEC_VERSION,
        version,
        expires: tufTime(now() + expiry.root),
        consistent_snapshot: true,
        keys,
        roles,
      },
      signatures: [],
    };
  }

  async function storePending(q: DbOrTx, role: TufRole, body: string, actor: string) {
    await store.putPending(q, { role, body, created_by: actor, created_at: now() });
  }

  /** Removes pending online keys no pending root names (an abandoned rotation). */
  async function dropUnusedPendingKeys(q: DbOrTx, keep: Set<string>) {
    for (const role of onlineRoles)
      for (const row of await store.keysFor(q, role, 'pending'))
        if (!keep.has(row.keyid)) await q.deleteFrom('tuf_keys').where('keyid', '=', row.keyid).execute();
  }

  function roleInfo(root: Root, role: TufRole): { keyids: string[]; threshold: number } {
    const r = root.roles[role];
    if (!r) throw new BulwarkError('internal', `root metadata has no ${role} role`);
    return { keyids: [...r.keyIDs], threshold: r.threshold };
  }

  async function publishMetadata(
    q: DbOrTx,
    role: TufRole,
    md: { signed: { version: number; expires: string } },
  ) {
    await store.insertMetadata(q, {
      role,
      version: md.signed.version,
      body: serialize(md as never),
      expires_at: Date.parse(md.signed.expires),
      created_at: now(),
    });
  }

  /**
   * Signs new snapshot and timestamp metadata when needed: targets changed, online keys rotated, or the
   * current ones are past half their lifetime. Returns the roles re-signed.
   */
  async function resign(
    q: DbOrTx,
    force = false,
  ): Promise<{ role: TufRole; version: number; expires: number; keyid: string }[]> {
    const root = await currentRoot(q);
    const targetsRow = await store.latest(q, 'targets');
    if (!root || !targetsRow) return [];
    const targets = parseMetadata('targets', targetsRow.body);
    try {
      root.md.verifyDelegate('targets', targets);
    } catch {
      return []; // targets keys rotated: nothing to snapshot until targets are signed again
    }
    const t = now();
    const done: { role: TufRole; version: number; expires: number; keyid: string }[] = [];
    const snapshotKey = await onlineKey(q, 'snapshot');
    let snapshotRow = await store.latest(q, 'snapshot');
    const snapshotMeta = snapshotRow && parseMetadata('snapshot', snapshotRow.body);
    const snapshotStale =
      !snapshotRow ||
      !snapshotMeta ||
      force ||
      snapshotMeta.signed.meta['targets.json']?.version !== targetsRow.version ||
      snapshotRow.expires_at - t < expiry.snapshot / 2 ||
      !snapshotMeta.signatures[snapshotKey.keyid];
    if (snapshotStale) {
      const md = parseMetadata('snapshot', {
        signed: {
          _type: 'snapshot',
          spec_version: SPEC_VERSION,
          version: (snapshotRow?.version ?? 0) + 1,
          expires: tufTime(t + expiry.snapshot),
          meta: {
            'targets.json': {
              version: targetsRow.version,
              length: Buffer.byteLength(targetsRow.body),
              hashes: { sha256: sha256(targetsRow.body) },
            },
          },
        },
        signatures: [],
      });
      md.sign(signerOf(snapshotKey), false);
      await publishMetadata(q, 'snapshot', md);
      snapshotRow = await store.latest(q, 'snapshot');
      done.push({
        role: 'snapshot',
        version: md.signed.version,
        expires: Date.parse(md.signed.expires),
        keyid: snapshotKey.keyid,
      });
    }
    if (!snapshotRow) return done;
    const timestampKey = await onlineKey(q, 'timestamp');
    const timestampRow = await store.latest(q, 'timestamp');
    const timestampMeta = timestampRow && parseMetadata('timestamp', timestampRow.body);
    const timestampStale =
      done.length > 0 ||
      !timestampRow ||
      !timestampMeta ||
      timestampMeta.signed.snapshotMeta.version !== snapshotRow.version ||
      timestampRow.expires_at - t < expiry.timestamp / 2 ||
      !timestampMeta.signatures[timestampKey.keyid];
    if (timestampStale) {
      const md = parseMetadata('timestamp', {
        signed: {
          _type: 'timestamp',
          spec_version: SPEC_VERSION,
          version: (timestampRow?.version ?? 0) + 1,
          expires: tufTime(t + expiry.timestamp),
          meta: {
            'snapshot.json': {
              version: snapshotRow.version,
              length: Buffer.byteLength(snapshotRow.body),
              hashes: { sha256: sha256(snapshotRow.body) },
            },
          },
        },
        signatures: [],
      });
      md.sign(signerOf(timestampKey), false);
      await publishMetadata(q, 'timestamp', md);
      done.push({
        role: 'timestamp',
        version: md.signed.version,
        expires: Date.parse(md.signed.expires),
        keyid: timestampKey.keyid,
      });
    }
    return done;
  }

  async function announce(
    actor: string,
    published: { role: TufRole; version: number; expires: number; keyid?: string; keyids?: string[] }[],
  ) {
    for (const p of published) {
      await events.emit({
        type: 'firmware.tuf_metadata_published',
        actor,
        subject: `tuf:${p.role}`,
        data: {
          role: p.role,
          version: p.version,
          expires: p.expires,
          keyids: p.keyids ?? (p.keyid ? [p.keyid] : []),
        },
      });
    }
  }

  async function announceKeys(created: { role: OnlineRole; keyid: string }[], actor: string) {
    for (const k of created)
      await events.emit({
        type: 'firmware.tuf_key_created',
        actor,
        subject: `tuf:${k.role}`,
        data: { role: k.role, keyid: k.keyid },
      });
  }

  async function refused<T>(role: TufRole, actor: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      const e = BulwarkError.from(err);
      await events.emit({
        type: 'firmware.tuf_metadata_refused',
        actor,
        subject: `tuf:${role}`,
        data: { role, reason: e.code === 'internal' ? 'internal error' : e.message },
      });
      throw err;
    }
  }

  return {
    async status(): Promise<TufStatus> {
      const root = await currentRoot(db);
      const roles: Partial<Record<TufRole, RoleStatus>> = {};
      let targetsValid = false;
      if (root) {
        for (const role of tufRoles) {
          const row = await store.latest(db, role);
          if (!row) continue;
          roles[role] = { version: row.version, expires: row.expires_at, ...roleInfo(root.md.signed, role) };
        }
        const targetsRow = await store.latest(db, 'targets');
        if (targetsRow) {
          try {
            root.md.verifyDelegate('targets', parseMetadata('targets', targetsRow.body));
            targetsValid = true;
          } catch {
            targetsValid = false;
          }
        }
      }
      const pending = (await db.selectFrom('tuf_pending').select('role').execute()).map(
        (r) => r.role as TufRole,
      );
      return { initialized: root !== undefined, roles, pending, targetsValid };
    },

    /**
     * The first root: the given root and targets keys (held offline), fresh snapshot and timestamp keys
     * (held here, sealed). Returns the unsigned root for the root keys' holders to sign.
     */
    async prepareInitialRoot(input: RootKeysInput, actor: string): Promise<string> {
      const rootIds = checkThreshold('root keys', input.rootKeys, input.rootThreshold);
      const targetsIds = checkThreshold('targets keys', input.targetsKeys, input.targetsThreshold);
      const created: { role: OnlineRole; keyid: string }[] = [];
      const body = await db.transaction().execute(async (trx) => {
        if (await store.latest(trx, 'root'))
          throw new BulwarkError(
            'conflict',
            'the TUF repository is already initialized: rotate keys instead',
          );
        await dropUnusedPendingKeys(trx, new Set());
        const snapshot = await newOnlineKey(trx, 'snapshot');
        const timestamp = await newOnlineKey(trx, 'timestamp');
        created.push(
          { role: 'snapshot', keyid: keyIdOf(snapshot) },
          { role: 'timestamp', keyid: keyIdOf(timestamp) },
        );
        const keys: Record<string, TufPublicKey> = {};
        for (const k of [...input.rootKeys, ...input.targetsKeys, snapshot, timestamp]) keys[keyIdOf(k)] = k;
        const body = canonicalize(
          rootJson(1, keys, {
            root: { keyids: rootIds, threshold: input.rootThreshold },
            targets: { keyids: targetsIds, threshold: input.targetsThreshold },
            snapshot: { keyids: [keyIdOf(snapshot)], threshold: 1 },
            timestamp: { keyids: [keyIdOf(timestamp)], threshold: 1 },
          }),
        );
        parseMetadata('root', body); // what we hand out must parse
        await storePending(trx, 'root', body, actor);
        return body;
      });
      await events.emit({
        type: 'firmware.tuf_metadata_prepared',
        actor,
        subject: 'tuf:root',
        data: { role: 'root', version: 1 },
      });
      await announceKeys(created, actor);
      return body;
    },

    /**
     * A new root version for a key rotation (any role, root included) or just a fresh expiry. TUF clients
     * accept it only when signed by a threshold of the current root keys and of the new root keys.
     */
    async prepareRootChange(change: RootChange, actor: string): Promise<string> {
      const created: { role: OnlineRole; keyid: string }[] = [];
      const { body, version } = await db.transaction().execute(async (trx) => {
        const current = await currentRoot(trx);
        if (!current) throw new BulwarkError('conflict', 'the TUF repository is not initialized yet');
        const signed = current.md.signed;
        const roles = Object.fromEntries(tufRoles.map((r) => [r, roleInfo(signed, r)])) as Record<
          TufRole,
          { keyids: string[]; threshold: number }
        >;
        const keys: Record<string, TufPublicKey> = {};
        for (const [id, key] of Object.entries(signed.keys))
          keys[id] = key.toJSON() as unknown as TufPublicKey;
        const keep = new Set<string>();
        if (change.role === 'snapshot' || change.role === 'timestamp') {
          if (change.keys?.length)
            throw new BulwarkError('validation_failed', `${change.role} keys are generated by the server`);
          const fresh = await newOnlineKey(trx, change.role);
          created.push({ role: change.role, keyid: keyIdOf(fresh) });
          keep.add(keyIdOf(fresh));
          roles[change.role] = { keyids: [keyIdOf(fresh)], threshold: 1 };
          keys[keyIdOf(fresh)] = fresh;
        } else if (change.role === 'root' || change.role === 'targets') {
          if (!change.keys?.length)
            throw new BulwarkError('validation_failed', `give the new ${change.role} public key(s)`);
          const threshold = change.threshold ?? Math.min(roles[change.role].threshold, change.keys.length);
          const ids = checkThreshold(`${change.role} keys`, change.keys, threshold);
          roles[change.role] = { keyids: ids, threshold };
          for (const k of change.keys) keys[keyIdOf(k)] = k;
        }
        // Keys no role names any more leave the root.
        const named = new Set(Object.values(roles).flatMap((r) => r.keyids));
        for (const id of Object.keys(keys)) if (!named.has(id)) delete keys[id];
        await dropUnusedPendingKeys(trx, keep);
        const version = signed.version + 1;
        const body = canonicalize(rootJson(version, keys, roles));
        parseMetadata('root', body);
        await storePending(trx, 'root', body, actor);
        return { body, version };
      });
      await events.emit({
        type: 'firmware.tuf_metadata_prepared',
        actor,
        subject: 'tuf:root',
        data: { role: 'root', version },
      });
      await announceKeys(created, actor);
      return body;
    },

    /** Unsigned targets metadata listing every signable image, for the targets keys' holders to sign. */
    async prepareTargets(actor: string): Promise<string> {
      const entries = await deps.signableTargets();
      const body = await db.transaction().execute(async (trx) => {
        if (!(await store.latest(trx, 'root')))
          throw new BulwarkError('conflict', 'the TUF repository is not initialized yet');
        const current = await store.latest(trx, 'targets');
        const targets: Record<string, Json> = {};
        for (const e of entries)
          targets[e.path] = { length: e.length, hashes: { sha256: e.sha256 }, custom: e.custom };
        const body = canonicalize({
          signed: {
            _type: 'targets',
            spec_version: SPEC_VERSION,
            version: (current?.version ?? 0) + 1,
            expires: tufTime(now() + expiry.targets),
            targets,
          },
          signatures: [],
        });
        await storePending(trx, 'targets', body, actor);
        return body;
      });
      await events.emit({
        type: 'firmware.tuf_metadata_prepared',
        actor,
        subject: 'tuf:targets',
        data: { role: 'targets', version: parseMetadata('targets', body).signed.version },
      });
      return body;
    },

    pending: async (role: TufRole) => (await store.getPending(db, role))?.body,

    /**
     * Publishes signed root or targets metadata. Root: exactly the pending root, signed by a threshold of the
     * current and of the new root keys. Targets: the next version, signed by a threshold of the targets keys,
     * listing only images stored here with their exact length and hash. Snapshot and timestamp follow.
     */
    async publish(input: unknown, actor: string): Promise<{ role: TufRole; version: number }> {
      const doc =
        typeof input === 'string'
          ? (() => {
              try {
                return JSON.parse(input) as unknown;
              } catch {
                throw new BulwarkError('validation_failed', 'metadata is not JSON');
              }
            })()
          : input;
      const role = roleOfDocument(doc);
      if (role !== 'root' && role !== 'targets')
        throw new BulwarkError('validation_failed', `${role} metadata is made by the server, not uploaded`);
      return refused(role, actor, async () => {
        const md = parseMetadata(role, doc);
        const expires = Date.parse(md.signed.expires);
        if (!(expires > now()))
          throw new BulwarkError('validation_failed', `${role} metadata is already expired`);
        const entries = role === 'targets' ? await deps.signableTargets() : [];
        const published = await db.transaction().execute(async (trx) => {
          const current = await currentRoot(trx);
          if (role === 'root') {
            const pending = await store.getPending(trx, 'root');
            if (!pending)
              throw new BulwarkError('conflict', 'no root is pending: prepare one (init or rotate) first');
            if (
              canonicalize(md.signed.toJSON()) !==
              canonicalize(parseMetadata('root', pending.body).signed.toJSON())
            )
              throw new BulwarkError(
                'validation_failed',
                'the root differs from the pending root: sign that one',
              );
            const rootMd = md as unknown as Metadata<Root>;
            try {
              if (current) current.md.verifyDelegate('root', rootMd);
            } catch (err) {
              throw new BulwarkError(
                'signature_invalid',
                `the new root needs a threshold of signatures from the current root keys: ${(err as Error).message}`,
              );
            }
            try {
              rootMd.verifyDelegate('root', rootMd);
            } catch (err) {
              throw new BulwarkError(
                'signature_invalid',
                `the new root needs a threshold of signatures from its own root keys: ${(err as Error).message}`,
              );
            }
            await publishMetadata(trx, 'root', rootMd);
            await store.deletePending(trx, 'root');
            for (const online of onlineRoles) {
              const named = new Set(rootMd.signed.roles[online]?.keyIDs ?? []);
              for (const status of ['pending', 'active'])
                for (const row of await store.keysFor(trx, online, status))
                  await store.setKeyStatus(trx, row.keyid, named.has(row.keyid) ? 'active' : 'retired');
            }
            const resigned = await resign(trx, true);
            return [
              {
                role: 'root' as TufRole,
                version: rootMd.signed.version,
                expires,
                keyids: rootMd.signed.roles.root?.keyIDs ?? [],
              },
              ...resigned,
            ];
          }
          if (!current) throw new BulwarkError('conflict', 'the TUF repository is not initialized yet');
          const targetsMd = md as unknown as Metadata<Targets>;
          const latestTargets = await store.latest(trx, 'targets');
          const expected = (latestTargets?.version ?? 0) + 1;
          if (targetsMd.signed.version !== expected)
            throw new BulwarkError(
              'conflict',
              `targets version must be ${expected} (the current is ${expected - 1}): prepare targets again`,
            );
          try {
            current.md.verifyDelegate('targets', targetsMd);
          } catch (err) {
            throw new BulwarkError(
              'signature_invalid',
              `targets metadata needs a threshold of signatures from the targets keys: ${(err as Error).message}`,
            );
          }
          const known = new Map(entries.map((e) => [e.path, e]));
          for (const [path, target] of Object.entries(targetsMd.signed.targets)) {
            const entry = known.get(path);
            if (
              !entry ||
              entry.length !== target.length ||
              entry.sha256 !== target.hashes.sha256 ||
              canonicalize(entry.custom) !== canonicalize(target.custom)
            )
              throw new BulwarkError(
                'validation_failed',
                `target ${path} is not an uploaded, unretired release with this length, hash and metadata`,
              );
          }
          await publishMetadata(trx, 'targets', targetsMd);
          await store.deletePending(trx, 'targets');
          const resigned = await resign(trx);
          return [
            {
              role: 'targets' as TufRole,
              version: targetsMd.signed.version,
              expires,
              keyids: Object.keys(targetsMd.signatures),
            },
            ...resigned,
          ];
        });
        await announce(actor, published);
        return { role, version: md.signed.version };
      });
    },

    /** Keeps snapshot and timestamp fresh; safe to call from several nodes (a lost race is ignored). */
    async refresh(): Promise<TufRole[]> {
      try {
        const published = await db.transaction().execute((trx) => resign(trx));
        await announce('system', published);
        return published.map((p) => p.role);
      } catch (err) {
        if (isUniqueViolation(err)) return [];
        throw err;
      }
    },

    /** The bytes of a metadata file by its served name, or undefined. */
    async file(name: string): Promise<string | undefined> {
      if (name === 'timestamp.json') return (await store.latest(db, 'timestamp'))?.body;
      if (name === 'root.json') return (await store.latest(db, 'root'))?.body;
      const m = /^([1-9]\d{0,9})\.(root|snapshot|targets)\.json$/.exec(name);
      if (!m) return undefined;
      return (await store.byVersion(db, m[2] as TufRole, Number(m[1])))?.body;
    },
  };
}

export type TufRepository = ReturnType<typeof createTufRepository>;
