import { canonicalize } from '@tufjs/canonical-json';
import type { Metadata, Root, Targets } from '@tufjs/models';
import { BulwarkError } from '@bulwark/protocol';
import type { DbOrTx } from '../store/index.ts';
import { parseMetadata, roleOfDocument, type TargetEntry, type TufRepositoryDeps } from './tuf.metadata.ts';
import { announce, currentRoot, publishMetadata, refused, resign, type Published } from './tuf.online.ts';
import * as store from './tuf.store.ts';
import { onlineRoles, type TufRole } from './tuf.store.ts';

/** Publishing root and targets metadata signed offline; snapshot and timestamp follow. */

type CurrentRoot = Awaited<ReturnType<typeof currentRoot>>;

function verified(what: string, check: () => void): void {
  try {
    check();
  } catch (err) {
    throw new BulwarkError('signature_invalid', `${what}: ${(err as Error).message}`);
  }
}

/** The pending root, signed by a threshold of the current and of its own root keys; online keys follow it. */
async function publishRoot(
  ctx: TufRepositoryDeps,
  trx: DbOrTx,
  upload: { md: Metadata<Root>; current: CurrentRoot; expires: number },
): Promise<Published[]> {
  const { md, current } = upload;
  const pending = await store.getPending(trx, 'root');
  if (!pending) throw new BulwarkError('conflict', 'no root is pending: prepare one (init or rotate) first');
  if (canonicalize(md.signed.toJSON()) !== canonicalize(parseMetadata('root', pending.body).signed.toJSON()))
    throw new BulwarkError('validation_failed', 'the root differs from the pending root: sign that one');
  verified('the new root needs a threshold of signatures from the current root keys', () => {
    if (current) current.md.verifyDelegate('root', md);
  });
  verified('the new root needs a threshold of signatures from its own root keys', () =>
    md.verifyDelegate('root', md),
  );
  await publishMetadata(ctx, trx, { role: 'root', md });
  await store.deletePending(trx, 'root');
  for (const online of onlineRoles) {
    const named = new Set(md.signed.roles[online]?.keyIDs ?? []);
    for (const status of ['pending', 'active'])
      for (const row of await store.keysFor(trx, online, status))
        await store.setKeyStatus(trx, row.keyid, named.has(row.keyid) ? 'active' : 'retired');
  }
  const resigned = await resign(ctx, trx, true);
  const keyids = md.signed.roles.root?.keyIDs ?? [];
  return [{ role: 'root', version: md.signed.version, expires: upload.expires, keyids }, ...resigned];
}

/** Every target must be an uploaded, unretired release with exactly this length, hash and metadata. */
function checkTargets(md: Metadata<Targets>, entries: TargetEntry[]): void {
  const known = new Map(entries.map((e) => [e.path, e]));
  for (const [path, target] of Object.entries(md.signed.targets)) {
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
}

/** The next targets version, signed by a threshold of the targets keys, listing only images stored here. */
async function publishTargets(
  ctx: TufRepositoryDeps,
  trx: DbOrTx,
  upload: { md: Metadata<Targets>; current: CurrentRoot; expires: number; entries: TargetEntry[] },
): Promise<Published[]> {
  const { md, current } = upload;
  if (!current) throw new BulwarkError('conflict', 'the TUF repository is not initialized yet');
  const latestTargets = await store.latest(trx, 'targets');
  const expected = (latestTargets?.version ?? 0) + 1;
  if (md.signed.version !== expected)
    throw new BulwarkError(
      'conflict',
      `targets version must be ${expected} (the current is ${expected - 1}): prepare targets again`,
    );
  verified('targets metadata needs a threshold of signatures from the targets keys', () =>
    current.md.verifyDelegate('targets', md),
  );
  checkTargets(md, upload.entries);
  await publishMetadata(ctx, trx, { role: 'targets', md });
  await store.deletePending(trx, 'targets');
  const resigned = await resign(ctx, trx);
  const keyids = Object.keys(md.signatures);
  return [{ role: 'targets', version: md.signed.version, expires: upload.expires, keyids }, ...resigned];
}

function documentOf(input: unknown): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input) as unknown;
  } catch {
    throw new BulwarkError('validation_failed', 'metadata is not JSON');
  }
}

/**
 * Publishes signed root or targets metadata. Root: exactly the pending root, signed by a threshold of the
 * current and of the new root keys. Targets: the next version, signed by a threshold of the targets keys,
 * listing only images stored here with their exact length and hash. Snapshot and timestamp follow.
 */
export async function publish(
  ctx: TufRepositoryDeps,
  input: unknown,
  actor: string,
): Promise<{ role: TufRole; version: number }> {
  const doc = documentOf(input);
  const role = roleOfDocument(doc);
  if (role !== 'root' && role !== 'targets')
    throw new BulwarkError('validation_failed', `${role} metadata is made by the server, not uploaded`);
  return refused(ctx, { role, actor }, async () => {
    const md = role === 'root' ? parseMetadata('root', doc) : parseMetadata('targets', doc);
    const expires = Date.parse(md.signed.expires);
    if (!(expires > ctx.now()))
      throw new BulwarkError('validation_failed', `${role} metadata is already expired`);
    const entries = role === 'targets' ? await ctx.signableTargets() : [];
    const published = await ctx.db.transaction().execute(async (trx) => {
      const current = await currentRoot(trx);
      if (role === 'root') return publishRoot(ctx, trx, { md: parseMetadata('root', doc), current, expires });
      return publishTargets(ctx, trx, { md: parseMetadata('targets', doc), current, expires, entries });
    });
    await announce(ctx, actor, published);
    return { role, version: md.signed.version };
  });
}
