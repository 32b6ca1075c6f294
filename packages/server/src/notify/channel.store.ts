import type { DbOrTx, NotificationChannelsTable } from '../store/index.ts';
import type { Channel, ChannelFilter, ChannelFormat, ChannelKind, ChannelSettings } from './channel.types.ts';

export type ChannelRow = NotificationChannelsTable;

export function toChannel(row: ChannelRow, head: number): Channel {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind as ChannelKind,
    format: row.format as ChannelFormat,
    target: row.target,
    settings: JSON.parse(row.settings) as ChannelSettings,
    filter: JSON.parse(row.filter) as ChannelFilter,
    enabled: row.enabled === 1,
    cursor: row.cursor,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    status: {
      attempts: row.attempts,
      failing: row.attempts > 0,
      lastError: row.last_error,
      nextAttemptAt: row.next_attempt_at,
      lastDeliveredAt: row.last_delivered_at,
      lag: Math.max(0, head - row.cursor),
    },
  };
}

export const channelStore = {
  list: (db: DbOrTx) => db.selectFrom('notification_channels').selectAll().orderBy('name').execute(),

  listEnabled: (db: DbOrTx) =>
    db.selectFrom('notification_channels').selectAll().where('enabled', '=', 1).execute(),

  byId: (db: DbOrTx, id: string) =>
    db.selectFrom('notification_channels').selectAll().where('id', '=', id).executeTakeFirst(),

  /** By id, else by name (the CLI takes either). */
  async find(db: DbOrTx, idOrName: string): Promise<ChannelRow | undefined> {
    return (
      (await channelStore.byId(db, idOrName)) ??
      (await db
        .selectFrom('notification_channels')
        .selectAll()
        .where('name', '=', idOrName)
        .executeTakeFirst())
    );
  },

  insert: (db: DbOrTx, row: ChannelRow) => db.insertInto('notification_channels').values(row).execute(),

  update: (db: DbOrTx, id: string, changes: Partial<ChannelRow>) =>
    db.updateTable('notification_channels').set(changes).where('id', '=', id).execute(),

  remove: (db: DbOrTx, id: string) => db.deleteFrom('notification_channels').where('id', '=', id).execute(),

  /**
   * Takes or renews the delivery lease: one conditional UPDATE, so of several nodes sharing the store only
   * one wins while the lease runs; an expired lease (its holder died) can be taken by anyone.
   */
  async claimLease(
    db: DbOrTx,
    lease: { id: string; owner: string; now: number; leaseMs: number },
  ): Promise<boolean> {
    const { id, owner, now, leaseMs } = lease;
    const result = await db
      .updateTable('notification_channels')
      .set({ lease_owner: owner, lease_until: now + leaseMs })
      .where('id', '=', id)
      .where('enabled', '=', 1)
      .where((eb) =>
        eb.or([eb('lease_owner', 'is', null), eb('lease_owner', '=', owner), eb('lease_until', '<', now)]),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  },

  /** Changes made only while this node still holds the lease (false: lost it, or the channel is gone). */
  async updateLeased(
    db: DbOrTx,
    lease: { id: string; owner: string },
    changes: Partial<ChannelRow>,
  ): Promise<boolean> {
    const { id, owner } = lease;
    const result = await db
      .updateTable('notification_channels')
      .set(changes)
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  },

  releaseLeases: (db: DbOrTx, owner: string) =>
    db
      .updateTable('notification_channels')
      .set({ lease_owner: null, lease_until: null })
      .where('lease_owner', '=', owner)
      .execute(),
};
