import { BulwarkError, api, type Baseline } from '@bulwark/protocol';
import type { z } from 'zod';
import { zoneTarget, type MeasuredLevel } from '../compliance/index.ts';
import { subjectOf, type EventBus, type EventType, type TxEmit } from '../events/index.ts';
import type { RiskRegisterTable, Tx } from '../store/index.ts';
import {
  assetExists,
  assetScopes,
  DEFAULT_REQUIREMENTS,
  deleteAsset,
  inventorySnapshot,
  listAssets,
  putAsset,
  requirementsOf,
  type AssetChange,
  type AssetDeps,
  type AssetKind,
  type InventorySnapshot,
} from './assets.ts';
import { liveValue, zoneRiskImpact, type ExposedAdvisory, type LiveFacts } from './register.live.ts';
import {
  addHistory,
  allRows,
  byRisk,
  historyOf,
  inputsOf,
  nextRiskId,
  rowById,
  rowByKey,
  toRisk,
  type RegisterRisk,
  type RiskStatus,
} from './register.store.ts';
import { riskValue, type Feasibility } from './tara-method.ts';
import { evaluateTara, type TaraResult } from './tara.ts';
import type { VulnerabilityService } from './vulnerability.service.ts';

/**
 * The risk register: risks from the TARAs' threat scenarios and from zones below their target security level,
 * each with an owner, treatment, due date, status and history. Live facts of the fleet move a risk's value
 * (register.live.ts); a rise of the baseline's threshold or more above the assessed value raises `risk.raised`
 * (an alert), falling back `risk.lowered`; a risk not re-assessed within the baseline's interval raises
 * `risk.review_due`. Every change commits with its event and a history entry.
 */

export interface OpenAlert {
  id: string;
  deviceId: string | null;
  severity: string;
  title: string;
  detector: string;
}

export interface RegisterDeps extends AssetDeps {
  events: Pick<EventBus, 'atomically' | 'emit' | 'on'>;
  /** The baseline in force (risk.reassessEvery, risk.alertOnIncrease, zone targets). */
  baseline(): Promise<Baseline>;
  /** The compliance checks a treatment may cite. */
  checkExists(id: string): boolean;
  /** The latest compliance run's measured security level and check statuses. */
  measuredLevel(): Promise<MeasuredLevel | null>;
  /** Alerts not resolved (from monitor). */
  openAlerts(): Promise<OpenAlert[]>;
  /** Exposure of deployed devices (with KEV and EPSS from the feeds) and each release's advisories. */
  vulnerabilities: Pick<VulnerabilityService, 'exposure' | 'forRelease'>;
  onError?: ((err: unknown) => void) | undefined;
}

export type ZoneLevel = z.infer<typeof api.riskRegister.zoneLevel>;

/** The register's compliance facts (the `risk` source): saved TARAs and every register risk. */
export interface RiskComplianceFacts {
  taras: { id: string; version: number; savedAt: number }[];
  risks: {
    id: string;
    title: string;
    status: RiskStatus;
    owner: string | null;
    /** The end of the due date's day (UTC), or null. */
    dueAt: number | null;
    risk: number;
    baseRisk: number;
    raised: boolean;
    reviewDueAt: number;
  }[];
}

/** The end (23:59:59.999 UTC) of a YYYY-MM-DD date: the date named is the last day it still holds. */
const endOfDay = (date: string) => Date.parse(`${date}T23:59:59.999Z`);

async function complianceFacts(deps: Pick<RegisterDeps, 'db'>): Promise<RiskComplianceFacts> {
  const [taras, risks] = await Promise.all([
    deps.db.selectFrom('risk_taras').select(['id', 'version', 'saved_at']).orderBy('id').execute(),
    listRegister(deps),
  ]);
  return {
    taras: taras.map((t) => ({ id: t.id, version: Number(t.version), savedAt: Number(t.saved_at) })),
    risks: risks.map((r) => ({
      id: r.id,
      title: r.title,
      status: r.status,
      owner: r.owner,
      dueAt: r.due === null ? null : endOfDay(r.due),
      risk: r.risk,
      baseRisk: r.baseRisk,
      raised: r.raised,
      reviewDueAt: r.reviewDueAt,
    })),
  };
}
export type TaraSummary = z.infer<typeof api.riskRegister.taraSummary>;
export type RiskChange = z.infer<typeof api.riskRegister.updateRisk.body>;

