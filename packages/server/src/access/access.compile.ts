import type { AttestationStanding } from '@bulwark/protocol';
import {
  APP_DEFAULT_POLICY,
  compilePolicies,
  DEFAULT_POLICY,
  QUARANTINE_POLICY,
  zoneOf,
  type AttachedPolicy,
  type CompileInput,
  type DeviceAccess,
} from '../policy/index.ts';
import type { DevicesTable } from '../store/index.ts';
import { attestationHold, deviceRow, isQuarantined, type AccessContext } from './access.context.ts';
import { deviceFactsOf, type Snapshot } from './access.snapshot.ts';

export interface AccessIdentity {
  deviceId: string;
  remoteAddress: string | null;
  /** The client certificate's subject fields (CN, O, OU…). */
  certSubject?: Readonly<Record<string, string>>;
  /** A client of the development listener without authentication: policy group `anonymous`, no device row. */
  anonymous?: boolean;
}

export const ANONYMOUS_GROUP = 'anonymous';

/**
 * What MQTT 3.1.1 lets a server refuse in a client id ([MQTT-3.1.3-5]: any UTF-8 string; a server may allow
 * more than 23 characters): empty (the server would have to assign one, [MQTT-3.1.3-6]), U+0000
 * ([MQTT-1.5.3-2]), control characters (§1.5.3: a receiver may close the connection), or too long to record.
 */
export function anonymousClientIdProblem(clientId: string): string | undefined {
  if (clientId.length === 0) return 'empty client id: the development listener needs a client id';
  if (clientId.length > 256) return 'client id longer than 256 characters';
  // eslint-disable-next-line no-control-regex -- the control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(clientId)) return 'client id contains control characters';
  return undefined;
}

const anonymousRow = (id: string): DevicesTable => ({
  id,
  group_name: ANONYMOUS_GROUP,
  status: 'active',
  attributes: '{}',
  created_at: 0,
  updated_at: 0,
  enrolled_at: null,
  revoked_at: null,
  quarantined_at: null,
});

/** The policies attached to a device (the built-in default first, then the attached ones by name). */
function ownPolicies(snap: Snapshot, row: DevicesTable, zone: string | null): AttachedPolicy[] {
  const names = snap.attachments
    .filter(
      (a) =>
        a.kind === 'all' ||
        (a.kind === 'group' && a.target === row.group_name) ||
        (a.kind === 'zone' && a.target === zone) ||
        (a.kind === 'device' && a.target === row.id),
    )
    .map((a) => a.policy);
  return [
    DEFAULT_POLICY,
    ...[...new Set(names)]
      .sort()
      .map((name) => snap.policies.get(name))
      .filter((p): p is AttachedPolicy => p !== undefined),
  ];
}

/**
 * The policies that apply to a device: its own, or only the quarantine policy when it is quarantined or held
 * by attestation. A hold lists the statements it sets aside, with why, so `describe()` and simulate show it.
 */
function policiesFor(
  snap: Snapshot,
  device: { row: DevicesTable; zone: string | null; hold: string | undefined },
): Pick<CompileInput, 'policies' | 'leftOut'> {
  const { row, zone, hold } = device;
  if (isQuarantined(row)) return { policies: [QUARANTINE_POLICY] };
  if (!hold) return { policies: ownPolicies(snap, row, zone) };
  const leftOut = ownPolicies(snap, row, zone).flatMap((p) =>
    p.document.statements.map((st) => ({ policy: p.name, statement: st.sid, reason: hold })),
  );
  return { policies: [QUARANTINE_POLICY], leftOut };
}

/** A device's attestation standing as its access is compiled (an anonymous client has none). */
export function standingFor(ctx: AccessContext, identity: AccessIdentity): AttestationStanding {
  return identity.anonymous ? 'none' : ctx.attestationStanding(identity.deviceId);
}

/**
 * A device's compiled access: its attached policies (or quarantine) with its zone and segmentation. The
 * attestation standing is read here, once per compile (CONNECT, recompile), never per message; simulate may
 * pass one to try.
 */
