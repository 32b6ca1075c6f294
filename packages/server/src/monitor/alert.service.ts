import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { seesGroup } from '../authz/index.ts';
import type { EventBus, SecurityEvent, TxEmit } from '../events/index.ts';
import type { AlertsTable, Db, DbOrTx, Tx } from '../store/index.ts';
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
  /** Assigned to this user. */
  assignee?: string | undefined;
  /** Only devices of these groups (a group-limited user); null for all. */
  groups?: string[] | null | undefined;
  limit?: number | undefined;
  /** Alerts last seen before this time (kept for old clients: alerts sharing a millisecond may be skipped). */
  before?: number | undefined;
  /** Paging: the alerts after this one in the list's order (a page's `next`, see `AlertPage`). */
  after?: AlertCursor | undefined;
}

/** Where a page ended: the list is ordered by last seen (newest first), then id, so the pair is unique. */
export interface AlertCursor {
  lastSeen: number;
  id: string;
}

/** A cursor as the API hands it out: opaque to clients (base64url of `lastSeen.id`). */
export const cursorText = (c: AlertCursor) => Buffer.from(`${c.lastSeen}.${c.id}`).toString('base64url');

/** A cursor the API was given back; anything not made by `cursorText` is refused naming the field. */
export function parseCursor(text: string): AlertCursor {
  const invalid = () =>
    new BulwarkError('validation_failed', 'cursor: not a cursor of this list (use `next`)');
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw invalid();
  const match = /^(\d{1,16})\.([A-Za-z0-9-]{1,64})$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  const lastSeen = Number(match?.[1]);
  if (!match?.[2] || !Number.isSafeInteger(lastSeen)) throw invalid();
  return { lastSeen, id: match[2] };
}

export interface AlertPage {
  alerts: Alert[];
  /** The cursor of the next page, when this one was full (there may be more). */
  next?: AlertCursor | undefined;
}

/** Events recorded with a response run (responses.ts builds them). */
export type ResponseEvent = SecurityEvent<'response.executed'> | SecurityEvent<'response.failed'>;

export interface AlertServiceDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  /** The device's group, for group-limited users. */
  groupOf(deviceId: string): Promise<string | null | undefined>;
  /** Whether the device is quarantined now. */
  isQuarantined(deviceId: string): Promise<boolean>;
  /** Whether the user exists and is not disabled (an alert is assigned only to such a user). */
  isActiveUser(username: string): Promise<boolean>;
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
  now: () => number;
  deps: AlertServiceDeps;
  serial: Serial;
}

/** A change in progress: its transaction, where its events are recorded, the time. */
interface Change {
  tx: Tx;
  emit: TxEmit;
  now: () => number;
}

/**
 * A change of an alert and its events as one transaction (DESIGN.md: a change commits with its event). The
 * work reads and writes through `tx` only: with SQLite the store has one connection, held by the transaction.
 */
const atomically = <R>(ctx: Ctx, work: (change: Change) => Promise<R>) =>
  ctx.deps.events.atomically((tx, emit) => work({ tx, emit, now: ctx.now }));

const openRow = (db: DbOrTx, key: string) =>
  db
    .selectFrom('alerts')
    .selectAll()
    .where('dedupe_key', '=', key)
    .where('status', '!=', 'resolved')
    .orderBy('first_seen', 'desc')
    .executeTakeFirst();

async function requireAlert(db: DbOrTx, id: string): Promise<AlertsTable> {
  const row = await db.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new BulwarkError('not_found', `no alert ${id}`);
  return row;
}

/**
 * One change of one alert, in the order of its dedupe key and in one transaction with its events: `apply`
 * reads the alert as it is now (through `tx`) and returns the changed row.
 */
async function changeAlert(
  ctx: Ctx,
  id: string,
  apply: (current: AlertsTable, change: Change) => Promise<AlertsTable>,
): Promise<Alert> {
  const row = await requireAlert(ctx.db, id);
  return ctx.serial(row.dedupe_key, async () =>
    toAlert(await atomically(ctx, async (change) => apply(await requireAlert(change.tx, id), change))),
  );
}

/** How an alert is resolved: by whom, why, and whether without an operator. */
interface Resolution {
  actor: string;
  resolution: string;
  automatic: boolean;
}

/** Resolves the alert (unless another process resolved it first) with its `alert.resolved`, inside `tx`. */
async function resolveRow({ tx, emit, now }: Change, row: AlertsTable, how: Resolution) {
  const { actor, resolution, automatic } = how;
  const at = now();
  // Conditional: another process (the CLI releasing a device, a second node) may resolve it at once.
  const result = await tx
    .updateTable('alerts')
    .set({ status: 'resolved', resolved_at: at, resolved_by: actor, resolution, updated_at: at })
    .where('id', '=', row.id)
    .where('status', '!=', 'resolved')
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return requireAlert(tx, row.id);
  emit({
    type: 'alert.resolved',
    actor,
    subject: row.subject,
    data: { alertId: row.id, detector: row.detector, automatic, resolution },
  });
  return { ...row, status: 'resolved', resolved_at: at, resolved_by: actor, resolution, updated_at: at };
}

