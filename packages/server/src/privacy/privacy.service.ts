import type { SubjectData } from '../events/index.ts';
import type { Logger } from 'pino';
import { createPrivacyKeys, type PrivacyKeys } from './keys.ts';
import type { PrivacyContext, PrivacyDeps, PrivacySources } from './privacy.context.ts';
import { decryptValues, type DecryptQuery } from './privacy.decrypt.ts';
import { privacyComplianceFacts } from './privacy.facts.ts';
import { exportTelemetry, type TelemetryExportQuery } from './privacy.kanon.ts';
import { createPrivacyLive, type LivePrivacy } from './privacy.live.ts';
import { processingRecord, processingRecordHtml } from './privacy.record.ts';
import { requestOperations, type CreateRequestInput } from './privacy.requests.ts';
import { applyRetention } from './privacy.retention.ts';
import * as schemas from './privacy.schemas.ts';
import {
  createPrivacyStages,
  type PrivacyStageCounters,
  type RetainedClassification,
} from './privacy.stage.ts';
import * as subjects from './privacy.subjects.ts';

export type { PrivacyDeps } from './privacy.context.ts';
export type { PrivacyComplianceFacts } from './privacy.facts.ts';

/** How often the pseudonymisation keys are checked (this and the next period's exist, old ones go). */
const ROTATION_CHECK_MAX_MS = 3_600_000;
const ROTATION_CHECK_MIN_MS = 60_000;