export async function accessFor(
  ctx: AccessContext,
  identity: AccessIdentity,
  standing: AttestationStanding = standingFor(ctx, identity),
): Promise<DeviceAccess> {
  const snap = await ctx.cache.current();
  const row = identity.anonymous ? anonymousRow(identity.deviceId) : await deviceRow(ctx, identity.deviceId);
  const attributes = JSON.parse(row.attributes) as Record<string, string>;
  const zone = zoneOf({ group: row.group_name, attributes }, snap.zones);
  const hold = attestationHold(standing);
  return compilePolicies({
    ctx: {
      deviceId: row.id,
      group: row.group_name,
      zone,
      attributes,
      cert: { ...(identity.certSubject ?? {}), cn: identity.certSubject?.CN ?? row.id },
      state: isQuarantined(row) || hold ? 'quarantined' : 'active',
      sourceAddress: identity.remoteAddress,
      attestation: standing,
    },
    ...policiesFor(snap, { row, zone, hold }),
    segmentation: { zones: snap.zones, conduits: snap.conduits },
    deviceZone: (id) => snap.deviceZones.get(id),
    deviceFacts: deviceFactsOf(snap),
  });
}

/** An app connection as the apps check identified it (zone and purpose are the app's, from its row). */
export interface AppAccessIdentity {
  app: string;
  instance: string | null;
  zone: string | null;
  /** The app's declared purpose (a fideslang data use); without one, no grant reaches `devices/`. */
  purpose: string | null;
  remoteAddress: string | null;
  /** The client certificate's subject fields, when the app connected with a certificate. */
  certSubject?: Readonly<Record<string, string>>;
}

/**
 * The policies of an app: the built-in app default, then those attached to the app by name. An app never
 * gets what is attached to all devices, a group, a zone or a device.
 */
function appPolicies(snap: Snapshot, app: string): AttachedPolicy[] {
  const names = snap.attachments.filter((a) => a.kind === 'app' && a.target === app).map((a) => a.policy);
  return [
    APP_DEFAULT_POLICY,
    ...[...new Set(names)]
      .sort()
      .map((name) => snap.policies.get(name))
      .filter((p): p is AttachedPolicy => p !== undefined),
  ];
}

/** An app connection's compiled access: its grants, its zone's conduits, targets checked per device. */
export async function accessForApp(ctx: AccessContext, identity: AppAccessIdentity): Promise<DeviceAccess> {
  const snap = await ctx.cache.current();
  return compilePolicies({
    ctx: {
      principal: 'app',
      app: { name: identity.app, instance: identity.instance, purpose: identity.purpose },
      deviceId: '',
      group: null,
      zone: identity.zone,
      attributes: {},
      cert: { ...(identity.certSubject ?? {}), cn: identity.certSubject?.CN ?? identity.app },
      state: 'active',
      sourceAddress: identity.remoteAddress,
      attestation: 'none', // an app has no TPM: statements for `none` apply to it
    },
    policies: appPolicies(snap, identity.app),
    segmentation: { zones: snap.zones, conduits: snap.conduits },
    deviceZone: (id) => snap.deviceZones.get(id),
    deviceFacts: deviceFactsOf(snap),
  });
}

/**
 * Identity on the development listener: the client id, any that MQTT allows (spaces included), but never
 * an enrolled device's (an unauthenticated client never speaks for a real device). An id that is not one
 * plain topic level ("a/b", "+", "bench 7") still connects; policies insert `${device.id}` only when it
 * is one, so such a client simply has no subtree of its own.
 */
export async function checkAnonymous(
  ctx: Pick<AccessContext, 'db'>,
  clientId: string,
): Promise<
  | { ok: true; deviceId: string; group: string; serial: string }
  | { ok: false; code: 'validation_failed'; reason: string }
> {
  const problem = anonymousClientIdProblem(clientId);
  if (problem) return { ok: false, code: 'validation_failed', reason: problem };
  if (await ctx.db.selectFrom('devices').select('id').where('id', '=', clientId).executeTakeFirst()) {
    return {
      ok: false,
      code: 'validation_failed',
      reason: 'this client id belongs to an enrolled device: it must use its certificate',
    };
  }
  return { ok: true, deviceId: clientId, group: ANONYMOUS_GROUP, serial: 'anonymous' };
}