/** Events within this window are one re-evaluation (an alert storm re-reads the inventory once a second at most). */
const REASSESS_DEBOUNCE_MS = 1000;

/** Detectors whose alerts are the register's own: they never move a risk. */
const OWN_DETECTORS = new Set(['risk_raised', 'risk_review_due']);
const ALERT_SEVERITIES = new Set(['medium', 'high', 'critical']);

/** Events after which the live facts may differ (the register re-evaluates, coalesced). */
export const REASSESS_ON: readonly EventType[] = [
  'vulnerability.advisories_imported',
  'risk.feed_imported',
  'firmware.update_succeeded',
  'firmware.update_failed',
  'rollout.completed',
  'compliance.run_completed',
  'compliance.baseline_applied',
  'alert.raised',
  'alert.resolved',
  'zone.updated',
  'zone.deleted',
  'device.added',
  'device.updated',
  'device.revoked',
  'risk.asset_updated',
  'risk.asset_deleted',
];

/** The live facts the register reads, gathered once per evaluation. */
async function gatherFacts(deps: RegisterDeps, snapshot: InventorySnapshot, baseline: Baseline) {
  const [scope, requirements, exposure, measured, alerts] = await Promise.all([
    assetScopes(deps, snapshot),
    requirementsOf(deps),
    deps.vulnerabilities.exposure(),
    deps.measuredLevel(),
    deps.openAlerts(),
  ]);
  // The vectors of the advisories affecting deployed releases (a few releases, each read once).
  const vectors = new Map<string, string | null>();
  const releases = new Set(exposure.flatMap((d) => (d.release ? [d.release.id] : [])));
  for (const id of releases)
    for (const v of await deps.vulnerabilities.forRelease(id)) vectors.set(v.advisoryId, v.cvssVector);
  const byDevice = new Map<string, ExposedAdvisory[]>();
  for (const d of exposure)
    byDevice.set(
      d.deviceId,
      d.advisories.map((a) => ({
        advisory: a.id,
        severity: a.severity,
        score: a.score,
        vector: vectors.get(a.id) ?? null,
        knownExploited: a.knownExploited,
        epss: a.epss,
        release: d.release ? `${d.release.name}@${d.release.version}` : 'unknown release',
      })),
    );
  const zones = await zoneLevels(deps, { snapshot, baseline, measured });
  const gaps = new Map(zones.map((z) => [z.zone, z]));
  const alertsByDevice = new Map<string, OpenAlert[]>();
  for (const a of alerts) {
    if (a.deviceId === null || OWN_DETECTORS.has(a.detector) || !ALERT_SEVERITIES.has(a.severity)) continue;
    alertsByDevice.set(a.deviceId, [...(alertsByDevice.get(a.deviceId) ?? []), a]);
  }
  const zoneOf = new Map(snapshot.devices.map((d) => [d.id, d.zone]));
  const facts: LiveFacts = {
    scope,
    zoneOf: (id) => zoneOf.get(id) ?? null,
    requirements: (id) => requirements.get(id) ?? DEFAULT_REQUIREMENTS,
    advisoriesOf: (id) => byDevice.get(id) ?? [],
    checkStatuses: measured?.statuses ?? null,
    alertsOf: (id) => alertsByDevice.get(id) ?? [],
    zoneGap: (zone) => {
      const z = gaps.get(zone);
      return z && z.achieved !== null && z.gap !== null
        ? { target: z.target, achieved: z.achieved, gap: z.gap, blocking: z.blocking }
        : undefined;
    },
  };
  return { facts, zones };
}

