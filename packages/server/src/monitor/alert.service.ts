import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { seesGroup } from '../authz/index.ts';
import type { EventBus } from '../events/index.ts';
import type { AlertsTable, Db } from '../store/index.ts';
import type { Finding, Json } from './engine.ts';
import { severityRank, type Severity } from './profile.ts';

export const alertStatuses = ['open', 'acknowledged', 'resolved'] as const;
export type AlertStatus = (typeof alertStatuses)[number];

export interface AlertNote {
  at: number;
  by: string;
  text: string;
}

/** A response run for an alert (automatically when raised, or by an operator). */
export interface AlertResponse {
  at: number;
  action: string;
  automatic: boolean;
  actor: string;
  ok: boolean;
  /** What it acted on, or why it failed. */
  detail?: string | undefined;
}

export interface Alert {
  id: string;
  detector: string;
  subject: string;
  deviceId: string | null;
  severity: Severity;
  status: AlertStatus;
  title: string;
  evidence: Record<string, Json>;
  occurrences: number;
  firstSeen: number;
  lastSeen: number;
  assignee: string | null;
  notes: AlertNote[];
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  resolvedAt: number | null;
  resolvedBy: string | null;
  resolution: string | null;
  /** The responses run for it, oldest first. */
  responsesRun: AlertResponse[];
}

export interface AlertFilter {
  status?: AlertStatus[] | undefined;
  severity?: Severity | undefined;
  /** At least this severity. */
  minSeverity?: Severity | undefined;
  detector?: string | undefined;
  deviceId?: string | undefined;
  subject?: string | undefined;
  /** Only devices of these groups (a group-limited user); null for all. */
  groups?: string[] | null | undefined;
  limit?: number | undefined;
  /** Alerts last seen before this time (paging). */
  before?: number | undefined;
}

export interface AlertServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  /** The device's group, for group-limited users. */
  groupOf(deviceId: string): Promise<string | null | undefined>;
  /** Whether the device is quarantined now. */
  isQuarantined(deviceId: string): Promise<boolean>;
}

/** An alert whose quarantine response ran: it is the operator's record of why the device is held. */
const heldByQuarantine = (row: AlertsTable) =>
  row.device_id !== null &&
  (JSON.parse(row.responses ?? '[]') as AlertResponse[]).some((r) => r.action === 'quarantine' && r.ok);

function toAlert(row: AlertsTable): Alert {
  return {
    id: row.id,
    detector: row.detector,
    subject: row.subject,
    deviceId: row.device_id,
    severity: row.severity as Severity,
    status: row.status as AlertStatus,
    title: row.title,
    evidence: JSON.parse(row.evidence) as Record<string, Json>,
    occurrences: row.occurrences,
    firstSeen: Number(row.first_seen),
    lastSeen: Number(row.last_seen),
    assignee: row.assignee,
    notes: JSON.parse(row.notes) as AlertNote[],
    acknowledgedAt: row.acknowledged_at === null ? null : Number(row.acknowledged_at),
    acknowledgedBy: row.acknowledged_by,
    resolvedAt: row.resolved_at === null ? null : Number(row.resolved_at),
    resolvedBy: row.resolved_by,
    resolution: row.resolution,
    responsesRun: JSON.parse(row.responses ?? '[]') as AlertResponse[],
  };
}

const keyOf = (detector: string, subject: string) => `${detector}|${subject}`;

/** Runs work on one dedupe key in order (a raise and its auto-resolve never cross). */
type Serial = <T>(key: string, work: () => Promise<T>) => Promise<T>;

function createSerial(): Serial {
  const chains = new Map<string, Promise<unknown>>();
  return <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const next = (chains.get(key) ?? Promise.resolve()).then(work, work);
    const tail = next.catch(() => undefined);
    chains.set(key, tail);
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key);
    });
    return next;
  };
}

/** What the alert use cases below share. */
interface Ctx {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  deps: AlertServiceDeps;
  serial: Serial;
}

