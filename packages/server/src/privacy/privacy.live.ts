import type { DataSchema } from '@bulwark/protocol';
import type { EventType } from '../events/index.ts';
import type { PrivacyKeys } from './keys.ts';
import type { PrivacyDeps } from './privacy.context.ts';
import * as store from './privacy.store.ts';
import { parseDataSchema } from './data-schema.ts';
import { compileDataSchema, schemaMatcher, type CompiledSchema } from './transforms.ts';

/**
 * The hot path's view of schemas, links, consents and restrictions: loaded fully at start, kept current by
 * events (local and from other processes through the bus). Every lookup is a Map read.
 */
export interface PrivacyLive {
  /** The schema of a topic (most specific filter); undefined fast when no schema exists. */
  match(topic: string): CompiledSchema | undefined;
  readonly empty: boolean;
  /** The one person linked to the device, else null. */
  subjectOfDevice(deviceId: string): string | null;
  /** The subject's consent for the purpose, or for its nearest ancestor purpose that has a record. */
  consent(subject: string, purpose: string): 'given' | 'withdrawn' | undefined;
  /** GDPR Art. 18: a restricted subject's data is delivered to no one. */
  restricted(subject: string): boolean;
  start(): Promise<void>;
  stop(): void;
}

/** The live view with what the service needs besides: a reload its own changes wait for. */
export interface LivePrivacy extends PrivacyLive {
  /** Reloads everything now (when started): the service's own changes are visible when it resolves. */
  reload(): Promise<void>;
}

type ConsentStatus = 'given' | 'withdrawn';

/**
 * A subject's consent for a purpose: the record of that purpose, else of its nearest ancestor
 * (`analytics` covers `analytics.reporting`), as fideslang data uses nest.
 */
export function consentOf(
  consents: ReadonlyMap<string, ConsentStatus> | undefined,
  purpose: string,
): ConsentStatus | undefined {
  if (!consents || consents.size === 0) return undefined;
  let p = purpose;
  for (;;) {
    const status = consents.get(p);
    if (status !== undefined) return status;
    const dot = p.lastIndexOf('.');
    if (dot <= 0) return undefined;
    p = p.slice(0, dot);
  }
}

/** The events after which the live view reloads (its own process's and others', through the audit log). */
const schemaEvents = ['privacy.schema_set', 'privacy.schema_removed'] as const satisfies EventType[];
const subjectEvents = [
  'privacy.subject_added',
  'privacy.subject_updated',
  'privacy.consent_given',
  'privacy.consent_withdrawn',
  'privacy.request_completed',
] as const satisfies EventType[];

interface SchemaState {
  matcher: { match(topic: string): CompiledSchema | undefined; readonly size: number } | null;
}

interface SubjectState {
  deviceSubject: Map<string, string>;
  consents: Map<string, Map<string, ConsentStatus>>;
  restricted: Set<string>;
}

type LiveDeps = Pick<PrivacyDeps, 'db' | 'events'> & {
  keys: Pick<PrivacyKeys, 'forgetAll'>;
  onError: (err: unknown, what: string) => void;
};

/**
 * A stored schema this version no longer accepts (its rules got stricter) or cannot compile: its topic's
 * payloads are refused, naming why (fail closed), never forwarded or stored unclassified.
 */
function refusing(name: string, topic: string, problem: string): CompiledSchema {
  const reason = `data schema ${name} cannot be applied (${problem}): put it again`;
  const schema: DataSchema = { name, topic, subject: { kind: 'customer' }, schema: {}, fields: {} };
  const nothing = () => ({});
  return {
    name,
    topic,
    schema,
    fields: [],
    transforms: true,
    encrypts: false,
    pseudonymises: false,
    check: () => ({ ok: false, reason }),
    subjectOf: () => undefined,
    view: nothing,
    viewKey: () => '',
    kept: () => null,
    viewOfKept: nothing,
  };
}

