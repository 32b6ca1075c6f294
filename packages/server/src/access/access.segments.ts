import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import {
  conduitSchema,
  exportNftables,
  zoneSchema,
  type Conduit,
  type NftablesOptions,
  type Zone,
} from '../policy/index.ts';
import { issuesText, type AccessContext } from './access.context.ts';

/** Zones and conduits (IEC 62443-3-2 segmentation): put by name, delete by name; each change with its event. */

export async function putZone(ctx: AccessContext, input: unknown, actor: string): Promise<Zone> {
  const parsed = zoneSchema.safeParse(input);
  if (!parsed.success)
    throw new BulwarkError('validation_failed', `invalid zone: ${issuesText('zone', parsed.error.issues)}`);
  const zone = parsed.data;
  const definition = JSON.stringify(zone);
  await ctx.events.atomically(async (tx, emit) => {
    const t = ctx.now();
    await tx
      .insertInto('zones')
      .values({ name: zone.name, definition, updated_at: t })
      .onConflict((oc) => oc.column('name').doUpdateSet({ definition, updated_at: t }))
      .execute();
    const data = { securityLevel: zone.securityLevel };
    emit({ type: 'zone.updated', actor, subject: subjectOf.zone(zone.name), data });
  });
  return zone;
}

export async function putConduit(ctx: AccessContext, input: unknown, actor: string): Promise<Conduit> {
  const parsed = conduitSchema.safeParse(input);
  if (!parsed.success)
    throw new BulwarkError(
      'validation_failed',
      `invalid conduit: ${issuesText('conduit', parsed.error.issues)}`,
    );
  const conduit = parsed.data;
  const zones = new Set((await ctx.cache.current()).zones.map((z) => z.name));
  for (const end of [conduit.from, conduit.to])
    if (!zones.has(end))
      throw new BulwarkError('validation_failed', `conduit ${conduit.name}: zone ${end} does not exist`);
  const definition = JSON.stringify(conduit);
  await ctx.events.atomically(async (tx, emit) => {
    const t = ctx.now();
    await tx
      .insertInto('conduits')
      .values({ name: conduit.name, definition, updated_at: t })
      .onConflict((oc) => oc.column('name').doUpdateSet({ definition, updated_at: t }))
      .execute();
    const data = { from: conduit.from, to: conduit.to, topics: conduit.topics };
    emit({ type: 'conduit.updated', actor, subject: subjectOf.conduit(conduit.name), data });
  });
  return conduit;
}

export async function deleteSegment(
  ctx: AccessContext,
  segment: { kind: 'zone' | 'conduit'; name: string },
  actor: string,
) {
  const { kind, name } = segment;
  if (kind === 'zone' && (await ctx.cache.current()).conduits.some((c) => c.from === name || c.to === name)) {
    throw new BulwarkError('conflict', `zone ${name} is joined by conduits: delete them first`);
  }
  await ctx.events.atomically(async (tx, emit) => {
    const res =
      kind === 'zone'
        ? await tx.deleteFrom('zones').where('name', '=', name).executeTakeFirst()
        : await tx.deleteFrom('conduits').where('name', '=', name).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0)
      throw new BulwarkError('not_found', `${kind} ${name} does not exist`);
    if (kind === 'zone') emit({ type: 'zone.deleted', actor, subject: subjectOf.zone(name), data: {} });
    else emit({ type: 'conduit.deleted', actor, subject: subjectOf.conduit(name), data: {} });
  });
}

export async function nftables(ctx: AccessContext, options: NftablesOptions = {}): Promise<string> {
  const snap = await ctx.cache.current();
  return exportNftables({ zones: snap.zones, conduits: snap.conduits }, options);
}
