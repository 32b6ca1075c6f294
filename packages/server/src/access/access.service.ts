import { BulwarkError } from '@bulwark/protocol';
import type { AuditEntry, EventBus, EventType } from '../events/index.ts';
import {
  compilePolicies,
  conduitSchema,
  DEFAULT_POLICY,
  exportNftables,
  lintPolicy,
  parsePolicyDocument,
  QUARANTINE_POLICY,
  zoneOf,
  zoneSchema,
  type AttachedPolicy,
  type Conduit,
  type Decision,
  type DeviceAccess,
  type NftablesOptions,
  type PolicyDocument,
  type Zone,
} from '../policy/index.ts';
import type { Db, DevicesTable } from '../store/index.ts';

export const attachmentKinds = ['all', 'group', 'zone', 'device'] as const;
export type AttachmentKind = (typeof attachmentKinds)[number];

interface Snapshot {
  policies: Map<string, AttachedPolicy>;
  attachments: { policy: string; kind: AttachmentKind; target: string }[];
  zones: Zone[];
  conduits: Conduit[];
  deviceZones: Map<string, string | null>;
}

/** Events after which compiled access may differ: every live session is recompiled. */
const DEVICE_SCOPED: ReadonlySet<string> = new Set([
  'device.quarantined',
  'device.released',
  'device.updated',
]);
const ACCESS_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'policy.updated',
  'policy.deleted',
  'policy.attached',
  'policy.detached',
  'zone.updated',
  'zone.deleted',
  'conduit.updated',
  'conduit.deleted',
  'device.quarantined',
  'device.released',
  'device.added',
  'device.updated',
]);

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

export interface AccessServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'subscribe'>;
  now: () => number;
}

const policyName = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const BUILTIN = new Set([DEFAULT_POLICY.name, QUARANTINE_POLICY.name]);

/**
 * Stores policies (versioned), their attachments, zones and conduits, and turns them into a device's
 * compiled access. Changes are events; every process sharing the store sees them (through the audit log)
 * and recompiles its live sessions.
 */
