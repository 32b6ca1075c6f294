import { subjectOf, type TxEmit } from '../events/index.ts';
import type { Tx } from '../store/index.ts';
import type { PrivacyContext } from './privacy.context.ts';
import { subjectLinks, type SubjectLinks } from './privacy.export.ts';
import { deleteSubject, getSubjectRow } from './privacy.store.ts';

/**
 * GDPR Art. 17 (right to erasure) of one data subject, in the order that keeps the audit log verifiable and
 * the receipt honest:
 * 1. every module that holds the subject's records erases them: the telemetry store and retained messages
 *    by the subject's id, the user accounts linked to them (anonymised); linked devices are only unlinked
 *    (their records are the fleet's: erasing a device is decommissioning it, not this);
 * 2. the subject's data key is destroyed (crypto-shredding: what was encrypted under it, in any copy, is
 *    unreadable from now on);
 * 3. privacy's own rows go (consents, links, the subject); requests stay as the record of what was done,
 *    without the subject's id or their notes;
 * 4. once every event of 1-3 is in the audit log, the personal values the log holds for the subject and its
 *    users are deleted (entries keep their sealed references, so the hash chain still verifies).
 * The receipt (`privacy.request_completed` with these counts) is the caller's (the request's) to record.
 */
export async function eraseSubject(
  ctx: PrivacyContext,
  subjectId: string,
  actor: string,
): Promise<Record<string, number>> {
  const sources = ctx.sources();
  const links = await subjectLinks(ctx.db, subjectId);
  const counts: Record<string, number> = {};
  const person = { kind: 'person' as const, id: subjectId };
  for (const store of [sources.telemetry, sources.retained, ...(sources.persons ?? [])]) {
    if (store) counts[store.module] = (await store.eraseSubject(person, actor)).erased;
  }
  let users = 0;
  // Each resolves once its own events are in the audit log (events.atomically resolves after the relay).
  for (const username of links.users)
    users += (await sources.users.eraseSubject({ kind: 'user', id: username }, actor)).erased;
  counts[sources.users.module] = users;
  const own = await ctx.events.atomically((tx, emit) =>
    erasePrivacyRows(ctx, {
      tx,
      subjectId,
      links,
      emit: (changes) => emitErased(emit, { subjectId, actor, changes }),
    }),
  );
  counts.devicesUnlinked = links.devices.length;
  counts.keys = own.keys;
  counts.privacy = own.rows;
  // Step 4 only now: `atomically` resolved, so the events above (which name the subject) are relayed into
  // the log and their personal values were sealed under the subject; erasing those values is the last step.
  counts.audit = await sources.audit.erasePersonal([
    subjectOf.person(subjectId),
    ...links.users.map((u) => subjectOf.user(u)),
  ]);
  return counts;
}

type ErasedChanges = { erased: true; devicesUnlinked: number; usersErased: number; consents: number };

function emitErased(emit: TxEmit, e: { subjectId: string; actor: string; changes: ErasedChanges }) {
  // The subject's id is in `subject` only (sealed in the log, erased in step 4), never in the data.
  emit({
    type: 'privacy.subject_updated',
    actor: e.actor,
    subject: subjectOf.person(e.subjectId),
    data: { changes: e.changes },
  });
}

/** Steps 2 and 3 in one transaction with their event: the data key, consents, links and the subject. */
async function erasePrivacyRows(
  ctx: PrivacyContext,
  e: { tx: Tx; subjectId: string; links: SubjectLinks; emit: (changes: ErasedChanges) => void },
): Promise<{ keys: number; rows: number }> {
  const { tx, subjectId } = e;
  const keys = await ctx.keys.destroy(tx, [subjectOf.person(subjectId)]);
  // A request's note is free text about the person ("Alice Example <alice@example.com>"): it goes with them.
  await tx.updateTable('privacy_requests').set({ note: null }).where('subject_id', '=', subjectId).execute();
  const subject = await getSubjectRow(tx, subjectId);
  const { links, consents } = await deleteSubject(tx, subjectId);
  const subjects = subject ? 1 : 0;
  const rows = consents + links + subjects;
  if (rows > 0 || keys > 0)
    e.emit({
      erased: true,
      devicesUnlinked: e.links.devices.length,
      usersErased: e.links.users.length,
      consents,
    });
  return { keys, rows };
}