/** A background job run every `intervalMs`, one round at a time; stop waits for the round in flight. */
function periodic(run: () => Promise<unknown>, onError: (err: unknown) => void) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const round = () => {
    running ??= run()
      .catch(onError)
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  return {
    start(intervalMs: number) {
      timer ??= setInterval(() => void round(), intervalMs).unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

/**
 * Pseudonymisation keys: this and the next period's exist; keys past the kept periods are deleted (their
 * tokens can no longer be linked to anyone) and that deletion is an event, once (the node that deleted).
 */
async function rotateKeys(ctx: PrivacyContext): Promise<void> {
  const { period, deletedPeriods } = await ctx.keys.rotate(ctx.now());
  if (deletedPeriods === 0) return;
  await ctx.events.emit({
    type: 'privacy.pseudonym_key_rotated',
    actor: 'system',
    data: { period, deletedPeriods },
  });
}

/** Retention, the overdue check of requests and key rotation, each on its interval (config `privacy`). */
function backgroundJobs(ctx: PrivacyContext) {
  const { settings } = ctx;
  const jobs = [
    {
      job: periodic(
        () => applyRetention(ctx, ctx.now()),
        (err) => ctx.onError(err, 'privacy retention'),
      ),
      intervalMs: settings.retentionIntervalMs,
    },
    {
      job: periodic(
        () => requestOperations(ctx).checkOverdue(ctx.now()),
        (err) => ctx.onError(err, 'privacy request deadlines'),
      ),
      intervalMs: settings.requestCheckIntervalMs,
    },
    {
      job: periodic(
        () => rotateKeys(ctx),
        (err) => ctx.onError(err, 'privacy key rotation'),
      ),
      intervalMs: Math.max(
        ROTATION_CHECK_MIN_MS,
        Math.min(ROTATION_CHECK_MAX_MS, Math.floor(settings.pseudonymKeyPeriodMs / 4)),
      ),
    },
  ];
  return {
    start: () => {
      for (const { job, intervalMs } of jobs) job.start(intervalMs);
    },
    stop: () => Promise.all(jobs.map(({ job }) => job.stop())),
  };
}

/** The use cases that change what the broker applies: each waits for the live view to reflect it. */
function changeOperations(ctx: PrivacyContext, live: LivePrivacy) {
  const fresh = async <T>(result: Promise<T>): Promise<T> => {
    const value = await result;
    await live.reload();
    return value;
  };
  const requests = requestOperations(ctx);
  return {
    putSchema: (document: unknown, actor: string) => fresh(schemas.putSchema(ctx, document, actor)),
    removeSchema: (name: string, actor: string) => fresh(schemas.removeSchema(ctx, name, actor)),
    addSubject: (input: subjects.NewSubject, actor: string) => fresh(subjects.addSubject(ctx, input, actor)),
    updateSubject: (id: string, change: subjects.SubjectChange, actor: string) =>
      fresh(subjects.updateSubject(ctx, { id, change }, actor)),
    /** Art. 18(3): the subject's data is delivered again (a restriction request set it). */
    liftRestriction: (id: string, actor: string) => fresh(subjects.liftRestriction(ctx, id, actor)),
    setConsent: (id: string, consent: subjects.ConsentInput, actor: string) =>
      fresh(subjects.setConsent(ctx, { id, ...consent }, actor)),
    createRequest: (input: CreateRequestInput, actor: string) => fresh(requests.createRequest(input, actor)),
    runRequest: (id: string, actor: string) => fresh(requests.runRequest(id, actor)),
    completeRequest: (id: string, input: { status: 'completed' | 'rejected'; note: string }, actor: string) =>
      fresh(requests.completeRequest(id, input, actor)),
  };
}

/** The broker's retained store as privacy uses it: a source of subject data, and what its messages are. */
export interface RetainedForPrivacy {
  privacySource: NonNullable<PrivacySources['retained']>;
  classificationOf(payload: Buffer): RetainedClassification | undefined;
}

/**
 * The server process's broker side: the publish and deliver stages over the live view and keys (their
 * counters for Prometheus) and the broker's retained store, which becomes a source (export, erasure,
 * retention) once the broker is built.
 */
function brokerSide(ctx: Pick<PrivacyContext, 'live' | 'keys' | 'events' | 'now' | 'onError'>) {
  let retained: RetainedForPrivacy['privacySource'] | undefined;
  let counters: PrivacyStageCounters | undefined;
  return {
    retained: () => retained,
    brokerStages: (options: { logger: Pick<Logger, 'warn' | 'error'>; retained?: RetainedForPrivacy }) => {
      retained = options.retained?.privacySource;
      const stages = createPrivacyStages({
        live: ctx.live,
        keys: ctx.keys,
        emit: (event) => {
          ctx.events.emit(event).catch((err: unknown) => ctx.onError(err, 'privacy event'));
        },
        now: ctx.now,
        logger: options.logger,
        retained: options.retained,
      });
      counters = stages.counters;
      return stages;
    },
    /** Payloads refused, deliveries withheld, views delivered by this process's broker (zeros without one). */
    stageCounters: (): PrivacyStageCounters => ({ refused: 0, transformed: 0, withheld: 0, ...counters }),
  };
}

/**
 * Privacy (docs/privacy.md): data schemas, data subjects and consent, data-subject requests, retention, the
 * record of processing activities, de-identified exports and decryption; the live view and keys the
 * broker's privacy stages read. Every change commits with its event.
 */
export function createPrivacyService(deps: PrivacyDeps) {
  const onError =
    deps.onError ??
    (() => {
      /* background failures are the caller's to log; none given: ignored */
    });
  const keys: PrivacyKeys = createPrivacyKeys({
    db: deps.db,
    box: deps.box,
    now: deps.now,
    periodMs: deps.settings.pseudonymKeyPeriodMs,
    keptPeriods: deps.settings.pseudonymKeysKept,
  });
  const live = createPrivacyLive({ db: deps.db, events: deps.events, keys, onError });
  const partial = { events: deps.events, now: deps.now, keys, live, onError };
  const broker = brokerSide(partial);
  const sources = (): PrivacySources => {
    const retained = broker.retained();
    return retained ? { ...deps.sources(), retained } : deps.sources();
  };
  const ctx: PrivacyContext = { ...deps, ...partial, sources };
  const jobs = backgroundJobs(ctx);
  const requests = requestOperations(ctx);
  return {
    live,
    keys,
    listSchemas: () => schemas.listSchemas(ctx),
    getSchema: (name: string) => schemas.getSchema(ctx, name),
    testSchema: (input: schemas.SchemaTest) => schemas.testSchema(ctx, input),
    listSubjects: (page: { after?: string | undefined; limit: number }) => subjects.listSubjects(ctx, page),
    getSubject: (id: string) => subjects.getSubject(ctx, id),
    ...changeOperations(ctx, live),
    listRequests: requests.listRequests,
    getRequest: requests.getRequest,
    checkOverdue: requests.checkOverdue,
    exportSubject: requests.exportSubject,
    /** One retention pass now (the CLI's `privacy retention`; the server runs it on its interval). */
    applyRetention: (now: number = deps.now()) => applyRetention(ctx, now),
    record: () => processingRecord(ctx),
    recordHtml: async () => processingRecordHtml(await processingRecord(ctx)),
    exportTelemetry: (q: TelemetryExportQuery, actor: string) => exportTelemetry(ctx, q, actor),
    /** Reads consent and restrictions from the live view: loaded first in a process that did not start. */
    decrypt: async (q: DecryptQuery, actor: string) => {
      await live.start();
      return decryptValues(ctx, q, actor);
    },
    subjectData: subjects.privacySubjectData(ctx),
    /**
     * The stores that keep a device's messages (telemetry, and in the server the broker's retained store), as
     * they stand now: a decommissioned device's data is erased through them (devices' retirement).
     */
    deviceStores: (): SubjectData[] => {
      const { telemetry, retained } = sources();
      return retained ? [telemetry, retained] : [telemetry];
    },
    /** The compliance engine's `privacy` source: personal fields, open requests, controller, telemetry. */
    complianceFacts: () => privacyComplianceFacts(ctx),
    /** Server process: the broker's privacy stages (and its retained store as a source). */
    brokerStages: broker.brokerStages,
    stageCounters: broker.stageCounters,
    /** Loads the live view and follows its events, makes the pseudonym keys, starts the background jobs. */
    async start(): Promise<void> {
      await live.start();
      await rotateKeys(ctx).catch((err: unknown) => onError(err, 'privacy key rotation'));
      jobs.start();
    },
    async stop(): Promise<void> {
      live.stop();
      await jobs.stop();
    },
  };
}

export type PrivacyService = ReturnType<typeof createPrivacyService>;
