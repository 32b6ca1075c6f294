import { BulwarkError } from '@bulwark/protocol';
import type { DeviceService } from '../devices/index.ts';
import type { EventBus } from '../events/index.ts';
import type { Db, DevicesTable } from '../store/index.ts';
import type { SnapshotCache } from './access.snapshot.ts';

export interface AccessServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'on' | 'atomically'>;
  now: () => number;
  /**
   * The devices door: quarantine is a change to the device's row, which only the devices module writes;
   * the devices in service (compliance facts) are its answer too.
   */
  devices: Pick<DeviceService, 'markQuarantined' | 'inServiceIds'>;
}

/** What every use case of the access module works with. */
export interface AccessContext extends AccessServiceDeps {
  cache: SnapshotCache;
}

export async function deviceRow(ctx: Pick<AccessContext, 'db'>, id: string): Promise<DevicesTable> {
  const row = await ctx.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new BulwarkError('not_found', `device ${id} does not exist`);
  return row;
}

export const isQuarantined = (row: Pick<DevicesTable, 'quarantined_at'>) =>
  row.quarantined_at !== null && row.quarantined_at !== undefined;

/** A schema's issues as one line (`zone.name: …; …`). */
export function issuesText(
  what: string,
  issues: readonly { path: PropertyKey[]; message: string }[],
): string {
  return issues.map((i) => `${i.path.map(String).join('.') || what}: ${i.message}`).join('; ');
}
