import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import {
  FEED_MAX_BYTES,
  feedText,
  kevJson,
  parseEpss,
  parseKev,
  scoreDateOfName,
  type EpssFeed,
  type KevCatalog,
} from './feeds.ts';
import { advisoryCves, epssRows, feedFigures, kevRows, replaceEpss, replaceKev } from './feeds.store.ts';

export interface FeedsDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
}

/** A CVE in the KEV catalog: when CISA added it, the remediation due date, and known ransomware use. */
export interface KnownExploited {
  dateAdded: string;
  dueDate: string | null;
  ransomware: boolean;
}

export interface EpssScore {
  score: number;
  percentile: number;
}

/** What the feeds say about one advisory, through the CVE ids it is known by. */
export interface AdvisoryThreat {
  knownExploited: boolean;
  /** The highest EPSS score of its CVE ids; null when none is scored. */
  epss: number | null;
}

export interface FeedsStatus {
  kev: { entries: number; importedAt: number | null };
  epss: { entries: number; importedAt: number | null; scoreDate: string | null };
}

export interface KevImport {
  entries: number;
  version: string;
}

export interface EpssImport {
  entries: number;
  /** The EPSS model version (null when the file does not say). */
  version: string | null;
  scoreDate: string | null;
}

/** For a progress line: rows stored so far, of how many (the import commits only once all are stored). */
export interface ImportOptions {
  onProgress?: ((stored: number, total: number) => void) | undefined;
}

/** Who performs an import and where the feed came from (the event's actor and source). */
interface ImportBy extends ImportOptions {
  actor: string;
  source: string;
}

/** A feed file's bytes, its size checked before it is read (a bigger one is refused naming the limit). */
async function readFeedFile(file: string): Promise<Uint8Array> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new BulwarkError('validation_failed', `${file}: not a file`);
    if (stat.size > FEED_MAX_BYTES)
      throw new BulwarkError(
        'validation_failed',
        `${file}: ${stat.size} bytes, larger than the limit of ${FEED_MAX_BYTES / (1024 * 1024)} MiB`,
      );
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function storeKev(deps: FeedsDeps, catalog: KevCatalog, by: ImportBy) {
  const entries = catalog.entries.length;
  return deps.events.atomically(async (tx, emit): Promise<KevImport> => {
    await replaceKev(tx, catalog.entries, { now: deps.now(), onProgress: by.onProgress });
    emit({
      type: 'risk.feed_imported',
      actor: by.actor,
      subject: subjectOf.feed('kev'),
      data: { feed: 'kev', entries, version: catalog.version, source: by.source },
    });
    return { entries, version: catalog.version };
  });
}

async function storeEpss(deps: FeedsDeps, feed: EpssFeed, by: ImportBy) {
  const entries = feed.rows.length;
  return deps.events.atomically(async (tx, emit): Promise<EpssImport> => {
    await replaceEpss(tx, feed, { now: deps.now(), onProgress: by.onProgress });
    emit({
      type: 'risk.feed_imported',
      actor: by.actor,
      subject: subjectOf.feed('epss'),
      data: { feed: 'epss', entries, version: feed.modelVersion, source: by.source },
    });
    return { entries, version: feed.modelVersion, scoreDate: feed.scoreDate };
  });
}

async function knownExploited(deps: FeedsDeps, cves: readonly string[]) {
  const out = new Map<string, KnownExploited>();
  for (const r of await kevRows(deps.db, cves))
    out.set(r.cve, { dateAdded: r.date_added, dueDate: r.due_date, ransomware: r.ransomware === 'Known' });
  return out;
}

async function epss(deps: FeedsDeps, cves: readonly string[]) {
  const out = new Map<string, EpssScore>();
  for (const r of await epssRows(deps.db, cves))
    out.set(r.cve, { score: Number(r.score), percentile: Number(r.percentile) });
  return out;
}

/** Each advisory's standing in the feeds: known exploited when any of its CVE ids is; its highest EPSS score. */
async function forAdvisories(deps: FeedsDeps, advisoryIds: readonly string[]) {
  const cvesOf = await advisoryCves(deps.db, advisoryIds);
  const all = [...cvesOf.values()].flat();
  const [kev, scores] = await Promise.all([knownExploited(deps, all), epss(deps, all)]);
  const out = new Map<string, AdvisoryThreat>();
  for (const id of advisoryIds) {
    const cves = cvesOf.get(id) ?? [];
    const scored = cves.flatMap((c) => scores.get(c)?.score ?? []);
    out.set(id, {
      knownExploited: cves.some((c) => kev.has(c)),
      epss: scored.length > 0 ? Math.max(...scored) : null,
    });
  }
  return out;
}

/**
 * Offline threat-intelligence feeds (no network): the CISA Known Exploited Vulnerabilities catalog and FIRST's
 * EPSS scores, imported from files or request bodies. Each import is checked whole first, then replaces the
 * feed's table in one transaction with its `risk.feed_imported` event: a refused feed stores nothing and leaves
 * the previous one in place.
 */
export function createFeeds(deps: FeedsDeps) {
  return {
    /** Imports a KEV catalog file (JSON, gzipped or not). */
    async importKev(file: string, actor: string, options: ImportOptions = {}): Promise<KevImport> {
      const catalog = parseKev(kevJson(feedText(await readFeedFile(file), file), file));
      return storeKev(deps, catalog, { actor, source: file, onProgress: options.onProgress });
    },
    /** Imports a KEV catalog already parsed from JSON (an API body). */
    async importKevJson(json: unknown, actor: string, source: string): Promise<KevImport> {
      return storeKev(deps, parseKev(json), { actor, source });
    },
    /**
     * Imports an EPSS file (CSV, or the `.csv.gz` FIRST publishes). Without a `score_date` comment, the day in
     * the file name (`epss_scores-2024-03-01.csv`) is the score date.
     */
    async importEpss(file: string, actor: string, options: ImportOptions = {}): Promise<EpssImport> {
      const feed = parseEpss(feedText(await readFeedFile(file), file));
      const scoreDate = feed.scoreDate ?? scoreDateOfName(path.basename(file));
      return storeEpss(deps, { ...feed, scoreDate }, { actor, source: file, onProgress: options.onProgress });
    },
    /** Imports EPSS CSV text (an API body). */
    async importEpssText(text: string, actor: string, source: string): Promise<EpssImport> {
      return storeEpss(deps, parseEpss(text), { actor, source });
    },
    /** The CVE ids of `cves` in the KEV catalog. */
    knownExploited: (cves: readonly string[]) => knownExploited(deps, cves),
    /** The EPSS scores of the CVE ids of `cves` that are scored. */
    epss: (cves: readonly string[]) => epss(deps, cves),
    /** What the feeds say about advisories (by id), through their CVE id and aliases. */
    forAdvisories: (advisoryIds: readonly string[]) => forAdvisories(deps, advisoryIds),
    /** How many entries each feed holds and when it was imported. */
    status: (): Promise<FeedsStatus> => feedFigures(deps.db),
  };
}

export type Feeds = ReturnType<typeof createFeeds>;