const openRow = (db: Db, key: string) =>
  db
    .selectFrom('alerts')
    .selectAll()
    .where('dedupe_key', '=', key)
    .where('status', '!=', 'resolved')
    .orderBy('first_seen', 'desc')
    .executeTakeFirst();

async function requireAlert(db: Db, id: string): Promise<AlertsTable> {
  const row = await db.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new BulwarkError('not_found', `no alert ${id}`);
  return row;
}

/** How an alert is resolved: by whom, why, and whether without an operator. */
interface Resolution {
  actor: string;
  resolution: string;
  automatic: boolean;
}

async function resolveRow(ctx: Ctx, row: AlertsTable, how: Resolution) {
  const { db, events, now } = ctx;
  const { actor, resolution, automatic } = how;
  const at = now();
  // Conditional: another process (the CLI releasing a device, a second node) may resolve it at once.
  const result = await db
    .updateTable('alerts')
    .set({ status: 'resolved', resolved_at: at, resolved_by: actor, resolution, updated_at: at })
    .where('id', '=', row.id)
    .where('status', '!=', 'resolved')
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return toAlert(await requireAlert(db, row.id));
  await events.emit({
    type: 'alert.resolved',
    actor,
    subject: row.subject,
    data: { alertId: row.id, detector: row.detector, automatic, resolution },
  });
  return toAlert({ ...row, status: 'resolved', resolved_at: at, resolved_by: actor, resolution });
}

/** Raises (or, when one is open for the same detector and subject, updates) an alert. */
function raiseAlert(ctx: Ctx, finding: Finding): Promise<{ alert: Alert; created: boolean }> {
  const { db, events, now } = ctx;
  const key = keyOf(finding.detector, finding.subject);
  return ctx.serial(key, async () => {
    const at = now();
    const existing = await openRow(db, key);
    if (existing) {
      const severity =
        severityRank[finding.severity] > severityRank[existing.severity as Severity]
          ? finding.severity
          : (existing.severity as Severity);
      const changes = {
        occurrences: existing.occurrences + 1,
        last_seen: finding.at,
        evidence: JSON.stringify(finding.evidence),
        severity,
        updated_at: at,
      };
      await db.updateTable('alerts').set(changes).where('id', '=', existing.id).execute();
      return { alert: toAlert({ ...existing, ...changes }), created: false };
    }
    const row: AlertsTable = {
      id: randomUUID(),
      dedupe_key: key,
      detector: finding.detector,
      subject: finding.subject,
      device_id: finding.deviceId,
      severity: finding.severity,
      status: 'open',
      title: finding.title.slice(0, 300),
      evidence: JSON.stringify(finding.evidence),
      occurrences: 1,
      first_seen: finding.at,
      last_seen: finding.at,
      assignee: null,
      notes: '[]',
      acknowledged_at: null,
      acknowledged_by: null,
      resolved_at: null,
      resolved_by: null,
      resolution: null,
      updated_at: at,
      responses: '[]',
    };
    await db.insertInto('alerts').values(row).execute();
    await events.emit({
      type: 'alert.raised',
      actor: 'system',
      subject: finding.subject,
      data: {
        alertId: row.id,
        detector: row.detector,
        severity: row.severity,
        title: row.title,
        evidence: finding.evidence,
      },
    });
    return { alert: toAlert(row), created: true };
  });
}

/** The open alerts on a device that its quarantine holds open. */
async function heldAlerts(ctx: Ctx, deviceId: string): Promise<Alert[]> {
  const rows = await ctx.db
    .selectFrom('alerts')
    .selectAll()
    .where('device_id', '=', deviceId)
    .where('status', '!=', 'resolved')
    .execute();
  return rows.filter(heldByQuarantine).map(toAlert);
}

/**
 * The device was released: the alerts whose quarantine held it are resolved, naming who released it.
 * `held` are the alerts held before the release (read by a caller that releases and resolves in two
 * steps); each is returned resolved even when another node resolved it in between.
 */