/** IEC 62443-3-2: per zone, SL-T from the baseline and SL-A measured by the latest compliance run. */
async function zoneLevels(
  deps: RegisterDeps,
  at: { snapshot: InventorySnapshot; baseline: Baseline; measured: MeasuredLevel | null },
): Promise<ZoneLevel[]> {
  const { snapshot, baseline, measured } = at;
  const zones = await deps.inventory.zones();
  return zones
    .map((z) => {
      const target = zoneTarget(baseline, z);
      const achieved = measured?.achieved ?? null;
      const gap = achieved === null ? null : Math.max(0, target - achieved);
      return {
        zone: z.name,
        target,
        achieved,
        gap,
        blocking: measured && gap ? measured.blocking[target as 1 | 2 | 3 | 4] : [],
        devices: snapshot.derived.get(`zone:${z.name}`)?.devices.length ?? 0,
        measuredAt: measured?.measuredAt ?? null,
      };
    })
    .sort((a, b) => a.zone.localeCompare(b.zone));
}

interface Counts {
  examined: number;
  changed: number;
  raised: number;
  lowered: number;
}

/** Applies a risk's live value: row, history and events in one transaction. */
async function applyLive(
  deps: RegisterDeps,
  ctx: { row: RiskRegisterTable; facts: LiveFacts; threshold: number; actor: string; counts: Counts },
): Promise<void> {
  const { row, facts } = ctx;
  const before = toRisk(row);
  const live = liveValue(inputsOf(before), facts);
  const raised = live.risk - before.baseRisk >= ctx.threshold;
  const factorsText = JSON.stringify(live.factors);
  if (
    live.risk === before.risk &&
    live.feasibility === before.feasibility &&
    factorsText === row.factors &&
    raised === before.raised
  )
    return;
  const at = deps.now();
  const factorNames = live.factors.map((f) => `${f.kind} ${f.ref}`);
  await deps.events.atomically(async (tx, emit) => {
    await tx
      .updateTable('risk_register')
      .set({
        feasibility: live.feasibility,
        risk: live.risk,
        factors: factorsText,
        raised: raised ? 1 : 0,
        updated_at: at,
      })
      .where('id', '=', row.id)
      .execute();
    const subject = subjectOf.risk(row.id);
    if (live.risk !== before.risk) {
      ctx.counts.changed += 1;
      await addHistory(tx, {
        riskId: row.id,
        at,
        actor: ctx.actor,
        change: live.risk > before.risk ? 'raised' : 'lowered',
        from: before.risk,
        to: live.risk,
        detail: { feasibility: live.feasibility, factors: live.factors },
      });
      emit({
        type: 'risk.changed',
        actor: ctx.actor,
        subject,
        data: { from: before.risk, to: live.risk, base: before.baseRisk, factors: factorNames },
      });
    }
    const data = { title: before.title, from: before.risk, to: live.risk, base: before.baseRisk };
    if (raised && (!before.raised || live.risk > before.risk)) {
      ctx.counts.raised += 1;
      emit({ type: 'risk.raised', actor: ctx.actor, subject, data: { ...data, factors: factorNames } });
    } else if (!raised && before.raised) {
      ctx.counts.lowered += 1;
      emit({ type: 'risk.lowered', actor: ctx.actor, subject, data });
    }
  });
}

