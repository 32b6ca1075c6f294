import { BulwarkError } from '@bulwark/protocol';
import type { EventBus, Subject, SubjectData } from '../events/index.ts';
import type { Db, TelemetryPatternsTable } from '../store/index.ts';
import { compilePatterns, validPattern, validRetention, type PatternMatcher } from './telemetry.patterns.ts';
import { queryMessages, toMessage, type TelemetryPage, type TelemetryQuery } from './telemetry.query.ts';
import * as store from './telemetry.store.ts';
import {
  createTelemetryWriter,
  defaultWriterSettings,
  type TelemetryWriter,
  type WriterSettings,
} from './telemetry.writer.ts';

export interface TelemetryDeps {
  db: Db;
  events: Pick<EventBus, 'atomically' | 'emit' | 'on'>;
  now: () => number;
  /** Background work failed (retention, a pattern reload). */
  onError?(err: unknown, what: string): void;
  writer?: Partial<WriterSettings>;
}

/** A pattern as the API and the CLI list it. */
export interface TelemetryPattern {
  pattern: string;
  retentionMs: number;
  createdAt: number;
  updatedAt: number;
  createdBy: string;
  messages: number;
  oldestAt: number | null;
}

export interface RetentionResult {
  pattern: string;
  deleted: number;
  /** Rows received before this were deleted. */
  before: number;
}

/** Rows deleted per transaction by retention. */
const RETENTION_BATCH = 5000;
/** Messages of one device an export lists at most (the newest). */
export const EXPORT_LIMIT = 10_000;

function toPattern(
  row: TelemetryPatternsTable,
  stats?: { messages: number; oldestAt: number | null },
): TelemetryPattern {
  return {
    pattern: row.pattern,
    retentionMs: Number(row.retention_ms),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    createdBy: row.created_by,
    messages: stats?.messages ?? 0,
    oldestAt: stats?.oldestAt ?? null,
  };
}

/** Pattern changes: each committed with its event (`telemetry.pattern_set`, `telemetry.pattern_removed`). */
function patternOperations(deps: TelemetryDeps) {
  async function listPatterns(): Promise<TelemetryPattern[]> {
    const [rows, stats] = await Promise.all([store.listPatternRows(deps.db), store.patternStats(deps.db)]);
    return rows.map((r) => toPattern(r, stats.get(r.pattern)));
  }

  async function setPattern(
    pattern: string,
    options: { retentionMs: number },
    actor: string,
  ): Promise<TelemetryPattern> {
    validPattern(pattern);
    const retentionMs = validRetention(options.retentionMs);
    const t = deps.now();
    await deps.events.atomically(async (tx, emit) => {
      const existing = await store.getPatternRow(tx, pattern);
      await store.upsertPattern(tx, {
        pattern,
        retention_ms: retentionMs,
        created_at: existing ? Number(existing.created_at) : t,
        updated_at: t,
        created_by: existing?.created_by ?? actor,
      });
      emit({ type: 'telemetry.pattern_set', actor, data: { pattern, retentionMs } });
    });
    const shown = (await listPatterns()).find((p) => p.pattern === pattern);
    if (!shown) throw new BulwarkError('conflict', `pattern ${pattern} was removed meanwhile`);
    return shown;
  }

  async function removePattern(
    pattern: string,
    actor: string,
  ): Promise<{ pattern: string; deleted: number }> {
    return deps.events.atomically(async (tx, emit) => {
      if (!(await store.deletePattern(tx, pattern)))
        throw new BulwarkError('not_found', `no telemetry is stored for pattern ${pattern}`);
      const deleted = await store.deleteMessagesOfPattern(tx, pattern);
      emit({ type: 'telemetry.pattern_removed', actor, data: { pattern, deleted } });
      return { pattern, deleted };
    });
  }

  return { listPatterns, setPattern, removePattern };
}

/**
 * Deletes exactly the rows older than each pattern's retention (received before `now - retention`), in
 * batches of RETENTION_BATCH rows (one transaction each); one `telemetry.retention_applied` per pattern
 * that lost rows. Resolves with the rows deleted in all (the events say how many per pattern).
 */
async function applyRetention(deps: TelemetryDeps, now: number): Promise<number> {
  const results: RetentionResult[] = [];
  for (const row of await store.listPatternRows(deps.db)) {
    const before = now - Number(row.retention_ms);
    let deleted = 0;
    for (;;) {
      const n = await deps.db
        .transaction()
        .execute((tx) =>
          store.deleteExpiredBatch(tx, { pattern: row.pattern, before, limit: RETENTION_BATCH }),
        );
      deleted += n;
      if (n < RETENTION_BATCH) break;
    }
    if (deleted === 0) continue;
    results.push({ pattern: row.pattern, deleted, before });
    await deps.events.emit({
      type: 'telemetry.retention_applied',
      actor: 'system',
      data: { pattern: row.pattern, deleted, before },
    });
  }
  return results.reduce((sum, r) => sum + r.deleted, 0);
}

/**
 * The telemetry module's part of a data-subject request: a device's stored messages (by publisher), or a
 * person's (privacy: the messages whose data schema named them or whose device is linked to them).
 */
