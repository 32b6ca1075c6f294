import type { AuditEntry, EventBus, SubjectData } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db, Tx } from '../store/index.ts';
import type { PrivacyKeys } from './keys.ts';
import type { PrivacyLive } from './privacy.live.ts';

export type { PrivacyLive } from './privacy.live.ts';

/** Settings of the privacy module (config `privacy`), read once and passed down. */
export interface PrivacySettings {
  /** The period of a pseudonymisation key: tokens of one subject are equal within it. */
  pseudonymKeyPeriodMs: number;
  /** Past periods whose keys are kept (older ones are deleted: their tokens become unlinkable). */
  pseudonymKeysKept: number;
  /** GDPR Art. 12(3): a request is answered within one month. */
  requestDeadlineDays: number;
  retentionIntervalMs: number;
  requestCheckIntervalMs: number;
  /** The controller named in the record of processing activities (GDPR Art. 30(1)(a)). */
  controller: { name: string | null; contact: string | null };
}

/** A store that keeps classified messages (telemetry, retained): retention per data schema. */
export interface ClassifiedStore {
  /** The store's name in events and results (`telemetry`, `retained`). */
  readonly store: string;
  /** Deletes the messages of a data schema received before `before`; resolves with how many. */
  deleteForSchema(schema: string, before: number): Promise<number>;
}

/** A stored message of a data schema, for de-identified exports (k-anonymity). */
export interface TelemetryRow {
  subjectId: string | null;
  deviceId: string;
  receivedAt: number;
  /** The payload in the form the schema keeps. */
  payload: Buffer;
}

/** Audit entries naming a subject or actor (the audit log's query), oldest first, paged with `after`. */
export interface AuditFilter {
  subject?: string | undefined;
  actor?: string | undefined;
  after?: number | undefined;
  limit: number;
}

/** An app as privacy sees it (the record of processing activities: who receives what, for which purpose). */
export interface PrivacyApp {
  name: string;
  purpose: string | null;
  status: string;
  grants: string[];
}

/** What other modules hold about data subjects, read through their doors (late-bound: built after privacy). */
export interface PrivacySources {
  /** SubjectData handles `{kind:'person'}` (rows by subject id) and `{kind:'device'}`. */
  telemetry: SubjectData & ClassifiedStore;
  /** The broker's retained messages (server only). */
  retained?: SubjectData & ClassifiedStore;
  devices: SubjectData;
  users: SubjectData;
  /** Other modules' records about a person, by subject id (the physical sites' access records). */
  persons?: readonly SubjectData[];
  apps: { list(): Promise<PrivacyApp[]> };
  audit: {
    query(filter: AuditFilter): Promise<AuditEntry[]>;
    /** Deletes the personal values the audit log holds for these owners (`person:X`, `user:Y`). */
    erasePersonal(owners: readonly string[]): Promise<number>;
  };
  telemetryRows(q: { schema: string; from?: number; to?: number; limit: number }): Promise<TelemetryRow[]>;
  /** The telemetry store's patterns and their retention (the compliance facts). */
  telemetryPatterns?: (() => Promise<{ pattern: string; retentionMs: number }[]>) | undefined;
}

export interface PrivacyDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically' | 'on'>;
  now: () => number;
  box: SecretBox;
  settings: PrivacySettings;
  /** Late-bound: the other modules are built after privacy. */
  sources: () => PrivacySources;
  /** Existence checks for links (devices and users door), late-bound like the sources. */
  exists?: {
    device(id: string): Promise<boolean>;
    user(username: string): Promise<boolean>;
  };
  /** Background work failed (a reload, retention, the overdue check, key rotation). */
  onError?: (err: unknown, what: string) => void;
  /**
   * After an erasure: leave no copy of what was deleted readable on disk (the store's compact(): SQLite's WAL
   * checkpointed and truncated). Resolves false when it could not finish (a reader held the WAL).
   */
  compactAfterErasure?: () => Promise<boolean>;
}

/** What the privacy module's use cases share. */
export interface PrivacyContext {
  db: Db;
  events: PrivacyDeps['events'];
  now: () => number;
  box: SecretBox;
  settings: PrivacySettings;
  sources(): PrivacySources;
  keys: PrivacyKeys;
  live: PrivacyLive;
  exists?: PrivacyDeps['exists'];
  onError: (err: unknown, what: string) => void;
  compactAfterErasure?: PrivacyDeps['compactAfterErasure'];
}

/** The transaction handle of `events.atomically`. */
export type { Tx };