async function releaseHeld(
  ctx: Ctx,
  deviceId: string,
  how: { actor: string; held?: Alert[] },
): Promise<Alert[]> {
  const candidates = how.held ?? (await heldAlerts(ctx, deviceId));
  const resolved: Alert[] = [];
  for (const candidate of candidates)
    resolved.push(
      await ctx.serial(keyOf(candidate.detector, candidate.subject), async () => {
        const row = await requireAlert(ctx.db, candidate.id);
        return row.status === 'resolved'
          ? toAlert(row)
          : resolveRow(ctx, row, {
              actor: how.actor,
              resolution: `device ${deviceId} released from quarantine`,
              automatic: false,
            });
      }),
    );
  return resolved;
}

async function listAlerts(ctx: Ctx, filter: AlertFilter): Promise<Alert[]> {
  const { db, deps } = ctx;
  let q = db.selectFrom('alerts').selectAll();
  if (filter.status?.length) q = q.where('status', 'in', filter.status);
  if (filter.severity) q = q.where('severity', '=', filter.severity);
  if (filter.minSeverity) {
    const rank = severityRank[filter.minSeverity];
    q = q.where(
      'severity',
      'in',
      (Object.keys(severityRank) as Severity[]).filter((s) => severityRank[s] >= rank),
    );
  }
  if (filter.detector) q = q.where('detector', '=', filter.detector);
  if (filter.deviceId) q = q.where('device_id', '=', filter.deviceId);
  if (filter.subject) q = q.where('subject', '=', filter.subject);
  if (filter.before !== undefined) q = q.where('last_seen', '<', filter.before);
  const rows = await q
    .orderBy('last_seen', 'desc')
    .orderBy('id')
    .limit(Math.min(filter.limit ?? 100, 1000))
    .execute();
  const alerts = rows.map(toAlert);
  if (filter.groups === null || filter.groups === undefined) return alerts;
  const visible: Alert[] = [];
  const scope = { groups: filter.groups };
  for (const a of alerts) {
    const group = a.deviceId ? await deps.groupOf(a.deviceId) : undefined;
    if (seesGroup(scope, group)) visible.push(a);
  }
  return visible;
}

async function acknowledge(ctx: Ctx, id: string, actor: string): Promise<Alert> {
  const { db, events, now } = ctx;
  const row = await requireAlert(db, id);
  return ctx.serial(row.dedupe_key, async () => {
    const current = await requireAlert(db, id);
    if (current.status === 'resolved') throw new BulwarkError('conflict', `alert ${id} is already resolved`);
    if (current.status === 'acknowledged') return toAlert(current);
    const at = now();
    await db
      .updateTable('alerts')
      .set({ status: 'acknowledged', acknowledged_at: at, acknowledged_by: actor, updated_at: at })
      .where('id', '=', id)
      .execute();
    await events.emit({
      type: 'alert.acknowledged',
      actor,
      subject: current.subject,
      data: { alertId: id, detector: current.detector },
    });
    return toAlert({ ...current, status: 'acknowledged', acknowledged_at: at, acknowledged_by: actor });
  });
}

async function note(ctx: Ctx, id: string, by: { text: string; actor: string }): Promise<Alert> {
  const { db, events, now } = ctx;
  const { text, actor } = by;
  const row = await requireAlert(db, id);
  return ctx.serial(row.dedupe_key, async () => {
    const current = await requireAlert(db, id);
    const notes = [...(JSON.parse(current.notes) as AlertNote[]), { at: now(), by: actor, text }].slice(-200);
    await db
      .updateTable('alerts')
      .set({ notes: JSON.stringify(notes), updated_at: now() })
      .where('id', '=', id)
      .execute();
    await events.emit({
      type: 'alert.noted',
      actor,
      subject: current.subject,
      data: { alertId: id, text },
    });
    return toAlert({ ...current, notes: JSON.stringify(notes) });
  });
}

/**
 * Alerts: one per detector and subject until resolved (repeats add occurrences and refresh the
 * evidence), lifecycle open → acknowledged → resolved, every transition an event.
 */
