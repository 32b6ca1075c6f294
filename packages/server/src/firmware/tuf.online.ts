import { createPublicKey } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import type { Root } from '@tufjs/models';
import { subjectOf } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import {
  parseMetadata,
  serialize,
  sha256,
  SPEC_VERSION,
  tufTime,
  type Json,
  type TufRepositoryDeps,
} from './tuf.metadata.ts';
import {
  generateTufKey,
  privateKeyFromPem,
  signerOf,
  tufPublicKeyOf,
  type TufPrivateKey,
  type TufPublicKey,
} from './tuf-keys.ts';
import * as store from './tuf.store.ts';
import { onlineRoles, type OnlineRole, type TufRole } from './tuf.store.ts';

/** What the repository does with its own (online) keys and stored metadata: the steps its use cases share. */

const sealLabel = (keyid: string) => `tuf/${keyid}`;

export async function onlineKey(ctx: TufRepositoryDeps, q: DbOrTx, role: OnlineRole): Promise<TufPrivateKey> {
  const [row] = await store.keysFor(q, role, 'active');
  if (!row) throw new BulwarkError('conflict', `no active ${role} key: initialize the TUF repository first`);
  return privateKeyFromPem(ctx.box.open(row.sealed_key, sealLabel(row.keyid)).toString('utf8'));
}

export async function newOnlineKey(
  ctx: TufRepositoryDeps,
  q: DbOrTx,
  role: OnlineRole,
): Promise<TufPublicKey> {
  const generated = generateTufKey();
  await store.insertKey(q, {
    keyid: generated.keyid,
    role,
    sealed_key: ctx.box.seal(Buffer.from(generated.privatePem), sealLabel(generated.keyid)),
    status: 'pending',
    created_at: ctx.now(),
  });
  return tufPublicKeyOf(createPublicKey(generated.publicPem));
}

export async function currentRoot(q: DbOrTx) {
  const row = await store.latest(q, 'root');
  return row && { row, md: parseMetadata('root', row.body) };
}

export type RoleKeys = Record<TufRole, { keyids: string[]; threshold: number }>;

export function rootJson(
  ctx: TufRepositoryDeps,
  root: { version: number; keys: Record<string, TufPublicKey>; roles: RoleKeys },
): Json {
  return {
    signed: {
      _type: 'root',
      spec_version: SPEC_VERSION,
      version: root.version,
      expires: tufTime(ctx.now() + ctx.expiry.root),
      consistent_snapshot: true,
      keys: root.keys,
      roles: root.roles,
    },
    signatures: [],
  };
}

export async function storePending(
  ctx: TufRepositoryDeps,
  q: DbOrTx,
  pending: { role: TufRole; body: string; actor: string },
) {
  await store.putPending(q, {
    role: pending.role,
    body: pending.body,
    created_by: pending.actor,
    created_at: ctx.now(),
  });
}

/** Removes pending online keys no pending root names (an abandoned rotation). */
export async function dropUnusedPendingKeys(q: DbOrTx, keep: Set<string>) {
  for (const role of onlineRoles)
    for (const row of await store.keysFor(q, role, 'pending'))
      if (!keep.has(row.keyid)) await q.deleteFrom('tuf_keys').where('keyid', '=', row.keyid).execute();
}

export function roleInfo(root: Root, role: TufRole): { keyids: string[]; threshold: number } {
  const r = root.roles[role];
  if (!r) throw new BulwarkError('internal', `root metadata has no ${role} role`);
  return { keyids: [...r.keyIDs], threshold: r.threshold };
}

export async function publishMetadata(
  ctx: TufRepositoryDeps,
  q: DbOrTx,
  published: { role: TufRole; md: { signed: { version: number; expires: string } } },
) {
  const { md } = published;
  await store.insertMetadata(q, {
    role: published.role,
    version: md.signed.version,
    body: serialize(md as never),
    expires_at: Date.parse(md.signed.expires),
    created_at: ctx.now(),
  });
}

export interface Published {
  role: TufRole;
  version: number;
  expires: number;
  keyid?: string;
  keyids?: string[];
}