/** Creates, reopens or closes the zone-gap risks (IEC 62443-3-2: a zone below its target is a risk). */
async function syncZoneRisks(
  deps: RegisterDeps,
  input: { zones: ZoneLevel[]; baseline: Baseline; actor: string },
) {
  const { zones, baseline, actor } = input;
  // A zone deleted from the segmentation takes its gap risk with it.
  const present = new Set(zones.map((z) => `zone:${z.zone}`));
  const orphans = await deps.db
    .selectFrom('risk_register')
    .selectAll()
    .where('source_key', 'like', 'zone:%')
    .where('status', '!=', 'closed')
    .execute();
  for (const row of orphans.filter((r) => !present.has(r.source_key)))
    await setStatus(deps, { row, status: 'closed', actor, note: `${row.source_key} no longer exists` });
  for (const z of zones) {
    const key = `zone:${z.zone}`;
    const row = await rowByKey(deps.db, key);
    const gap = z.gap ?? 0;
    if (gap > 0 && !row) {
      const impact = zoneRiskImpact(z.target);
      await createRisk(deps, {
        key,
        title: `Zone ${z.zone} is below its target security level (SL-T ${z.target})`,
        source: { kind: 'zone', zone: z.zone },
        assets: [`zone:${z.zone}`],
        owner: null,
        treatment: 'reduce',
        controls: [],
        checks: z.blocking,
        impact,
        baseFeasibility: 'very low',
        reassessEvery: baseline.risk.reassessEvery,
        actor,
      });
    } else if (row && gap > 0 && row.status === 'closed') {
      await setStatus(deps, {
        row,
        status: 'open',
        actor,
        note: `zone ${z.zone} fell below its target again`,
      });
    } else if (row && gap === 0 && z.achieved !== null && row.status !== 'closed') {
      await setStatus(deps, {
        row,
        status: 'closed',
        actor,
        note: `zone ${z.zone} achieves its target (SL ${z.achieved})`,
      });
    }
    if (row && gap > 0 && JSON.stringify(z.blocking) !== row.checks)
      await deps.db
        .updateTable('risk_register')
        .set({ checks: JSON.stringify(z.blocking) })
        .where('id', '=', row.id)
        .execute();
  }
}

interface NewRisk {
  key: string;
  title: string;
  source: RegisterRisk['source'];
  assets: string[];
  owner: string | null;
  treatment: RegisterRisk['treatment'];
  controls: string[];
  checks: string[];
  impact: RegisterRisk['impact'];
  baseFeasibility: Feasibility;
  reassessEvery: number;
  actor: string;
}

async function insertRisk(tx: Tx, emit: TxEmit, r: NewRisk & { at: number }): Promise<string> {
  const { at } = r;
  const id = await nextRiskId(tx);
  const base = riskValue(r.impact, r.baseFeasibility);
  await tx
    .insertInto('risk_register')
    .values({
      id,
      source_key: r.key,
      title: r.title,
      source: JSON.stringify(r.source),
      assets: JSON.stringify(r.assets),
      owner: r.owner,
      treatment: r.treatment,
      controls: JSON.stringify(r.controls),
      checks: JSON.stringify(r.checks),
      due: null,
      status: 'open',
      impact: r.impact,
      base_feasibility: r.baseFeasibility,
      base_risk: base,
      feasibility: r.baseFeasibility,
      risk: base,
      raised: 0,
      factors: '[]',
      assessed_at: at,
      review_due_at: at + r.reassessEvery,
      reminded_at: null,
      created_at: at,
      updated_at: at,
    })
    .execute();
  await addHistory(tx, {
    riskId: id,
    at,
    actor: r.actor,
    change: 'created',
    from: null,
    to: base,
    detail: { source: r.key },
  });
  emit({
    type: 'risk.created',
    actor: r.actor,
    subject: subjectOf.risk(id),
    data: { title: r.title, source: r.key, risk: base },
  });
  return id;
}

async function createRisk(deps: RegisterDeps, r: NewRisk): Promise<string> {
  return deps.events.atomically((tx, emit) => insertRisk(tx, emit, { ...r, at: deps.now() }));
}

/** A status change: closing a raised risk lowers it (its alert resolves). */
async function setStatus(
  deps: RegisterDeps,
  c: { row: RiskRegisterTable; status: RiskStatus; actor: string; note: string },
) {
  await deps.events.atomically(async (tx, emit) => {
    await statusChange(tx, emit, { ...c, at: deps.now() });
  });
}

