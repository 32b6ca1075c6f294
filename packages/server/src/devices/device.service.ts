import type { EventBus } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import {
  requireDevice,
  type DeviceContext,
  type DeviceRetirementDeps,
  type DeviceServiceDeps,
} from './device.context.ts';
import { deviceComplianceFacts, deviceFacts, devicesInService, inServiceIds } from './device.facts.ts';
import { follow } from './device.follow.ts';
import * as lifecycle from './device.lifecycle.ts';
import * as reads from './device.reads.ts';
import * as registry from './device.registry.ts';
import * as retirement from './device.retirement.ts';
import * as store from './device.store.ts';
import { deviceSubjectData } from './device.subject.ts';
import type { Device, DeviceOperation } from './device.types.ts';

export { hashToken, requireStatus, statusRefusal } from './device.rules.ts';
export type { DeviceRetirementDeps, DeviceServiceDeps } from './device.context.ts';
export { eraseAcross, type Decommissioned } from './device.retirement.ts';
export type { DeviceDenial, DeviceFacts, DeviceView } from './device.reads.ts';
export type { TokenCheck } from './device.lifecycle.ts';

/**
 * The devices module's door: the device registry (add, import, list, change, tokens), the lifecycle
 * (enrollment, disable, revoke, quarantine, each committed with its event), what operators read, and the
 * module's facts and data-subject answers. Each use case is a function over the same context.
 */
export function createDeviceService(deps: DeviceServiceDeps) {
  const ctx: DeviceContext = { ...deps, retirement: { ...deps.retirement } };
  const { facts } = deps;
  const certificatesOf = facts?.certificatesOf;

  return {
    /** Inside the caller's transaction: the status still allows `operation` (pki's re-enrollment). */
    lockStatus: (trx: DbOrTx, id: string, operation: DeviceOperation) =>
      lifecycle.lockStatus(ctx, trx, { id, operation }),

    follow: (bus: Pick<EventBus, 'on'>, onError: (err: unknown) => void) => follow(ctx.db, bus, onError),

    /** Devices with their zone and firmware version. */
    views: (list: Device[]) => reads.views(facts, list),

    /** One device with its zone and firmware, and its latest refusals. */
    show: (id: string, limit = 10) => reads.show(ctx, facts, { id, limit }),

    /** The device's certificates (revoked and expired too) with their state now, newest first. */
    certificates: (id: string) => reads.certificates(ctx, certificatesOf, id),

    add: (input: { id: string; group?: string | null | undefined }, actor: string) =>
      registry.add(ctx, input, actor),

    /**
     * Registers a device with its group and attributes and issues its enrollment token, all or nothing (one
     * transaction): a bulk import never leaves a device without its token or without its attributes.
     */
    addWithToken: (input: registry.NewDevice, actor: string, ttlMs?: number) =>
      registry.addWithToken(ctx, { ...input, ttlMs }, actor),

    get: (id: string) => requireDevice(ctx.db, id),

    async find(id: string): Promise<Device | undefined> {
      const row = await store.getDeviceRow(ctx.db, id);
      return row && store.toDevice(row);
    },

    list: (filter: registry.ListInput = {}) => registry.list(ctx, filter),

    /**
     * Changes a device's group and/or attributes: `attributes` replaces them as a whole; `setAttributes` and
     * `unsetAttributes` change only the names given (an empty value in `setAttributes` removes the name).
     */
    update: (id: string, changes: registry.DeviceChanges, actor: string) =>
      registry.update(ctx, { id, changes }, actor),

    /** A one-time enrollment token, bound to this device, shown once and stored only as a hash. */
    issueToken: (id: string, actor: string, ttlMs?: number) => registry.issueToken(ctx, { id, ttlMs }, actor),

    /** Checks a presented token without using it up (an unknown device and a wrong token answer alike). */
    checkToken: (id: string, token: string) => lifecycle.checkToken(ctx, { id, token }),

    /** Uses the token up and marks the device enrolled, inside the caller's transaction. */
    completeEnrollment: (trx: DbOrTx, check: lifecycle.TokenCheck) =>
      lifecycle.completeEnrollment(ctx, trx, check),

    /** Disables or enables the device; the change and its event commit together. */
    setDisabled: (id: string, change: { disabled: boolean; reason?: string | undefined }, actor: string) =>
      lifecycle.setDisabled(ctx, { id, ...change }, actor),

    /** Marks the device revoked inside the caller's transaction (pki revokes its certificates alongside). */
    markRevoked: (trx: DbOrTx, id: string) => lifecycle.markRevoked(ctx, trx, id),

    /** Quarantines or releases the device inside the caller's transaction (access records the event). */
    markQuarantined: (trx: DbOrTx, change: { id: string; quarantined: boolean }) =>
      lifecycle.markQuarantined(ctx, trx, change),

    /**
     * Reported lost or stolen: status `lost`, quarantined, every certificate revoked, `device.lost`, in one
     * transaction. Needs `retirement.revokeCertificates`.
     */
    markLost: (id: string, input: { reason?: string | undefined; stolen: boolean }, actor: string) =>
      retirement.markLost(ctx, { id, ...input }, actor),

    /** Only from `lost`: `registered` again (re-enrolls with a new token), still quarantined; `device.found`. */
    markFound: (id: string, input: { reason?: string | undefined }, actor: string) =>
      retirement.markFound(ctx, { id, ...input }, actor),

    /**
     * Retires the device: certificates revoked, data erased by every module, `device.decommissioned` as the
     * proof (its seq and hash answered, null if not relayed within 2 s); its id is never reused. Needs
     * `retirement.revokeCertificates` and `retirement.eraseDeviceData`.
     */
    decommission: (id: string, input: { reason?: string | undefined }, actor: string) =>
      retirement.decommission(ctx, { id, ...input }, actor),

    /**
     * Binds what retirement needs from modules built after this one (the composition root calls it once
     * they exist): pki's `revokeDeviceCertificates`, the erasure across modules, the audit entry reader.
     */
    bindRetirement(bound: Partial<DeviceRetirementDeps>): void {
      Object.assign(ctx.retirement, bound);
    },

    /** For the compliance checks: counts by status and state, certificates, devices not seen. */
    facts: (options?: { notSeenDays?: number | undefined }) => deviceFacts(ctx, options),

    /**
     * For the compliance checks: every device with its session state and zone, revoked devices still
     * connected, and identity conflicts (`mqtt.identity_conflict`) in the window.
     */
    complianceFacts: (options: { conflictWindowMs: number }) => deviceComplianceFacts(ctx, options),

    /** The ids of the devices in service (registered, active or disabled), sorted: one definition of it. */
    inServiceIds: () => inServiceIds(ctx),
    /** The devices in service with their attributes (risk's inventory: device models). */
    inService: () => devicesInService(ctx),

    /** Devices in service per group ('' for none): the monitor's compliance facts (profiles per group). */
    groups: () => store.countByGroup(ctx.db),

    /** For privacy: export and erase by data subject (kind `device`). */
    subjectData: deviceSubjectData(ctx, () => certificatesOf),
  };
}

export type DeviceService = ReturnType<typeof createDeviceService>;