/** Signs metadata that lists one file's version, length and hash (snapshot lists targets, timestamp snapshot). */
async function signListing(
  ctx: TufRepositoryDeps,
  q: DbOrTx,
  listing: {
    role: 'snapshot' | 'timestamp';
    version: number;
    file: { name: string; version: number; body: string };
  },
): Promise<Published & { keyid: string }> {
  const { role, file } = listing;
  const key = await onlineKey(ctx, q, role);
  const md = parseMetadata(role, {
    signed: {
      _type: role,
      spec_version: SPEC_VERSION,
      version: listing.version,
      expires: tufTime(ctx.now() + ctx.expiry[role]),
      meta: {
        [file.name]: {
          version: file.version,
          length: Buffer.byteLength(file.body),
          hashes: { sha256: sha256(file.body) },
        },
      },
    },
    signatures: [],
  });
  md.sign(signerOf(key), false);
  await publishMetadata(ctx, q, { role, md });
  return { role, version: md.signed.version, expires: Date.parse(md.signed.expires), keyid: key.keyid };
}

/**
 * Signs new snapshot and timestamp metadata when needed: targets changed, online keys rotated, or the
 * current ones are past half their lifetime. Returns the roles re-signed.
 */
export async function resign(ctx: TufRepositoryDeps, q: DbOrTx, force = false): Promise<Published[]> {
  const root = await currentRoot(q);
  const targetsRow = await store.latest(q, 'targets');
  if (!root || !targetsRow) return [];
  try {
    root.md.verifyDelegate('targets', parseMetadata('targets', targetsRow.body));
  } catch {
    return []; // targets keys rotated: nothing to snapshot until targets are signed again
  }
  const t = ctx.now();
  const done: Published[] = [];
  const snapshotKey = await onlineKey(ctx, q, 'snapshot');
  let snapshotRow = await store.latest(q, 'snapshot');
  const snapshotMeta = snapshotRow && parseMetadata('snapshot', snapshotRow.body);
  const snapshotStale =
    !snapshotRow ||
    !snapshotMeta ||
    force ||
    snapshotMeta.signed.meta['targets.json']?.version !== targetsRow.version ||
    snapshotRow.expires_at - t < ctx.expiry.snapshot / 2 ||
    !snapshotMeta.signatures[snapshotKey.keyid];
  if (snapshotStale) {
    const file = { name: 'targets.json', version: targetsRow.version, body: targetsRow.body };
    done.push(
      await signListing(ctx, q, { role: 'snapshot', version: (snapshotRow?.version ?? 0) + 1, file }),
    );
    snapshotRow = await store.latest(q, 'snapshot');
  }
  if (!snapshotRow) return done;
  const timestampKey = await onlineKey(ctx, q, 'timestamp');
  const timestampRow = await store.latest(q, 'timestamp');
  const timestampMeta = timestampRow && parseMetadata('timestamp', timestampRow.body);
  const timestampStale =
    done.length > 0 ||
    !timestampRow ||
    !timestampMeta ||
    timestampMeta.signed.snapshotMeta.version !== snapshotRow.version ||
    timestampRow.expires_at - t < ctx.expiry.timestamp / 2 ||
    !timestampMeta.signatures[timestampKey.keyid];
  if (timestampStale) {
    const file = { name: 'snapshot.json', version: snapshotRow.version, body: snapshotRow.body };
    done.push(
      await signListing(ctx, q, { role: 'timestamp', version: (timestampRow?.version ?? 0) + 1, file }),
    );
  }
  return done;
}

export async function announce(ctx: TufRepositoryDeps, actor: string, published: Published[]) {
  for (const p of published) {
    await ctx.events.emit({
      type: 'firmware.tuf_metadata_published',
      actor,
      subject: subjectOf.tuf(p.role),
      data: {
        role: p.role,
        version: p.version,
        expires: p.expires,
        keyids: p.keyids ?? (p.keyid ? [p.keyid] : []),
      },
    });
  }
}

export async function announceKeys(
  ctx: TufRepositoryDeps,
  created: { role: OnlineRole; keyid: string }[],
  actor: string,
) {
  for (const k of created)
    await ctx.events.emit({
      type: 'firmware.tuf_key_created',
      actor,
      subject: subjectOf.tuf(k.role),
      data: { role: k.role, keyid: k.keyid },
    });
}

/** Runs `work`; a refusal is recorded as `firmware.tuf_metadata_refused` before it is thrown on. */
export async function refused<T>(
  ctx: TufRepositoryDeps,
  at: { role: TufRole; actor: string },
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const e = BulwarkError.from(err);
    await ctx.events.emit({
      type: 'firmware.tuf_metadata_refused',
      actor: at.actor,
      subject: subjectOf.tuf(at.role),
      data: { role: at.role, reason: e.code === 'internal' ? 'internal error' : e.message },
    });
    throw err;
  }
}