async function statusChange(
  tx: Tx,
  emit: TxEmit,
  c: { row: RiskRegisterTable; status: RiskStatus; actor: string; note: string; at: number },
) {
  const { row, status, actor, note, at } = c;
  const closing = status === 'closed';
  await tx
    .updateTable('risk_register')
    .set({
      status,
      updated_at: at,
      ...(closing
        ? { raised: 0, factors: '[]', feasibility: row.base_feasibility, risk: row.base_risk }
        : {}),
    })
    .where('id', '=', row.id)
    .execute();
  await addHistory(tx, {
    riskId: row.id,
    at,
    actor,
    change: closing ? 'closed' : row.status === 'closed' ? 'reopened' : 'updated',
    from: null,
    to: null,
    detail: { status, note },
  });
  const subject = subjectOf.risk(row.id);
  emit({ type: 'risk.updated', actor, subject, data: { changes: ['status'], status, note } });
  if (closing && Number(row.raised) === 1)
    emit({
      type: 'risk.lowered',
      actor,
      subject,
      data: {
        title: row.title,
        from: Number(row.risk),
        to: Number(row.base_risk),
        base: Number(row.base_risk),
      },
    });
}

/** Reminders for risks past their re-assessment date (once per due date). */
async function remind(deps: RegisterDeps, rows: RiskRegisterTable[], actor: string): Promise<void> {
  const now = deps.now();
  for (const row of rows) {
    if (row.status === 'closed' || Number(row.review_due_at) > now) continue;
    if (row.reminded_at !== null && Number(row.reminded_at) >= Number(row.review_due_at)) continue;
    await deps.events.atomically(async (tx, emit) => {
      await tx.updateTable('risk_register').set({ reminded_at: now }).where('id', '=', row.id).execute();
      emit({
        type: 'risk.review_due',
        actor,
        subject: subjectOf.risk(row.id),
        data: { title: row.title, reviewDueAt: Number(row.review_due_at), owner: row.owner },
      });
    });
  }
}

/** Re-evaluates every risk that is not closed from the live fleet; syncs zone risks; sends reminders. */
async function reassess(deps: RegisterDeps, actor: string): Promise<Counts> {
  const baseline = await deps.baseline();
  const snapshot = await inventorySnapshot(deps);
  const { facts, zones } = await gatherFacts(deps, snapshot, baseline);
  await syncZoneRisks(deps, { zones, baseline, actor });
  const counts: Counts = { examined: 0, changed: 0, raised: 0, lowered: 0 };
  const rows = await allRows(deps.db);
  for (const row of rows) {
    if (row.status === 'closed') continue;
    counts.examined += 1;
    await applyLive(deps, { row, facts, threshold: baseline.risk.alertOnIncrease, actor, counts });
  }
  await remind(deps, await allRows(deps.db), actor);
  return counts;
}

function summary(row: {
  id: string;
  item: string;
  version: number;
  saved_at: number;
  saved_by: string;
  result: string;
}): TaraSummary {
  const result = JSON.parse(row.result) as TaraResult;
  return {
    id: row.id,
    item: row.item,
    version: Number(row.version),
    savedAt: Number(row.saved_at),
    savedBy: row.saved_by,
    threats: result.threatScenarios.length,
    risks: result.risks,
  };
}

