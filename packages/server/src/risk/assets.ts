import { BulwarkError, api } from '@bulwark/protocol';
import type { z } from 'zod';
import { subjectOf, type EventBus } from '../events/index.ts';
import type { Db, RiskAssetsTable } from '../store/index.ts';
import type { FirmwareReads } from './vulnerability.service.ts';

/**
 * Assets (ISO/SAE 21434 §15.3 asset identification; IEC 62443-3-2 ZCR 1 inventory): what the fleet is made of,
 * read live from the modules that own it — device models (the devices' `model` attribute), firmware (the
 * release names devices run or may run), zones and conduits, and the data categories privacy classifies — plus
 * manual assets (a historian, a maintenance laptop). Each has an owner and requirements for confidentiality,
 * integrity, availability and authenticity; those annotations are risk's own table, keyed by the asset id.
 */

export type Asset = z.infer<typeof api.riskRegister.asset>;
export type AssetKind = Asset['kind'];
export type Requirements = Asset['requirements'];
export type RequirementLevel = Requirements['confidentiality'];

export interface InventoryDevice {
  id: string;
  group: string | null;
  model: string | null;
  zone: string | null;
}

/** What risk reads from the other modules, through their doors (composed in platform.ts). */
export interface RiskInventory {
  /** Devices in service, with their group, `model` attribute and zone. */
  devices(): Promise<InventoryDevice[]>;
  zones(): Promise<{ name: string; securityLevel: number }[]>;
  conduits(): Promise<{ name: string; from: string; to: string }[]>;
  /** Data categories the data schemas classify (personal fields), with the schemas naming each. */
  dataCategories(): Promise<{ category: string; schemas: string[] }[]>;
  /** Release names and versions (any status but discarded drafts). */
  releases(): Promise<{ name: string; version: string }[]>;
}

export interface AssetDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  inventory: RiskInventory;
  firmware: Pick<FirmwareReads, 'fleet'>;
}

export const DEFAULT_REQUIREMENTS: Requirements = {
  confidentiality: 'medium',
  integrity: 'medium',
  availability: 'medium',
  authenticity: 'medium',
};

