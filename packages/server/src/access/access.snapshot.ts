import {
  conduitSchema,
  zoneOf,
  zoneSchema,
  type AttachedPolicy,
  type Conduit,
  type DeviceFacts,
  type PolicyDocument,
  type Zone,
} from '../policy/index.ts';
import type { Db } from '../store/index.ts';

/** Where a policy is attached: devices (all, a group, a zone, one device) or one app (by name). */
export const attachmentKinds = ['all', 'group', 'zone', 'device', 'app'] as const;
export type AttachmentKind = (typeof attachmentKinds)[number];

/** What compiling a device's access needs, read once and kept until an access event changes it. */
export interface Snapshot {
  policies: Map<string, AttachedPolicy>;
  attachments: { policy: string; kind: AttachmentKind; target: string }[];
  zones: Zone[];
  conduits: Conduit[];
  deviceZones: Map<string, string | null>;
  /** Each device's group, for statements with `targets` (alongside its zone above). */
  deviceGroups: Map<string, string | null>;
}

/** Group and zone of a device of the snapshot (for statements with `targets`); undefined when unknown. */
export function deviceFactsOf(snap: Snapshot): (id: string) => DeviceFacts | undefined {
  return (id) =>
    snap.deviceZones.has(id)
      ? { group: snap.deviceGroups.get(id) ?? null, zone: snap.deviceZones.get(id) ?? null }
      : undefined;
}

const attributesOf = (text: string) => JSON.parse(text) as Record<string, string>;

export async function loadSnapshot(db: Db): Promise<Snapshot> {
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
        zoneOf({ group: d.group_name, attributes: attributesOf(d.attributes) }, zoneList),
      ]),
    ),
    deviceGroups: new Map(devices.map((d) => [d.id, d.group_name])),
  };
}

/** The snapshot, loaded on first use; dropped on a change that may alter it (see `access.service.ts`). */
export function createSnapshotCache(db: Db) {
  let snapshot: Promise<Snapshot> | undefined;
  return {
    current(): Promise<Snapshot> {
      return (snapshot ??= loadSnapshot(db).catch((err: unknown) => {
        snapshot = undefined;
        throw err;
      }));
    },
    invalidate(): void {
      snapshot = undefined;
    },
    /** A device added or changed: only its own zone and group are read again (if a snapshot is loaded at all). */
    refreshDevice(id: string): void {
      if (!snapshot) return;
      snapshot = snapshot.then(async (snap) => {
        const row = await db
          .selectFrom('devices')
          .select(['group_name', 'attributes'])
          .where('id', '=', id)
          .executeTakeFirst();
        if (row) {
          snap.deviceZones.set(
            id,
            zoneOf({ group: row.group_name, attributes: attributesOf(row.attributes) }, snap.zones),
          );
          snap.deviceGroups.set(id, row.group_name);
        }
        return snap;
      });
      snapshot.catch(() => (snapshot = undefined));
    },
  };
}

export type SnapshotCache = ReturnType<typeof createSnapshotCache>;