export function createAlertService(deps: AlertServiceDeps) {
  const { db, events, now } = deps;
  const ctx: Ctx = { db, events, now, deps, serial: createSerial() };
  return {
    /** Raises (or, when one is open for the same detector and subject, updates) an alert. */
    raise: (finding: Finding) => raiseAlert(ctx, finding),

    /**
     * The behaviour cleared by itself: resolves the open alert for this detector and subject, unless a
     * quarantine response ran for it and the device is still quarantined. Then the alert stays open until an
     * operator resolves it or releases the device (a closed alert must not hide a device still held).
     */
    autoResolve(detector: string, subject: string, resolution: string): Promise<Alert | undefined> {
      const key = keyOf(detector, subject);
      return ctx.serial(key, async () => {
        const row = await openRow(db, key);
        if (!row) return undefined;
        if (row.device_id !== null && heldByQuarantine(row) && (await deps.isQuarantined(row.device_id)))
          return toAlert(row);
        return resolveRow(ctx, row, { actor: 'system', resolution, automatic: true });
      });
    },

    /** The device was released: the alerts whose quarantine held it are resolved, naming who released it. */
    heldAlerts: (deviceId: string) => heldAlerts(ctx, deviceId),
    releaseHeld: (deviceId: string, actor: string, held?: Alert[]) =>
      releaseHeld(ctx, deviceId, { actor, held }),

    /** Records a response run for the alert (kept with it, so `alerts show` names it). */
    async recordResponse(id: string, response: AlertResponse): Promise<void> {
      const row = await requireAlert(db, id);
      await ctx.serial(row.dedupe_key, async () => {
        const current = await requireAlert(db, id);
        const responses = [...(JSON.parse(current.responses ?? '[]') as AlertResponse[]), response].slice(
          -100,
        );
        await db
          .updateTable('alerts')
          .set({ responses: JSON.stringify(responses), updated_at: now() })
          .where('id', '=', id)
          .execute();
      });
    },

    async get(id: string): Promise<Alert> {
      return toAlert(await requireAlert(db, id));
    },

    list: (filter: AlertFilter = {}) => listAlerts(ctx, filter),

    /** Open alerts as [detector, subject] (the engine knows them at start). */
    async openKeys(): Promise<[string, string][]> {
      const rows = await db
        .selectFrom('alerts')
        .select(['detector', 'subject'])
        .where('status', '!=', 'resolved')
        .execute();
      return rows.map((r) => [r.detector, r.subject]);
    },

    async counts(): Promise<{ status: string; severity: string; n: number }[]> {
      const rows = await db
        .selectFrom('alerts')
        .select(['status', 'severity', db.fn.countAll<number>().as('n')])
        .groupBy(['status', 'severity'])
        .execute();
      return rows.map((r) => ({ status: r.status, severity: r.severity, n: Number(r.n) }));
    },

    acknowledge: (id: string, actor: string) => acknowledge(ctx, id, actor),

    async assign(id: string, assignee: string | null, actor: string): Promise<Alert> {
      const row = await requireAlert(db, id);
      const at = now();
      await db.updateTable('alerts').set({ assignee, updated_at: at }).where('id', '=', id).execute();
      await events.emit({
        type: 'alert.assigned',
        actor,
        subject: row.subject,
        data: { alertId: id, assignee },
      });
      return toAlert({ ...row, assignee });
    },

    note: (id: string, text: string, actor: string) => note(ctx, id, { text, actor }),

    async resolve(id: string, actor: string, resolution: string): Promise<Alert> {
      const row = await requireAlert(db, id);
      return ctx.serial(row.dedupe_key, async () => {
        const current = await requireAlert(db, id);
        if (current.status === 'resolved')
          throw new BulwarkError('conflict', `alert ${id} is already resolved`);
        return resolveRow(ctx, current, { actor, resolution, automatic: false });
      });
    },
  };
}

export type AlertService = ReturnType<typeof createAlertService>;