/** Validates the TARA, checks its inventory references, stores it and moves its threat scenarios into the register. */
async function saveTara(deps: RegisterDeps, input: { id: string; document: unknown; actor: string }) {
  const { id, document, actor } = input;
  const idCheck = api.riskRegister.saveTara.params.safeParse({ id });
  if (!idCheck.success)
    throw new BulwarkError('validation_failed', `TARA id: ${idCheck.error.issues[0]?.message}`);
  const result = evaluateTara(document, (check) => deps.checkExists(check));
  const snapshot = await inventorySnapshot(deps);
  for (const [i, a] of result.assets.entries())
    if (a.ref !== null && !(await assetExists(deps, snapshot, a.ref)))
      throw new BulwarkError(
        'validation_failed',
        `assets.${i}.ref: ${a.ref} is not in the inventory (bulwark risk assets lists it; manual assets: bulwark risk asset set manual:<name>)`,
      );
  const baseline = await deps.baseline();
  const at = deps.now();
  const counts = { created: 0, updated: 0, closed: 0 };
  const saved = await deps.events.atomically(async (tx, emit) => {
    const previous = await tx
      .selectFrom('risk_taras')
      .select('version')
      .where('id', '=', id)
      .executeTakeFirst();
    const version = (previous ? Number(previous.version) : 0) + 1;
    const row = {
      id,
      item: result.item,
      version,
      document: JSON.stringify(document),
      result: JSON.stringify(result),
      saved_at: at,
      saved_by: actor,
    };
    if (previous) await tx.updateTable('risk_taras').set(row).where('id', '=', id).execute();
    else await tx.insertInto('risk_taras').values(row).execute();
    const keep = new Set<string>();
    for (const t of result.threatScenarios) {
      const key = `tara:${id}/${t.id}`;
      keep.add(key);
      const asset = result.assets.find((a) => a.id === t.asset);
      const fields = {
        title: t.title,
        assets: asset?.ref ? [asset.ref] : [],
        treatment: t.treatment.option as RegisterRisk['treatment'],
        controls: t.treatment.controls,
        checks: t.treatment.checks,
        impact: t.impact,
        baseFeasibility: t.feasibility,
      };
      const existing = await rowByKey(tx, key);
      if (!existing) {
        counts.created += 1;
        await insertRisk(tx, emit, {
          key,
          source: { kind: 'tara', tara: id, threat: t.id },
          owner: asset?.owner ?? null,
          reassessEvery: baseline.risk.reassessEvery,
          actor,
          at,
          ...fields,
        });
        continue;
      }
      counts.updated += 1;
      await tx
        .updateTable('risk_register')
        .set({
          title: fields.title,
          assets: JSON.stringify(fields.assets),
          treatment: fields.treatment,
          controls: JSON.stringify(fields.controls),
          checks: JSON.stringify(fields.checks),
          impact: fields.impact,
          base_feasibility: fields.baseFeasibility,
          base_risk: t.risk,
          assessed_at: at,
          review_due_at: at + baseline.risk.reassessEvery,
          updated_at: at,
          ...(existing.status === 'closed' ? { status: 'open' } : {}),
        })
        .where('id', '=', existing.id)
        .execute();
      const note = `TARA ${id} version ${version} saved`;
      await addHistory(tx, {
        riskId: existing.id,
        at,
        actor,
        change: 'assessed',
        from: Number(existing.base_risk),
        to: t.risk,
        detail: { note, impact: t.impact, feasibility: t.feasibility },
      });
      emit({
        type: 'risk.reviewed',
        actor,
        subject: subjectOf.risk(existing.id),
        data: { reviewDueAt: at + baseline.risk.reassessEvery, note },
      });
    }
    for (const row of await tx
      .selectFrom('risk_register')
      .selectAll()
      .where('source_key', 'like', `tara:${id}/%`)
      .execute()) {
      if (keep.has(row.source_key) || row.status === 'closed') continue;
      counts.closed += 1;
      await statusChange(tx, emit, {
        row,
        status: 'closed',
        actor,
        note: `no longer in TARA ${id} version ${version}`,
        at,
      });
    }
    emit({
      type: 'risk.tara_saved',
      actor,
      subject: subjectOf.tara(id),
      data: { item: result.item, version, threats: result.threatScenarios.length, ...counts },
    });
    return row;
  });
  return { tara: summary(saved), risks: counts };
}