function telemetrySubjectData(deps: TelemetryDeps): SubjectData {
  return {
    module: 'telemetry',
    async exportSubject(subject: Subject) {
      if (subject.kind !== 'device' && subject.kind !== 'person') return [];
      const rows =
        subject.kind === 'device'
          ? await store.selectMessages(deps.db, {
              deviceId: subject.id,
              limit: EXPORT_LIMIT,
              newestFirst: true,
            })
          : await store.selectMessagesOfSubject(deps.db, { subjectId: subject.id, limit: EXPORT_LIMIT });
      return rows.map((r) => ({
        record: 'telemetry_message',
        ...toMessage(r),
        deviceId: r.device_id,
        dataSchema: r.data_schema ?? null,
      }));
    },
    async eraseSubject(subject: Subject) {
      if (subject.kind === 'device')
        return { erased: await store.deleteMessagesOfDevice(deps.db, subject.id) };
      if (subject.kind === 'person')
        return { erased: await store.deleteMessagesOfSubject(deps.db, subject.id) };
      return { erased: 0 };
    },
  };
}

/** A stored message kept for a data schema, for privacy's de-identified exports (k-anonymity). */
export interface SchemaRow {
  subjectId: string | null;
  deviceId: string;
  receivedAt: number;
  payload: Buffer;
}

/** Privacy's operations on the messages kept for a data schema: retention and exports. */
function schemaOperations(deps: TelemetryDeps) {
  return {
    /** Privacy's name for this store (retention results). */
    store: 'telemetry' as const,
    /**
     * Deletes the messages kept for a data schema received before `before` (privacy's retention per
     * schema; pattern retention goes on as before), in batches; resolves with how many.
     */
    async deleteForSchema(schema: string, before: number): Promise<number> {
      let deleted = 0;
      for (;;) {
        const n = await deps.db
          .transaction()
          .execute((tx) => store.deleteSchemaBatch(tx, { schema, before, limit: RETENTION_BATCH }));
        deleted += n;
        if (n < RETENTION_BATCH) return deleted;
      }
    },
    /** The messages kept for a data schema, oldest first, at most `limit`. */
    async rowsForSchema(q: {
      schema: string;
      from?: number | undefined;
      to?: number | undefined;
      limit: number;
    }): Promise<SchemaRow[]> {
      const rows = await store.selectMessagesOfSchema(deps.db, q);
      return rows.map((r) => ({
        subjectId: r.subject_id ?? null,
        deviceId: r.device_id,
        receivedAt: Number(r.received_at),
        payload: Buffer.from(r.payload, 'base64'),
      }));
    },
  };
}

/** The patterns compiled for the broker stage, kept current on pattern events (local and other processes). */
function livePatterns(deps: TelemetryDeps) {
  let matcher: PatternMatcher | null = null;
  let stopEvents: (() => void) | undefined;
  let loading: Promise<void> = Promise.resolve();

  const load = async () => {
    const rows = await store.listPatternRows(deps.db);
    const compiled = compilePatterns(
      rows.map((r) => ({ pattern: r.pattern, retentionMs: Number(r.retention_ms) })),
    );
    matcher = compiled.size === 0 ? null : compiled;
  };
  const reload = () => {
    loading = loading.then(load).catch((err: unknown) => deps.onError?.(err, 'telemetry patterns reload'));
    return loading;
  };
  return {
    /** The compiled patterns, or null when none is stored (the stage then does nothing). */
    current: () => matcher,
    /** Loads the patterns and follows their events. */
    async start(): Promise<void> {
      stopEvents ??= deps.events.on(
        ['telemetry.pattern_set', 'telemetry.pattern_removed'],
        () => void reload(),
      );
      await reload();
    },
    stop(): void {
      stopEvents?.();
      stopEvents = undefined;
    },
  };
}

export type LivePatterns = ReturnType<typeof livePatterns>;

/** Runs retention every `intervalMs` (one round at a time). */
function retentionTimer(deps: TelemetryDeps) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  return {
    start(intervalMs: number) {
      timer ??= setInterval(() => {
        running = running
          .then(() => applyRetention(deps, deps.now()))
          .catch((err: unknown) => deps.onError?.(err, 'telemetry retention'));
      }, intervalMs).unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

/**
 * The optional telemetry store (docs/telemetry.md): patterns, queries, retention, data-subject requests,
 * and the writer and live patterns behind the broker stage (telemetry.stage.ts).
 */
export function createTelemetryService(deps: TelemetryDeps) {
  const patterns = livePatterns(deps);
  const retention = retentionTimer(deps);
  const subjectData = telemetrySubjectData(deps);
  const schemas = schemaOperations(deps);
  const writer: TelemetryWriter = createTelemetryWriter(deps.db, {
    ...defaultWriterSettings,
    ...deps.writer,
  });
  return {
    ...patternOperations(deps),
    /** The stored patterns and their retention, without counting their messages (compliance facts). */
    patternRules: async () =>
      (await store.listPatternRows(deps.db)).map((r) => ({
        pattern: r.pattern,
        retentionMs: Number(r.retention_ms),
      })),
    query: (q: TelemetryQuery): Promise<TelemetryPage> => queryMessages(deps.db, q),
    applyRetention: (now: number) => applyRetention(deps, now),
    subjectData,
    ...schemas,
    /** What privacy exports, erases and applies retention to here (its sources' `telemetry`). */
    privacySource: {
      ...subjectData,
      store: schemas.store,
      deleteForSchema: (schema: string, before: number) => schemas.deleteForSchema(schema, before),
    },
    patterns,
    writer,
    /** Rows stored, dropped (queue full), failed (batch failed) and waiting, in this process. */
    stats: () => writer.stats(),
    /** Server process: follows pattern changes and runs retention every `retentionIntervalMs`. */
    async start(retentionIntervalMs: number): Promise<void> {
      await patterns.start();
      retention.start(retentionIntervalMs);
    },
    async stop(): Promise<void> {
      patterns.stop();
      await retention.stop();
      await writer.flush();
    },
  };
}

export type TelemetryService = ReturnType<typeof createTelemetryService>;
