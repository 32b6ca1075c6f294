import { deviceIdOf, eventsIn, isIn, type AuditEntry, type EventBus } from '../events/index.ts';
import type { NftablesOptions } from '../policy/index.ts';
import * as compile from './access.compile.ts';
import type { AccessContext, AccessServiceDeps } from './access.context.ts';
import * as devices from './access.devices.ts';
import { accessComplianceFacts, accessFacts } from './access.facts.ts';
import * as policies from './access.policies.ts';
import * as segments from './access.segments.ts';
import { createSnapshotCache, type SnapshotCache } from './access.snapshot.ts';

export {
  ANONYMOUS_GROUP,
  anonymousClientIdProblem,
  type AccessIdentity,
  type AppAccessIdentity,
} from './access.compile.ts';
export type { SimulateInput, AppSimulateInput, SimulatedApp } from './access.devices.ts';
export { attachmentKinds, type AttachmentKind } from './access.snapshot.ts';
export type { AccessServiceDeps } from './access.context.ts';
export type { AccessComplianceFacts, AccessFacts } from './access.facts.ts';

/** Access events that change no policy, zone or device zone: only the device's own sessions recompile. */
const keepsSnapshot: ReadonlySet<AuditEntry['type']> = new Set<AuditEntry['type']>([
  'device.quarantined',
  'device.released',
  'attestation.key_bound',
  'attestation.key_removed',
  'attestation.verified',
  'attestation.failed',
  'attestation.overdue',
]);

/**
 * Keeps the snapshot current and tells the listeners: every access event (local, or from another process
 * through the audit-log tail) may change compiled access; the `device-access` ones only that device's.
 */
function followChanges(
  events: Pick<EventBus, 'on'>,
  cache: SnapshotCache,
  listeners: ReadonlySet<(deviceId?: string) => void>,
) {
  events.on(eventsIn('access'), (entry) => {
    const id = deviceIdOf(entry.subject);
    // The snapshot holds policies, zones and each device's zone, not quarantine (read from the device's row)
    // nor attestation standing (asked of the attestation door at compile time): a quarantine, a release or an
    // attestation result keeps it, a device added or changed updates its own zone, anything else reloads it.
    // (Reloading every device for one quarantine stalled a 10,000-device broker for ~20 ms.)
    if (keepsSnapshot.has(entry.type)) {
      // unchanged
    } else if ((entry.type === 'device.updated' || entry.type === 'device.added') && id)
      cache.refreshDevice(id);
    else cache.invalidate();
    // A change to one device (quarantine, release, its group) needs only that device's sessions recompiled.
    const deviceId = isIn('device-access', entry.type) ? id : undefined;
    for (const l of listeners) l(deviceId);
  });
}

type DeviceSimulation = Awaited<ReturnType<typeof devices.simulate>>;
type AppSimulation = Awaited<ReturnType<typeof devices.simulateApp>>;

/** `simulate` for a device (`deviceId`) or an app (`app`), typed by which one is asked. */
function simulator(ctx: AccessContext) {
  function simulate(input: devices.SimulateInput): Promise<DeviceSimulation>;
  function simulate(input: devices.AppSimulateInput): Promise<AppSimulation>;
  function simulate(input: devices.SimulateInput | devices.AppSimulateInput) {
    return 'app' in input ? devices.simulateApp(ctx, input) : devices.simulate(ctx, input);
  }
  return simulate;
}

/**
 * Stores policies (versioned), their attachments, zones and conduits, and turns them into a device's
 * compiled access. Changes are events, committed with the change; every process sharing the store sees
 * them (through the audit log) and recompiles its live sessions.
 */
export function createAccessService(deps: AccessServiceDeps) {
  const ctx: AccessContext = {
    ...deps,
    cache: createSnapshotCache(deps.db),
    attestationStanding: deps.attestationStanding ?? (() => 'none'),
  };
  const listeners = new Set<(deviceId?: string) => void>();
  followChanges(deps.events, ctx.cache, listeners);

  return {
    accessFor: (identity: compile.AccessIdentity) => compile.accessFor(ctx, identity),
    /** An app connection's access: the app default and the policies attached to the app (its grants). */
    accessForApp: (identity: compile.AppAccessIdentity) => compile.accessForApp(ctx, identity),
    /** Identity on the development listener (never an enrolled device's id). */
    checkAnonymous: (clientId: string) => compile.checkAnonymous(ctx, clientId),

    /**
     * Called after any change that may alter compiled access (local or from another process); with a device
     * id when only that device is affected.
     */
    onChange(listener: (deviceId?: string) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    listPolicies: () => policies.listPolicies(ctx),
    getPolicy: (name: string) => policies.getPolicy(ctx, name),
    policyVersions: (name: string) => policies.policyVersions(ctx, name),
    /** Creates or replaces a policy as a new version; returns the warnings raised on save. */
    putPolicy: (name: string, document: unknown, actor: string) =>
      policies.putPolicy(ctx, { name, document }, actor),
    /** The apps module's writer of an app's grants (`app.<name>`, which `putPolicy` refuses). */
    putAppPolicy: (name: string, document: unknown, actor: string) =>
      policies.putPolicy(ctx, { name, document, owner: 'apps' }, actor),
    deletePolicy: (name: string, actor: string) => policies.deletePolicy(ctx, name, actor),
    /** Attaches (`attached: true`) or detaches a policy: all devices, a group, a zone, a device or an app. */
    setAttachment: (name: string, change: policies.AttachmentChange, actor: string) =>
      policies.setAttachment(ctx, { ...change, policy: name }, actor),
    attach: (name: string, to: { kind: string; target: string }, actor: string) =>
      policies.setAttachment(ctx, { ...to, attached: true, policy: name }, actor),
    detach: (name: string, from: { kind: string; target: string }, actor: string) =>
      policies.setAttachment(ctx, { ...from, attached: false, policy: name }, actor),

    listZones: async () => (await ctx.cache.current()).zones,
    listConduits: async () => (await ctx.cache.current()).conduits,
    putZone: (input: unknown, actor: string) => segments.putZone(ctx, input, actor),
    putConduit: (input: unknown, actor: string) => segments.putConduit(ctx, input, actor),
    deleteSegment: (kind: 'zone' | 'conduit', name: string, actor: string) =>
      segments.deleteSegment(ctx, { kind, name }, actor),
    exportNftables: (options: NftablesOptions = {}) => segments.nftables(ctx, options),

    /** Quarantine: the device keeps only `devices/{id}/quarantine/#` and its command topic, at once. */
    setQuarantine: (
      deviceId: string,
      change: { quarantined: boolean; reason?: string | undefined },
      actor: string,
    ) => devices.setQuarantine(ctx, { deviceId, ...change }, actor),
    /** Explain a decision for a device (`deviceId`) or an app (`app: { name, instance, zone, purpose }`). */
    simulate: simulator(ctx),
    describeAccess: (deviceId: string) => devices.describeAccess(ctx, deviceId),

    /** For the compliance checks: policies, zones with security levels, conduits, devices in no zone. */
    facts: () => accessFacts(ctx),
    /** The compliance engine's `access` source: policies with statements, zones, conduits, app grants. */
    complianceFacts: () => accessComplianceFacts(ctx),
  };
}

export type AccessService = ReturnType<typeof createAccessService>;