async function getTara(deps: Pick<RegisterDeps, 'db'>, id: string) {
  const row = await deps.db.selectFrom('risk_taras').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new BulwarkError('not_found', `no TARA ${id}`);
  return {
    tara: summary(row),
    document: JSON.parse(row.document) as Record<string, unknown>,
    result: JSON.parse(row.result) as TaraResult,
  };
}

async function updateRisk(
  deps: RegisterDeps,
  input: { id: string; change: RiskChange; actor: string },
): Promise<RegisterRisk> {
  const { id, change, actor } = input;
  const parsed = api.riskRegister.updateRisk.body.safeParse(change);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BulwarkError('validation_failed', `${issue?.path.join('.') || 'change'}: ${issue?.message}`);
  }
  const c = parsed.data;
  await deps.events.atomically(async (tx, emit) => {
    const row = await rowById(tx, id);
    if (!row) throw new BulwarkError('not_found', `no risk ${id}`);
    const at = deps.now();
    const set: Partial<RiskRegisterTable> = {};
    const changes: string[] = [];
    if (c.owner !== undefined && c.owner !== row.owner) set.owner = c.owner;
    if (c.treatment !== undefined && c.treatment !== row.treatment) set.treatment = c.treatment;
    if (c.due !== undefined && c.due !== row.due) set.due = c.due;
    changes.push(...Object.keys(set));
    const statusChanged = c.status !== undefined && c.status !== row.status;
    if (changes.length === 0 && !statusChanged)
      throw new BulwarkError('conflict', `risk ${id} already has these values`);
    if (changes.length > 0) {
      await tx
        .updateTable('risk_register')
        .set({ ...set, updated_at: at })
        .where('id', '=', id)
        .execute();
      await addHistory(tx, {
        riskId: id,
        at,
        actor,
        change: 'updated',
        from: null,
        to: null,
        detail: {
          ...Object.fromEntries(changes.map((k) => [k, set[k as keyof typeof set]])),
          ...(c.note ? { note: c.note } : {}),
        },
      });
      emit({
        type: 'risk.updated',
        actor,
        subject: subjectOf.risk(id),
        data: { changes, status: row.status, ...(c.note ? { note: c.note } : {}) },
      });
    }
    if (statusChanged && c.status)
      await statusChange(tx, emit, {
        row,
        status: c.status,
        actor,
        note: c.note ?? `status ${c.status}`,
        at,
      });
  });
  const risk = await getRisk(deps, id);
  return risk.risk;
}

async function reviewRisk(
  deps: RegisterDeps,
  input: { id: string; note: string; actor: string },
): Promise<RegisterRisk> {
  const { id, note, actor } = input;
  const text = note.trim();
  if (!text) throw new BulwarkError('validation_failed', 'note: say what the re-assessment found');
  const baseline = await deps.baseline();
  await deps.events.atomically(async (tx, emit) => {
    const row = await rowById(tx, id);
    if (!row) throw new BulwarkError('not_found', `no risk ${id}`);
    const at = deps.now();
    const reviewDueAt = at + baseline.risk.reassessEvery;
    await tx
      .updateTable('risk_register')
      .set({ assessed_at: at, review_due_at: reviewDueAt, updated_at: at })
      .where('id', '=', id)
      .execute();
    await addHistory(tx, {
      riskId: id,
      at,
      actor,
      change: 'reviewed',
      from: null,
      to: null,
      detail: { note: text, reviewDueAt },
    });
    emit({ type: 'risk.reviewed', actor, subject: subjectOf.risk(id), data: { reviewDueAt, note: text } });
  });
  return (await getRisk(deps, id)).risk;
}

async function getRisk(deps: Pick<RegisterDeps, 'db'>, id: string) {
  const row = await rowById(deps.db, id);
  if (!row) throw new BulwarkError('not_found', `no risk ${id}`);
  return { risk: toRisk(row), history: await historyOf(deps.db, id) };
}