/** A repeat of an open alert: one more occurrence, the latest evidence, the worse severity (no event). */
async function repeatRow({ tx, now }: Change, existing: AlertsTable, finding: Finding): Promise<AlertsTable> {
  const severity =
    severityRank[finding.severity] > severityRank[existing.severity as Severity]
      ? finding.severity
      : (existing.severity as Severity);
  const changes = {
    occurrences: existing.occurrences + 1,
    last_seen: finding.at,
    evidence: JSON.stringify(finding.evidence),
    severity,
    updated_at: now(),
  };
  await tx.updateTable('alerts').set(changes).where('id', '=', existing.id).execute();
  return { ...existing, ...changes };
}

/** A new alert for the finding, with its `alert.raised`. */
async function insertRow({ tx, emit, now }: Change, finding: Finding): Promise<AlertsTable> {
  const row: AlertsTable = {
    id: randomUUID(),
    dedupe_key: keyOf(finding.detector, finding.subject),
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
    updated_at: now(),
    responses: '[]',
  };
  await tx.insertInto('alerts').values(row).execute();
  emit({
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
  return row;
}

/** Raises (or, when one is open for the same detector and subject, updates) an alert. */
function raiseAlert(ctx: Ctx, finding: Finding): Promise<{ alert: Alert; created: boolean }> {
  const key = keyOf(finding.detector, finding.subject);
  return ctx.serial(key, () =>
    atomically(ctx, async (change) => {
      const existing = await openRow(change.tx, key);
      if (existing) return { alert: toAlert(await repeatRow(change, existing, finding)), created: false };
      return { alert: toAlert(await insertRow(change, finding)), created: true };
    }),
  );
}

/**
 * The behaviour cleared by itself: resolves the open alert for this detector and subject, unless a quarantine
 * response ran for it and the device is still quarantined.
 */
function autoResolve(ctx: Ctx, key: string, resolution: string): Promise<Alert | undefined> {
  return ctx.serial(key, async () => {
    const row = await openRow(ctx.db, key);
    if (!row) return undefined;
    // Asked before the transaction: the devices door reads the store, which the transaction holds (SQLite).
    if (row.device_id !== null && heldByQuarantine(row) && (await ctx.deps.isQuarantined(row.device_id)))
      return toAlert(row);
    return toAlert(
      await atomically(ctx, async (change) => {
        const current = await requireAlert(change.tx, row.id);
        if (current.status === 'resolved') return current;
        return resolveRow(change, current, { actor: 'system', resolution, automatic: true });
      }),
    );
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
      await changeAlert(ctx, candidate.id, (row, change) =>
        row.status === 'resolved'
          ? Promise.resolve(row)
          : resolveRow(change, row, {
              actor: how.actor,
              resolution: `device ${deviceId} released from quarantine`,
              automatic: false,
            }),
      ),
    );
  return resolved;
}

async function listAlerts(ctx: Ctx, filter: AlertFilter): Promise<AlertPage> {
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
  if (filter.assignee) q = q.where('assignee', '=', filter.assignee);
  if (filter.before !== undefined) q = q.where('last_seen', '<', filter.before);
  const after = filter.after;
  // Keyset paging in the list's order (last_seen desc, id asc): the pair is unique, so alerts sharing a
  // millisecond are neither skipped nor repeated between pages.
  if (after)
    q = q.where((eb) =>
      eb.or([
        eb('last_seen', '<', after.lastSeen),
        eb.and([eb('last_seen', '=', after.lastSeen), eb('id', '>', after.id)]),
      ]),
    );
  const limit = Math.min(filter.limit ?? 100, 1000);
  const rows = await q.orderBy('last_seen', 'desc').orderBy('id').limit(limit).execute();
  const last = rows.at(-1);
  // From the last row read, not the last one shown: a group-limited page may show fewer than it read.
  const next = rows.length === limit && last ? { lastSeen: Number(last.last_seen), id: last.id } : undefined;
  const alerts = rows.map(toAlert);
  if (filter.groups === null || filter.groups === undefined) return { alerts, next };
  const visible: Alert[] = [];
  const scope = { groups: filter.groups };
  for (const a of alerts) {
    const group = a.deviceId ? await deps.groupOf(a.deviceId) : undefined;
    if (seesGroup(scope, group)) visible.push(a);
  }
  return { alerts: visible, next };
}

function acknowledge(ctx: Ctx, id: string, actor: string): Promise<Alert> {
  return changeAlert(ctx, id, async (current, { tx, emit, now }) => {
    if (current.status === 'resolved') throw new BulwarkError('conflict', `alert ${id} is already resolved`);
    if (current.status === 'acknowledged') return current;
    const at = now();
    const changes = { status: 'acknowledged', acknowledged_at: at, acknowledged_by: actor, updated_at: at };
    await tx.updateTable('alerts').set(changes).where('id', '=', id).execute();
    emit({
      type: 'alert.acknowledged',
      actor,
      subject: current.subject,
      data: { alertId: id, detector: current.detector },
    });
    return { ...current, ...changes };
  });
}

/** Assigns the alert to an active user (null: unassigns); anyone else is refused and nothing changes. */
async function assign(ctx: Ctx, id: string, by: { assignee: string | null; actor: string }): Promise<Alert> {
  const { assignee, actor } = by;
  await requireAlert(ctx.db, id);
  if (assignee !== null && !(await ctx.deps.isActiveUser(assignee)))
    throw new BulwarkError('validation_failed', `assignee: no active user ${assignee}`);
  return changeAlert(ctx, id, async (current, { tx, emit, now }) => {
    const changes = { assignee, updated_at: now() };
    await tx.updateTable('alerts').set(changes).where('id', '=', id).execute();
    emit({ type: 'alert.assigned', actor, subject: current.subject, data: { alertId: id, assignee } });
    return { ...current, ...changes };
  });
}

function note(ctx: Ctx, id: string, by: { text: string; actor: string }): Promise<Alert> {
  const { text, actor } = by;
  return changeAlert(ctx, id, async (current, { tx, emit, now }) => {
    const at = now();
    const notes = [...(JSON.parse(current.notes) as AlertNote[]), { at, by: actor, text }].slice(-200);
    const changes = { notes: JSON.stringify(notes), updated_at: at };
    await tx.updateTable('alerts').set(changes).where('id', '=', id).execute();
    emit({ type: 'alert.noted', actor, subject: current.subject, data: { alertId: id, text } });
    return { ...current, ...changes };
  });
}

/** Records a response run for the alert (kept with it, so `alerts show` names it) with its event. */
async function recordResponse(ctx: Ctx, id: string, run: { response: AlertResponse; event: ResponseEvent }) {
  await changeAlert(ctx, id, async (current, { tx, emit, now }) => {
    const responses = [...(JSON.parse(current.responses ?? '[]') as AlertResponse[]), run.response].slice(
      -100,
    );
    const changes = { responses: JSON.stringify(responses), updated_at: now() };
    await tx.updateTable('alerts').set(changes).where('id', '=', id).execute();
    emit(run.event);
    return { ...current, ...changes };
  });
}

/**
 * Alerts: one per detector and subject until resolved (repeats add occurrences and refresh the
 * evidence), lifecycle open → acknowledged → resolved, every transition an event committed with it.
 */
export function createAlertService(deps: AlertServiceDeps) {
  const { db, now } = deps;
  const ctx: Ctx = { db, now, deps, serial: createSerial() };
  return {
    /** Raises (or, when one is open for the same detector and subject, updates) an alert. */
    raise: (finding: Finding) => raiseAlert(ctx, finding),

    /**
     * The behaviour cleared by itself: resolves the open alert for this detector and subject, unless a
     * quarantine response ran for it and the device is still quarantined. Then the alert stays open until an
     * operator resolves it or releases the device (a closed alert must not hide a device still held).
     */
    autoResolve: (detector: string, subject: string, resolution: string) =>
      autoResolve(ctx, keyOf(detector, subject), resolution),

    /** The device was released: the alerts whose quarantine held it are resolved, naming who released it. */
    heldAlerts: (deviceId: string) => heldAlerts(ctx, deviceId),
    releaseHeld: (deviceId: string, actor: string, held?: Alert[]) =>
      releaseHeld(ctx, deviceId, { actor, held }),

    /** Records a response run for the alert (kept with it, so `alerts show` names it) with its event. */
    recordResponse: (id: string, response: AlertResponse, event: ResponseEvent) =>
      recordResponse(ctx, id, { response, event }),

    async get(id: string): Promise<Alert> {
      return toAlert(await requireAlert(db, id));
    },

    /** Alerts, newest first, filtered (one page; see `page` for the cursor of the next). */
    list: async (filter: AlertFilter = {}) => (await listAlerts(ctx, filter)).alerts,
    /** One page of alerts and, when it was full, where the next one starts. */
    page: (filter: AlertFilter = {}) => listAlerts(ctx, filter),

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

    assign: (id: string, assignee: string | null, actor: string) => assign(ctx, id, { assignee, actor }),

    note: (id: string, text: string, actor: string) => note(ctx, id, { text, actor }),

    resolve: (id: string, actor: string, resolution: string): Promise<Alert> =>
      changeAlert(ctx, id, (current, change) => {
        if (current.status === 'resolved')
          throw new BulwarkError('conflict', `alert ${id} is already resolved`);
        return resolveRow(change, current, { actor, resolution, automatic: false });
      }),
  };
}

export type AlertService = ReturnType<typeof createAlertService>;
