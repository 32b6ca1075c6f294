import { BulwarkError } from '@bulwark/protocol';
import type { AuditLog, EventBus, SecurityEvent, TxEmit } from '../events/index.ts';
import type { Db, DbOrTx, Tx } from '../store/index.ts';
import * as store from './device.store.ts';
import type { Device } from './device.types.ts';
import type { DeviceFacts } from './device.reads.ts';
import type { CertificatesOf } from './device.subject.ts';

export interface DeviceServiceDeps {
  db: Db;
  /**
   * Where changes and their events go. With `atomically` (the platform's bus) a state change commits with its
   * event; a bare recording emitter (unit tests of other modules) gets them one after the other.
   */
  events: Pick<EventBus, 'emit'> & Partial<Pick<EventBus, 'atomically'>>;
  now: () => number;
  /** Default lifetime of an enrollment token, in ms. */
  tokenTtlMs: number;
  /** Where a device's refusals are read from. */
  audit?: Pick<AuditLog, 'query'> | undefined;
  /**
   * What other modules know about a device (zone, firmware, certificates), as functions the composition root
   * passes at creation; without them these read as unknown.
   */
  facts?: (DeviceFacts & { certificatesOf?: CertificatesOf | undefined }) | undefined;
  /**
   * What `markLost` and `decommission` need from other modules (pki, privacy, attestation, the audit log).
   * Given here or later through the service's `bindRetirement` (the composition root binds what is built after
   * the devices service); whatever is missing when used fails loudly ("... is not wired"), never skips.
   */
  retirement?: Partial<DeviceRetirementDeps> | undefined;
}

/** How a device leaves service, as functions of the modules that hold what it leaves behind. */
export interface DeviceRetirementDeps {
  /**
   * pki's door `revokeDeviceCertificates`: revokes every unrevoked certificate of the device inside the
   * caller's transaction, with a `certificate.revoked` each; resolves with their serials.
   */
  revokeCertificates(
    tx: Tx,
    emit: TxEmit,
    revocation: {
      deviceId: string;
      at: number;
      actor: string;
      reason: 'keyCompromise' | 'cessationOfOperation';
    },
  ): Promise<string[]>;
  /**
   * Erases what every module holds about the device (privacy's telemetry and retained messages, attestation's
   * keys and reports, the devices module's own `subjectData` erasure), counts by module. Its own transactions.
   */
  eraseDeviceData(deviceId: string, actor: string): Promise<Record<string, number>>;
  /** The audit entry of this type about this subject once it is in the log (the proof), or undefined. */
  auditEntryFor(
    subject: string,
    type: 'device.decommissioned',
  ): Promise<{ seq: number; hash: string } | undefined>;
}

/** What every use case of the devices module works with. */
export interface DeviceContext extends DeviceServiceDeps {
  /** Bound at creation or later (`bindRetirement`); read at each use. */
  retirement: Partial<DeviceRetirementDeps>;
}

export async function requireDevice(q: DbOrTx, id: string): Promise<Device> {
  const row = await store.getDeviceRow(q, id);
  if (!row) throw new BulwarkError('not_found', `device ${id} does not exist`);
  return store.toDevice(row);
}

/** A change and its events as one unit (the bus's `atomically`). */
export async function atomically<R>(
  ctx: DeviceContext,
  work: (tx: Tx, emit: TxEmit) => Promise<R>,
): Promise<R> {
  if (ctx.events.atomically) return ctx.events.atomically(work);
  const recorded: SecurityEvent[] = [];
  const result = await ctx.db.transaction().execute((tx) => work(tx, (event) => recorded.push(event)));
  for (const event of recorded) await ctx.events.emit(event);
  return result;
}