async function listRegister(
  deps: Pick<RegisterDeps, 'db'>,
  filter: { status?: RiskStatus | undefined; minRisk?: number | undefined } = {},
): Promise<RegisterRisk[]> {
  return (await allRows(deps.db))
    .map(toRisk)
    .filter(
      (r) =>
        (filter.status === undefined || r.status === filter.status) &&
        (filter.minRisk === undefined || r.risk >= filter.minRisk),
    )
    .sort(byRisk);
}

/** Runs `reassess` one at a time; a request while one runs makes one more run after it (coalesced). */
function serialized(run: () => Promise<Counts>, onError: (err: unknown) => void) {
  let current: Promise<Counts> | null = null;
  let again = false;
  const next = (): Promise<Counts> => {
    current = run().finally(() => {
      current = null;
      if (again) {
        again = false;
        void next().catch(onError);
      }
    });
    return current;
  };
  return {
    now: (): Promise<Counts> => (current ? current.then(() => next()) : next()),
    soon(): void {
      if (current) again = true;
      else void next().catch(onError);
    },
    idle: async () => {
      while (current) await current.catch(() => undefined);
    },
  };
}

export function createRegister(deps: RegisterDeps) {
  let timer: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  const onError = deps.onError ?? (() => undefined);
  const runner = serialized(() => reassess(deps, 'system'), onError);
  const soon = () => {
    if (debounce) return;
    debounce = setTimeout(() => {
      debounce = undefined;
      runner.soon();
    }, REASSESS_DEBOUNCE_MS);
    debounce.unref();
  };
  return {
    assets: (filter: { kind?: AssetKind | undefined } = {}) => listAssets(deps, filter),
    putAsset: (id: string, change: AssetChange, actor: string) => putAsset(deps, { id, change, actor }),
    deleteAsset: (id: string, actor: string) => deleteAsset(deps, id, actor),
    saveTara: async (id: string, document: unknown, actor: string) => {
      const saved = await saveTara(deps, { id, document, actor });
      await runner.now();
      return saved;
    },
    taras: async (): Promise<TaraSummary[]> =>
      (await deps.db.selectFrom('risk_taras').selectAll().orderBy('id').execute()).map(summary),
    getTara: (id: string) => getTara(deps, id),
    list: (filter: { status?: RiskStatus | undefined; minRisk?: number | undefined } = {}) =>
      listRegister(deps, filter),
    get: (id: string) => getRisk(deps, id),
    update: async (id: string, change: RiskChange, actor: string) => {
      const updated = await updateRisk(deps, { id, change, actor });
      // A reopened risk takes its live value again.
      if (change.status !== undefined && change.status !== 'closed') await runner.now();
      return (await getRisk(deps, updated.id)).risk;
    },
    review: (id: string, note: string, actor: string) => reviewRisk(deps, { id, note, actor }),
    /** The compliance engine's `risk` source: saved TARAs and the register. */
    complianceFacts: () => complianceFacts(deps),
    /** The baseline's risk settings (re-assessment interval, alert threshold). */
    riskSettings: async () => (await deps.baseline()).risk,
    /** Re-evaluates the register now (also run after relevant events and every `intervalMs` in the server). */
    reassess: () => runner.now(),
    zones: async (): Promise<ZoneLevel[]> => {
      const snapshot = await inventorySnapshot(deps);
      return zoneLevels(deps, {
        snapshot,
        baseline: await deps.baseline(),
        measured: await deps.measuredLevel(),
      });
    },
    /** The server's background work: re-evaluate after relevant events (coalesced) and every `intervalMs`. */
    start(intervalMs: number): void {
      if (timer) return;
      unsubscribe = deps.events.on(REASSESS_ON, () => soon());
      timer = setInterval(() => runner.soon(), intervalMs);
      timer.unref();
      runner.now().catch(onError);
    },
    async stop(): Promise<void> {
      clearInterval(timer);
      clearTimeout(debounce);
      timer = undefined;
      debounce = undefined;
      unsubscribe?.();
      await runner.idle();
    },
  };
}

export type Register = ReturnType<typeof createRegister>;