interface Derived {
  id: string;
  kind: AssetKind;
  name: string;
  devices: string[];
  detail: string;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** A snapshot of the inventory: the derived assets and, per asset id, the devices it covers. */
export interface InventorySnapshot {
  derived: Map<string, Derived>;
  devices: InventoryDevice[];
  /** Devices running each release name, with the version. */
  deployments: { deviceId: string; release: { id: string; name: string; version: string } }[];
}

export async function inventorySnapshot(deps: Omit<AssetDeps, 'db' | 'events' | 'now'>) {
  const [devices, zones, conduits, categories, releases, deployments] = await Promise.all([
    deps.inventory.devices(),
    deps.inventory.zones(),
    deps.inventory.conduits(),
    deps.inventory.dataCategories(),
    deps.inventory.releases(),
    deps.firmware.fleet.deployments(),
  ]);
  const derived = new Map<string, Derived>();
  const add = (d: Derived) => derived.set(d.id, d);
  const byModel = new Map<string, string[]>();
  for (const d of devices) if (d.model) byModel.set(d.model, [...(byModel.get(d.model) ?? []), d.id]);
  for (const [model, ids] of byModel)
    add({
      id: `model:${model}`,
      kind: 'model',
      name: model,
      devices: ids,
      detail: plural(ids.length, 'device'),
    });
  const versions = new Map<string, Set<string>>();
  for (const r of releases) versions.set(r.name, (versions.get(r.name) ?? new Set()).add(r.version));
  const running = new Map<string, string[]>();
  for (const d of deployments)
    running.set(d.release.name, [...(running.get(d.release.name) ?? []), d.deviceId]);
  for (const [name, vs] of versions) {
    const ids = running.get(name) ?? [];
    add({
      id: `firmware:${name}`,
      kind: 'firmware',
      name,
      devices: ids,
      detail: `${plural(vs.size, 'version')}; ${plural(ids.length, 'device')} run it`,
    });
  }
  const byZone = new Map<string, string[]>();
  for (const d of devices) if (d.zone) byZone.set(d.zone, [...(byZone.get(d.zone) ?? []), d.id]);
  for (const z of zones) {
    const ids = byZone.get(z.name) ?? [];
    add({
      id: `zone:${z.name}`,
      kind: 'zone',
      name: z.name,
      devices: ids,
      detail: `zone security level ${z.securityLevel}; ${plural(ids.length, 'device')}`,
    });
  }
  for (const c of conduits) {
    const ids = [...(byZone.get(c.from) ?? []), ...(byZone.get(c.to) ?? [])];
    add({
      id: `conduit:${c.name}`,
      kind: 'conduit',
      name: c.name,
      devices: ids,
      detail: `${c.from} → ${c.to}`,
    });
  }
  for (const c of categories)
    add({
      id: `data:${c.category}`,
      kind: 'data',
      name: c.category,
      devices: [],
      detail: `classified in ${c.schemas.join(', ')}`,
    });
  return { derived, devices, deployments } satisfies InventorySnapshot;
}

const parseKind = (id: string): { kind: AssetKind; name: string } => {
  const colon = id.indexOf(':');
  return { kind: id.slice(0, colon) as AssetKind, name: id.slice(colon + 1) };
};

function view(v: {
  id: string;
  derived: Derived | undefined;
  row: RiskAssetsTable | undefined;
  devicesOf: (groups: string[]) => string[];
}): Asset {
  const { id, derived, row, devicesOf } = v;
  const { kind, name } = parseKind(id);
  const groups = row ? (JSON.parse(row.groups) as string[]) : [];
  const covered = derived?.devices ?? (kind === 'manual' ? devicesOf(groups) : []);
  return {
    id,
    kind,
    name: row?.name ?? derived?.name ?? name,
    owner: row?.owner ?? null,
    description: row?.description ?? null,
    requirements: row ? (JSON.parse(row.requirements) as Requirements) : { ...DEFAULT_REQUIREMENTS },
    groups,
    devices: new Set(covered).size,
    detail:
      derived?.detail ??
      (kind === 'manual'
        ? groups.length
          ? `groups ${groups.join(', ')}; ${plural(covered.length, 'device')}`
          : 'no device groups'
        : 'no longer in the inventory'),
    present: kind === 'manual' || derived !== undefined,
    updatedAt: row ? Number(row.updated_at) : null,
  };
}

/** Devices of a manual asset: those of its groups. */
export const devicesOfGroups = (snapshot: InventorySnapshot) => (groups: string[]) =>
  snapshot.devices.filter((d) => d.group !== null && groups.includes(d.group)).map((d) => d.id);

export async function listAssets(
  deps: AssetDeps,
  filter: { kind?: AssetKind | undefined } = {},
): Promise<Asset[]> {
  const [snapshot, rows] = await Promise.all([
    inventorySnapshot(deps),
    deps.db.selectFrom('risk_assets').selectAll().execute(),
  ]);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const ids = new Set([...snapshot.derived.keys(), ...byId.keys()]);
  return [...ids]
    .map((id) =>
      view({
        id,
        derived: snapshot.derived.get(id),
        row: byId.get(id),
        devicesOf: devicesOfGroups(snapshot),
      }),
    )
    .filter((a) => filter.kind === undefined || a.kind === filter.kind)
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}

/** The devices each asset id covers now (unknown ids: none). */
export async function assetScopes(deps: AssetDeps, snapshot: InventorySnapshot) {
  const rows = await deps.db
    .selectFrom('risk_assets')
    .select(['id', 'groups'])
    .where('kind', '=', 'manual')
    .execute();
  const manual = new Map(
    rows.map((r) => [r.id, devicesOfGroups(snapshot)(JSON.parse(r.groups) as string[])]),
  );
  return (id: string): string[] => snapshot.derived.get(id)?.devices ?? manual.get(id) ?? [];
}

/** Every asset id known now: derived ones and annotated or manual ones. */
export async function assetExists(
  deps: AssetDeps,
  snapshot: InventorySnapshot,
  id: string,
): Promise<boolean> {
  if (snapshot.derived.has(id)) return true;
  const row = await deps.db.selectFrom('risk_assets').select('id').where('id', '=', id).executeTakeFirst();
  return row !== undefined;
}

export type AssetChange = z.infer<typeof api.riskRegister.putAsset.body>;

/** Sets an asset's annotations; an id of kind `manual` creates the asset. Inventory ids must exist. */
export async function putAsset(
  deps: AssetDeps,
  input: { id: string; change: AssetChange; actor: string },
): Promise<Asset> {
  const { id, change, actor } = input;
  const parsedId = api.riskRegister.putAsset.params.safeParse({ id });
  if (!parsedId.success)
    throw new BulwarkError('validation_failed', `asset id: ${parsedId.error.issues[0]?.message}`);
  const body = api.riskRegister.putAsset.body.safeParse(change);
  if (!body.success) {
    const issue = body.error.issues[0];
    throw new BulwarkError('validation_failed', `${issue?.path.join('.') || 'asset'}: ${issue?.message}`);
  }
  const c = body.data;
  const { kind, name } = parseKind(id);
  const snapshot = await inventorySnapshot(deps);
  const derived = snapshot.derived.get(id);
  if (kind !== 'manual' && !derived)
    throw new BulwarkError(
      'not_found',
      `no ${kind} ${name} in the inventory (manual assets are manual:<name>)`,
    );
  if (kind !== 'manual' && c.groups !== undefined)
    throw new BulwarkError(
      'validation_failed',
      `groups: only a manual asset names device groups (${id} is derived)`,
    );
  await deps.events.atomically(async (tx, emit) => {
    const row = await tx.selectFrom('risk_assets').selectAll().where('id', '=', id).executeTakeFirst();
    const requirements = {
      ...(row ? (JSON.parse(row.requirements) as Requirements) : DEFAULT_REQUIREMENTS),
      ...c.requirements,
    };
    const next: RiskAssetsTable = {
      id,
      kind,
      name: derived?.name ?? name,
      owner: c.owner === undefined ? (row?.owner ?? null) : c.owner,
      description: c.description === undefined ? (row?.description ?? null) : c.description,
      requirements: JSON.stringify(requirements),
      groups: c.groups === undefined ? (row?.groups ?? '[]') : JSON.stringify([...new Set(c.groups)].sort()),
      updated_at: deps.now(),
      updated_by: actor,
    };
    if (row) await tx.updateTable('risk_assets').set(next).where('id', '=', id).execute();
    else await tx.insertInto('risk_assets').values(next).execute();
    emit({
      type: 'risk.asset_updated',
      actor,
      subject: subjectOf.asset(id),
      data: { kind, created: !row, changes: Object.keys(c).sort() },
    });
  });
  const row = await deps.db.selectFrom('risk_assets').selectAll().where('id', '=', id).executeTakeFirst();
  return view({ id, derived, row, devicesOf: devicesOfGroups(snapshot) });
}

/** Deletes a manual asset, or an inventory asset's annotations (it reverts to the defaults). */
export async function deleteAsset(deps: AssetDeps, id: string, actor: string): Promise<void> {
  await deps.events.atomically(async (tx, emit) => {
    const row = await tx
      .selectFrom('risk_assets')
      .select(['id', 'kind'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new BulwarkError('not_found', `no annotated or manual asset ${id}`);
    await tx.deleteFrom('risk_assets').where('id', '=', id).execute();
    emit({ type: 'risk.asset_deleted', actor, subject: subjectOf.asset(id), data: { kind: row.kind } });
  });
}

/** An asset's requirements (defaults when it has none). */
export async function requirementsOf(deps: Pick<AssetDeps, 'db'>): Promise<Map<string, Requirements>> {
  const rows = await deps.db.selectFrom('risk_assets').select(['id', 'requirements']).execute();
  return new Map(rows.map((r) => [r.id, JSON.parse(r.requirements) as Requirements]));
}