async function loadSchemas(deps: LiveDeps): Promise<SchemaState> {
  const compiled: CompiledSchema[] = [];
  for (const row of await store.listSchemaRows(deps.db)) {
    try {
      // Validated again as a new one would be: a schema stored under older, looser rules is caught here.
      compiled.push(compileDataSchema(parseDataSchema(JSON.parse(row.document))));
    } catch (err) {
      deps.onError(err, `data schema ${row.name} cannot be applied: its topic's payloads are refused`);
      compiled.push(refusing(row.name, row.topic, err instanceof Error ? err.message : String(err)));
    }
  }
  const matcher = schemaMatcher(compiled);
  return { matcher: matcher.size === 0 ? null : matcher };
}

async function loadSubjects(deps: LiveDeps): Promise<SubjectState> {
  const [links, consentRows, restricted] = await Promise.all([
    store.allLinks(deps.db, 'device'),
    store.allConsents(deps.db),
    store.restrictedSubjectIds(deps.db),
  ]);
  const byDevice = new Map<string, string[]>();
  for (const l of links) byDevice.set(l.ref, [...(byDevice.get(l.ref) ?? []), l.subject_id]);
  const deviceSubject = new Map<string, string>();
  for (const [device, subjects] of byDevice)
    if (subjects.length === 1 && subjects[0]) deviceSubject.set(device, subjects[0]);
  const consents = new Map<string, Map<string, ConsentStatus>>();
  for (const c of consentRows) {
    let own = consents.get(c.subject_id);
    if (!own) consents.set(c.subject_id, (own = new Map<string, ConsentStatus>()));
    own.set(c.purpose, c.status === 'given' ? 'given' : 'withdrawn');
  }
  return { deviceSubject, consents, restricted: new Set(restricted) };
}

/** Runs `work` one at a time; a call while one waits to start shares it (bursts of events reload once). */
function serialised(work: () => Promise<void>, onError: (err: unknown) => void): () => Promise<void> {
  let tail: Promise<void> = Promise.resolve();
  let pending: Promise<void> | undefined;
  return () => {
    pending ??= tail.then(() => {
      pending = undefined;
      return work().catch(onError);
    });
    tail = pending;
    return pending;
  };
}

/** The live view (privacy.live.ts's PrivacyLive), reloaded on the privacy events it depends on. */
export function createPrivacyLive(deps: LiveDeps): LivePrivacy {
  let schemas: SchemaState = { matcher: null };
  let subjects: SubjectState = { deviceSubject: new Map(), consents: new Map(), restricted: new Set() };
  let stopEvents: (() => void)[] = [];
  let started = false;
  const reloadSchemas = serialised(
    async () => {
      schemas = await loadSchemas(deps);
    },
    (err) => deps.onError(err, 'privacy schemas reload'),
  );
  const reloadSubjects = serialised(
    async () => {
      subjects = await loadSubjects(deps);
    },
    (err) => deps.onError(err, 'privacy subjects reload'),
  );
  const reload = async () => {
    if (!started) return;
    await Promise.all([reloadSchemas(), reloadSubjects()]);
  };
  return {
    match: (topic) => schemas.matcher?.match(topic),
    get empty() {
      return schemas.matcher === null;
    },
    subjectOfDevice: (deviceId) => subjects.deviceSubject.get(deviceId) ?? null,
    consent: (subject, purpose) => consentOf(subjects.consents.get(subject), purpose),
    restricted: (subject) => subjects.restricted.has(subject),
    reload,
    async start() {
      if (started) return;
      started = true;
      stopEvents = [
        deps.events.on(schemaEvents, () => void reloadSchemas()),
        deps.events.on(subjectEvents, (entry) => {
          // Another process erased a subject: its data keys are gone, the cached ones must go too.
          if (entry.type === 'privacy.request_completed' && entry.data.kind === 'erasure')
            deps.keys.forgetAll();
          void reloadSubjects();
        }),
      ];
      await reload();
    },
    stop() {
      for (const stop of stopEvents) stop();
      stopEvents = [];
      started = false;
    },
  };
}