export function createAccessService(deps: AccessServiceDeps) {
  const { db, events, now } = deps;
  let snapshot: Promise<Snapshot> | undefined;
  const listeners = new Set<(deviceId?: string) => void>();

  events.subscribe((entry: AuditEntry) => {
    if (!ACCESS_EVENTS.has(entry.type)) return;
    // A change to one device (quarantine, release, its group) needs only that device's sessions recompiled.
    const deviceId =
      DEVICE_SCOPED.has(entry.type) && entry.subject?.startsWith('device:')
        ? entry.subject.slice(7)
        : undefined;
    // The snapshot holds policies, zones and each device's zone, not quarantine (read from the device's row):
    // a quarantine or release keeps it, a device added or changed updates its own zone, anything else reloads
    // it. (Reloading every device for one quarantine stalled a 10,000-device broker for ~20 ms.)
    const id = entry.subject?.startsWith('device:') ? entry.subject.slice(7) : undefined;
    if (entry.type === 'device.quarantined' || entry.type === 'device.released') {
      // unchanged
    } else if ((entry.type === 'device.updated' || entry.type === 'device.added') && id && snapshot) {
      snapshot = snapshot.then(async (snap) => {
        const row = await db
          .selectFrom('devices')
          .select(['group_name', 'attributes'])
          .where('id', '=', id)
          .executeTakeFirst();
        if (row)
          snap.deviceZones.set(
            id,
            zoneOf(
              { group: row.group_name, attributes: JSON.parse(row.attributes) as Record<string, string> },
              snap.zones,
            ),
          );
        return snap;
      });
      snapshot.catch(() => (snapshot = undefined));
    } else snapshot = undefined;
    for (const l of listeners) l(deviceId);
  });

  async function load(): Promise<Snapshot> {
    const [policies, attachments, zones, conduits, devices] = await Promise.all([
      db.selectFrom('policies').selectAll().execute(),
      db.selectFrom('policy_attachments').selectAll().execute(),
      db.selectFrom('zones').selectAll().execute(),
      db.selectFrom('conduits').selectAll().execute(),
      db.selectFrom('devices').select(['id', 'group_name', 'attributes']).execute(),
    ]);
    const zoneList = zones.map((z) => zoneSchema.parse(JSON.parse(z.definition)));
    return {
      policies: new Map(
        policies.map((p) => [
          p.name,
          { name: p.name, version: p.version, document: JSON.parse(p.document) as PolicyDocument },
        ]),
      ),
      attachments: attachments.map((a) => ({
        policy: a.policy,
        kind: a.target_kind as AttachmentKind,
        target: a.target,
      })),
      zones: zoneList,
      conduits: conduits.map((c) => conduitSchema.parse(JSON.parse(c.definition))),
      deviceZones: new Map(
        devices.map((d) => [
          d.id,
          zoneOf(
            { group: d.group_name, attributes: JSON.parse(d.attributes) as Record<string, string> },
            zoneList,
          ),
        ]),
      ),
    };
  }
  const current = () =>
    (snapshot ??= load().catch((err: unknown) => {
      snapshot = undefined;
      throw err;
    }));

  async function deviceRow(id: string): Promise<DevicesTable> {
    const row = await db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new BulwarkError('not_found', `device ${id} does not exist`);
    return row;
  }

  async function accessFor(identity: AccessIdentity): Promise<DeviceAccess> {
    const snap = await current();
    const row: DevicesTable = identity.anonymous
      ? {
          id: identity.deviceId,
          group_name: ANONYMOUS_GROUP,
          status: 'active',
          attributes: '{}',
          created_at: 0,
          updated_at: 0,
          enrolled_at: null,
          revoked_at: null,
          quarantined_at: null,
        }
      : await deviceRow(identity.deviceId);
    const attributes = JSON.parse(row.attributes) as Record<string, string>;
    const zone = zoneOf({ group: row.group_name, attributes }, snap.zones);
    const quarantined = row.quarantined_at !== null && row.quarantined_at !== undefined;
    const attached = quarantined
      ? [QUARANTINE_POLICY]
      : [
          DEFAULT_POLICY,
          ...[
            ...new Set(
              snap.attachments
                .filter(
                  (a) =>
                    a.kind === 'all' ||
                    (a.kind === 'group' && a.target === row.group_name) ||
                    (a.kind === 'zone' && a.target === zone) ||
                    (a.kind === 'device' && a.target === row.id),
                )
                .map((a) => a.policy),
            ),
          ]
            .sort()
            .map((name) => snap.policies.get(name))
            .filter((p): p is AttachedPolicy => p !== undefined),
        ];
    return compilePolicies({
      ctx: {
        deviceId: row.id,
        group: row.group_name,
        zone,
        attributes,
        cert: { ...(identity.certSubject ?? {}), cn: identity.certSubject?.CN ?? row.id },
        state: quarantined ? 'quarantined' : 'active',
        sourceAddress: identity.remoteAddress,
      },
      policies: attached,
      segmentation: { zones: snap.zones, conduits: snap.conduits },
      deviceZone: (id) => snap.deviceZones.get(id),
    });
  }

  function checkPolicyName(name: string) {
    if (!policyName.test(name))
      throw new BulwarkError('validation_failed', 'policy name must be 1-64 characters of a-z 0-9 _ . -');
    if (BUILTIN.has(name)) throw new BulwarkError('conflict', `${name} is built in and cannot be changed`);
  }

  return {
    accessFor,

    /**
     * Identity on the development listener: the client id, any that MQTT allows (spaces included), but never
     * an enrolled device's (an unauthenticated client never speaks for a real device). An id that is not one
     * plain topic level ("a/b", "+", "bench 7") still connects; policies insert `${device.id}` only when it
     * is one, so such a client simply has no subtree of its own.
     */
    async checkAnonymous(
      clientId: string,
    ): Promise<
      | { ok: true; deviceId: string; group: string; serial: string }
      | { ok: false; returnCode: 2 | 5; reason: string }
    > {
      const problem = anonymousClientIdProblem(clientId);
      if (problem) return { ok: false, returnCode: 2, reason: problem };
      if (await db.selectFrom('devices').select('id').where('id', '=', clientId).executeTakeFirst()) {
        return {
          ok: false,
          returnCode: 2,
          reason: 'this client id belongs to an enrolled device: it must use its certificate',
        };
      }
      return { ok: true, deviceId: clientId, group: ANONYMOUS_GROUP, serial: 'anonymous' };
    },
    /**
     * Called after any change that may alter compiled access (local or from another process); with a device
     * id when only that device is affected.
     */
    onChange(listener: (deviceId?: string) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async listPolicies() {
      const rows = await db.selectFrom('policies').selectAll().orderBy('name').execute();
      const attachments = await db.selectFrom('policy_attachments').selectAll().execute();
      const builtins = [DEFAULT_POLICY, QUARANTINE_POLICY].map((p) => ({
        name: p.name,
        version: p.version,
        builtin: true,
        document: p.document,
        attachments: [{ kind: p.name === DEFAULT_POLICY.name ? 'all' : 'quarantined', target: '*' }],
        updatedAt: 0,
      }));
      return [
        ...builtins,
        ...rows.map((r) => ({
          name: r.name,
          version: r.version,
          builtin: false,
          document: JSON.parse(r.document) as PolicyDocument,
          attachments: attachments
            .filter((a) => a.policy === r.name)
            .map((a) => ({ kind: a.target_kind, target: a.target })),
          updatedAt: r.updated_at,
        })),
      ];
    },

    async getPolicy(name: string) {
      const found = (await this.listPolicies()).find((p) => p.name === name);
      if (!found) throw new BulwarkError('not_found', `policy ${name} does not exist`);
      return found;
    },

    async policyVersions(name: string) {
      const rows = await db
        .selectFrom('policy_versions')
        .selectAll()
        .where('name', '=', name)
        .orderBy('version')
        .execute();
      if (rows.length === 0) throw new BulwarkError('not_found', `policy ${name} does not exist`);
      return rows.map((r) => ({
        version: r.version,
        actor: r.actor,
        createdAt: r.created_at,
        document: JSON.parse(r.document) as PolicyDocument,
      }));
    },

    /** Creates or replaces a policy as a new version; returns the warnings raised on save. */
    async putPolicy(name: string, input: unknown, actor: string) {
      checkPolicyName(name);
      const parsed = parsePolicyDocument(input);
      if (!parsed.ok)
        throw new BulwarkError('validation_failed', `invalid policy: ${parsed.problems.join('; ')}`, {
          details: { problems: parsed.problems },
        });
      const warnings = lintPolicy(parsed.document);
      const t = now();
      const text = JSON.stringify(parsed.document);
      const version = await db.transaction().execute(async (trx) => {
        const existing = await trx
          .selectFrom('policies')
          .select('version')
          .where('name', '=', name)
          .executeTakeFirst();
        const v = (existing?.version ?? 0) + 1;
        if (existing)
          await trx
            .updateTable('policies')
            .set({ version: v, document: text, updated_at: t })
            .where('name', '=', name)
            .execute();
        else
          await trx
            .insertInto('policies')
            .values({ name, version: v, document: text, description: null, created_at: t, updated_at: t })
            .execute();
        await trx
          .insertInto('policy_versions')
          .values({ name, version: v, document: text, actor, created_at: t })
          .execute();
        return v;
      });
      await events.emit({
        type: 'policy.updated',
        actor,
        subject: `policy:${name}`,
        data: { version, warnings: warnings.map((w) => w.message) },
      });
      return { name, version, warnings };
    },

    async deletePolicy(name: string, actor: string) {
      checkPolicyName(name);
      const existing = await db
        .selectFrom('policies')
        .select('version')
        .where('name', '=', name)
        .executeTakeFirst();
      if (!existing) throw new BulwarkError('not_found', `policy ${name} does not exist`);
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('policy_attachments').where('policy', '=', name).execute();
        await trx.deleteFrom('policies').where('name', '=', name).execute();
      });
      await events.emit({
        type: 'policy.deleted',
        actor,
        subject: `policy:${name}`,
        data: { version: existing.version },
      });
    },

    async attach(name: string, kind: string, target: string, actor: string, attach: boolean) {
      if (!(attachmentKinds as readonly string[]).includes(kind))
        throw new BulwarkError('validation_failed', `kind must be one of ${attachmentKinds.join(', ')}`);
      if (kind === 'all') target = '*';
      else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(target))
        throw new BulwarkError('validation_failed', 'target must be a group, zone or device name');
      checkPolicyName(name);
      if (!(await db.selectFrom('policies').select('name').where('name', '=', name).executeTakeFirst())) {
        throw new BulwarkError('not_found', `policy ${name} does not exist`);
      }
      if (attach) {
        await db
          .insertInto('policy_attachments')
          .values({ policy: name, target_kind: kind, target, created_at: now() })
          .onConflict((oc) => oc.doNothing())
          .execute();
      } else {
        const res = await db
          .deleteFrom('policy_attachments')
          .where('policy', '=', name)
          .where('target_kind', '=', kind)
          .where('target', '=', target)
          .executeTakeFirst();
        if (Number(res.numDeletedRows) === 0)
          throw new BulwarkError('not_found', `policy ${name} is not attached to ${kind} ${target}`);
      }
      await events.emit({
        type: attach ? 'policy.attached' : 'policy.detached',
        actor,
        subject: `policy:${name}`,
        data: { kind, target },
      });
    },

    async listZones() {
      return (await current()).zones;
    },
    async listConduits() {
      return (await current()).conduits;
    },

    async putZone(input: unknown, actor: string): Promise<Zone> {
      const parsed = zoneSchema.safeParse(input);
      if (!parsed.success)
        throw new BulwarkError(
          'validation_failed',
          `invalid zone: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'zone'}: ${i.message}`).join('; ')}`,
        );
      const zone = parsed.data;
      await db
        .insertInto('zones')
        .values({ name: zone.name, definition: JSON.stringify(zone), updated_at: now() })
        .onConflict((oc) =>
          oc.column('name').doUpdateSet({ definition: JSON.stringify(zone), updated_at: now() }),
        )
        .execute();
      await events.emit({
        type: 'zone.updated',
        actor,
        subject: `zone:${zone.name}`,
        data: { securityLevel: zone.securityLevel },
      });
      return zone;
    },

    async putConduit(input: unknown, actor: string): Promise<Conduit> {
      const parsed = conduitSchema.safeParse(input);
      if (!parsed.success)
        throw new BulwarkError(
          'validation_failed',
          `invalid conduit: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'conduit'}: ${i.message}`).join('; ')}`,
        );
      const conduit = parsed.data;
      const zones = new Set((await current()).zones.map((z) => z.name));
      for (const end of [conduit.from, conduit.to])
        if (!zones.has(end))
          throw new BulwarkError('validation_failed', `conduit ${conduit.name}: zone ${end} does not exist`);
      await db
        .insertInto('conduits')
        .values({ name: conduit.name, definition: JSON.stringify(conduit), updated_at: now() })
        .onConflict((oc) =>
          oc.column('name').doUpdateSet({ definition: JSON.stringify(conduit), updated_at: now() }),
        )
        .execute();
      await events.emit({
        type: 'conduit.updated',
        actor,
        subject: `conduit:${conduit.name}`,
        data: { from: conduit.from, to: conduit.to, topics: conduit.topics },
      });
      return conduit;
    },

    async deleteSegment(kind: 'zone' | 'conduit', name: string, actor: string) {
      if (kind === 'zone' && (await current()).conduits.some((c) => c.from === name || c.to === name)) {
        throw new BulwarkError('conflict', `zone ${name} is joined by conduits: delete them first`);
      }
      const res = await db
        .deleteFrom(kind === 'zone' ? 'zones' : 'conduits')
        .where('name', '=', name)
        .executeTakeFirst();
      if (Number(res.numDeletedRows) === 0)
        throw new BulwarkError('not_found', `${kind} ${name} does not exist`);
      await events.emit({
        type: kind === 'zone' ? 'zone.deleted' : 'conduit.deleted',
        actor,
        subject: `${kind}:${name}`,
        data: {},
      });
    },

    async exportNftables(options: NftablesOptions = {}): Promise<string> {
      const snap = await current();
      return exportNftables({ zones: snap.zones, conduits: snap.conduits }, options);
    },

    /** Quarantine: the device keeps only `devices/{id}/quarantine/#` and its command topic, at once. */
    async setQuarantine(deviceId: string, quarantined: boolean, actor: string, reason?: string) {
      const row = await deviceRow(deviceId);
      if (row.status === 'revoked') throw new BulwarkError('device_revoked', `device ${deviceId} is revoked`);
      const isQuarantined = row.quarantined_at !== null && row.quarantined_at !== undefined;
      if (isQuarantined === quarantined) return;
      await db
        .updateTable('devices')
        .set({ quarantined_at: quarantined ? now() : null, updated_at: now() })
        .where('id', '=', deviceId)
        .execute();
      if (quarantined)
        await events.emit({
          type: 'device.quarantined',
          actor,
          subject: `device:${deviceId}`,
          data: reason ? { reason } : {},
        });
      else await events.emit({ type: 'device.released', actor, subject: `device:${deviceId}`, data: {} });
    },

    /** Explain a decision: allow or deny, and the statement (and policy) that decided. */
    async simulate(input: {
      deviceId: string;
      action: 'connect' | 'publish' | 'subscribe' | 'receive';
      topic?: string;
      sourceAddress?: string;
      /** Client-certificate subject fields to simulate (CN defaults to the device id). */
      certSubject?: Readonly<Record<string, string>>;
    }) {
      const access = await accessFor({
        deviceId: input.deviceId,
        remoteAddress: input.sourceAddress ?? null,
        certSubject: input.certSubject,
      });
      let decision: Decision;
      if (input.action === 'connect') decision = access.connect();
      else {
        if (!input.topic)
          throw new BulwarkError('validation_failed', `a topic is needed to simulate ${input.action}`);
        decision =
          input.action === 'publish'
            ? access.publish(input.topic)
            : input.action === 'subscribe'
              ? access.subscribe(input.topic)
              : access.receiveDecision(input.topic);
      }
      return {
        ...decision,
        deviceId: input.deviceId,
        action: input.action,
        topic: input.topic ?? null,
        zone: access.zone,
        // For a deny without a deciding statement: what applied, and what was dropped for this context and why.
        explain: access.describe(),
      };
    },

    /** What a device can do now: the statements that apply after variables and conditions, and its zone. */
    async describeAccess(deviceId: string) {
      const row = await deviceRow(deviceId);
      const access = await accessFor({ deviceId, remoteAddress: null });
      return {
        deviceId,
        zone: access.zone,
        quarantined: row.quarantined_at !== null && row.quarantined_at !== undefined,
        ...access.describe(),
      };
    },
  };
}

export type AccessService = ReturnType<typeof createAccessService>;
