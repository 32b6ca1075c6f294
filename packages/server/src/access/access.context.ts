import { BulwarkError, type AttestationStanding } from '@bulwark/protocol';
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
  /**
   * The attestation door's `standingOf` (late-bound in platform.ts: the attestation module is built after
   * this one). Asked when a device's access is compiled (CONNECT, recompile), never per message, so it must
   * answer from memory. Default: `none` for every device (no attestation module, nothing held).
   */
  attestationStanding?: (deviceId: string) => AttestationStanding;
}

/** What every use case of the access module works with. */
export interface AccessContext extends AccessServiceDeps {
  cache: SnapshotCache;
  attestationStanding: (deviceId: string) => AttestationStanding;
}

/**
 * Standings that hold a device's access (issue 17): a failed attestation, or none good within maxAge, leaves
 * it the quarantine policy until it attests again (IEC 62443-4-2 CR 3.4, EDR 3.14).
 */
export const holdingStandings: readonly AttestationStanding[] = ['contraindicated', 'overdue'];

/** Why a device's access is held by attestation (the text `describe()` and simulate show), or undefined. */
export function attestationHold(standing: AttestationStanding): string | undefined {
  return holdingStandings.includes(standing) ? `held by attestation: ${standing}` : undefined;
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
