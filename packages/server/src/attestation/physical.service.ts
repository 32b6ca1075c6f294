import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { api, BulwarkError, durationMs, subjectIdPattern } from '@bulwark/protocol';
import { subjectOf, type EventBus, type Subject, type SubjectData } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import * as store from './physical.store.ts';

/**
 * Physical sites and who may access them (issue 17, docs/physical-security.md): each site has an owner who
 * answers for its access list, the device groups located there, and one record per person allowed in, with a
 * date by which the owner reviews it again. The records are the evidence of the physical access control the
 * standards ask for (NIST SP 800-82 PE-3); the compliance check physical.site-access-reviewed reads
 * complianceFacts(). `person` is personal data: sealed in the audit log (the event catalog says so) and
 * answered to data-subject requests.
 */

export type SiteView = z.infer<typeof api.attestation.site>;
export type SiteAccessView = z.infer<typeof api.attestation.siteAccess>;

/** Epoch ms, a duration from now (`90d`), a date `YYYY-MM-DD` (the end of that day, UTC) or an ISO date-time. */
export type WhenInput = number | string;

export interface SiteInput {
  owner: string;
  description?: string | undefined;
  groups?: readonly string[] | undefined;
}

export interface GrantInput {
  person: string;
  /** The person's privacy data-subject id, when they have one. */
  subject?: string | undefined;
  role?: string | undefined;
  reviewAt: WhenInput;
  expiresAt?: WhenInput | undefined;
}

export interface RevokeInput {
  /** The access record's id. */
  id: string;
  reason: string;
}

export interface PhysicalSiteFacts {
  name: string;
  owner: string;
  groups: string[];
  /** Access records in force (not expired). */
  access: number;
  /** Records in force whose review date has passed. */
  overdueReviews: number;
  /** Records past their expiry still on file (they grant nothing; revoke them). */
  expired: number;
  /** The overdue records (id, role, review date; never the person), at most 20. */
  overdue: { id: string; role: string | null; reviewAt: number }[];
}

export interface PhysicalComplianceFacts {
  sites: PhysicalSiteFacts[];
  /** Device groups located at no site; present only when the platform tells the groups there are. */
  groupsWithoutSite?: string[];
}

export interface PhysicalSitesDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  /** The device groups there are (devices door), for groupsWithoutSite; left out, the fact is absent. */
  deviceGroups?: () => Promise<readonly string[]>;
}

export interface PhysicalSites {
  /** Every site with its access records, by name. */
  list(): Promise<SiteView[]>;
  get(name: string): Promise<SiteView>;
  /** Creates or changes a site; an unchanged one records nothing. */
  put(name: string, input: SiteInput, actor: string): Promise<SiteView>;
  grant(site: string, input: GrantInput, actor: string): Promise<SiteAccessView>;
  /** Removes one access record of the site; `removed: false` when it has no such record. */
  revoke(site: string, input: RevokeInput, actor: string): Promise<{ removed: boolean }>;
  complianceFacts(): Promise<PhysicalComplianceFacts>;
  /** Access records naming a person (`person:<name>`, as the owner recorded it). */
  subjectData: SubjectData;
}

/** Bounded before allocated: the list answers every site with every record. */
export const MAX_SITES = 1000;
export const MAX_ACCESS_PER_SITE = 1000;
const MAX_OVERDUE_LISTED = 20;

const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T/;

const invalid = (message: string) => new BulwarkError('validation_failed', message);

/** Text that must be there (trimmed), at most `max` characters. */
function text(value: string, field: string, max: number): string {
  const trimmed = value.trim();
  if (trimmed.length === 0) throw invalid(`${field}: required`);
  if (trimmed.length > max) throw invalid(`${field}: at most ${max} characters (${trimmed.length} given)`);
  return trimmed;
}

/** Optional text: blank is none. */
function optionalText(value: string | undefined, field: string, max: number): string | null {
  return value === undefined || value.trim() === '' ? null : text(value, field, max);
}

function siteName(name: string): string {
  if (!SITE_NAME.test(name))
    throw invalid(`site "${name}": names are 1-64 of A-Z a-z 0-9 _ . - (a letter or digit first)`);
  return name;
}

/** Groups as a set: trimmed, without duplicates, sorted (so the same set is the same site). */
function groupList(groups: readonly string[] | undefined): string[] {
  const given = groups ?? [];
  if (given.length > 256) throw invalid(`groups: at most 256 (${given.length} given)`);
  const names = given.map((g, i) => text(g, `groups[${i}]`, 64));
  return [...new Set(names)].sort();
}

/** The moment a WhenInput names (see WhenInput); the error names the field and the forms accepted. */
export function resolveWhen(value: WhenInput, field: string, now: number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw invalid(`${field}: epoch milliseconds, not ${value}`);
    return value;
  }
  const trimmed = value.trim();
  const duration = durationMs(trimmed);
  if (duration !== undefined) return now + duration;
  const ms = DATE_TIME.test(trimmed) ? Date.parse(trimmed) : api.compliance.endOfDayUtc(trimmed);
  if (!Number.isSafeInteger(ms))
    throw invalid(
      `${field}: "${value}" is neither a duration from now (90d, 12h) nor a date (YYYY-MM-DD, ISO 8601)`,
    );
  return ms;
}

function toAccess(row: store.AccessRow): SiteAccessView {
  return {
    id: row.id,
    site: row.site,
    person: row.person,
    subject: row.subject,
    role: row.role,
    grantedBy: row.granted_by,
    grantedAt: Number(row.granted_at),
    reviewAt: Number(row.review_at),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
  };
}

const groupsOf = (row: store.SiteRow) => z.array(z.string()).parse(JSON.parse(row.groups));

function toSite(row: store.SiteRow, access: readonly store.AccessRow[]): SiteView {
  return {
    name: row.name,
    description: row.description,
    owner: row.owner,
    groups: groupsOf(row),
    updatedAt: Number(row.updated_at),
    updatedBy: row.updated_by,
    access: access.map(toAccess),
  };
}

function byName(access: readonly store.AccessRow[]): Map<string, store.AccessRow[]> {
  const out = new Map<string, store.AccessRow[]>();
  for (const row of access) out.set(row.site, [...(out.get(row.site) ?? []), row]);
  return out;
}

async function list(deps: PhysicalSitesDeps): Promise<SiteView[]> {
  const [sites, access] = await Promise.all([store.listSiteRows(deps.db), store.listAccessRows(deps.db)]);
  const bySite = byName(access);
  return sites.map((s) => toSite(s, bySite.get(s.name) ?? []));
}

async function get(deps: PhysicalSitesDeps, name: string): Promise<SiteView> {
  const row = await store.getSiteRow(deps.db, name);
  if (!row) throw new BulwarkError('not_found', `no site "${name}"`);
  return toSite(row, await store.listAccessRows(deps.db, name));
}

const sameSite = (a: store.SiteRow, b: store.SiteRow) =>
  a.owner === b.owner && a.description === b.description && a.groups === b.groups;

async function put(
  deps: PhysicalSitesDeps,
  { name, input, actor }: { name: string; input: SiteInput; actor: string },
) {
  const row: store.SiteRow = {
    name: siteName(name),
    owner: text(input.owner, 'owner', 128),
    description: optionalText(input.description, 'description', 1000),
    groups: JSON.stringify(groupList(input.groups)),
    updated_at: deps.now(),
    updated_by: actor,
  };
  await deps.events.atomically(async (tx, emit) => {
    const before = await store.getSiteRow(tx, row.name);
    if (before && sameSite(before, row)) return;
    if (!before && (await store.countSites(tx)) >= MAX_SITES)
      throw new BulwarkError('conflict', `at most ${MAX_SITES} sites: remove one first`);
    await store.upsertSiteRow(tx, row);
    emit({
      type: 'physical.site_updated',
      actor,
      subject: subjectOf.site(row.name),
      data: { owner: row.owner, groups: groupsOf(row), created: !before },
    });
  });
  return get(deps, row.name);
}

/** The access record to insert: every refusal names the field, before anything is written. */
/** A data-subject id as privacy's subjects have them (the same pattern), or null when none is given. */
function subjectOrNull(value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!subjectIdPattern.test(value))
    throw invalid(`subject: "${value}" is not a subject id (1-128 of A-Z a-z 0-9 _ . @ + -, no spaces)`);
  return value;
}

function accessRow(now: number, { site, input, actor }: GrantArgs): store.AccessRow {
  const reviewAt = resolveWhen(input.reviewAt, 'reviewAt', now);
  const expiresAt = input.expiresAt === undefined ? null : resolveWhen(input.expiresAt, 'expiresAt', now);
  if (reviewAt <= now) throw invalid('reviewAt: must be in the future');
  if (expiresAt !== null && expiresAt <= now) throw invalid('expiresAt: must be in the future');
  if (expiresAt !== null && reviewAt > expiresAt) throw invalid('reviewAt: must not be after expiresAt');
  return {
    id: randomUUID(),
    site,
    person: text(input.person, 'person', 128),
    subject: subjectOrNull(input.subject),
    role: optionalText(input.role, 'role', 64),
    granted_by: actor,
    granted_at: now,
    review_at: reviewAt,
    expires_at: expiresAt,
  };
}

/** Who an access event names: the person, unless the record is linked to a data subject (then no one). */
function whoIn(row: Pick<store.AccessRow, 'person' | 'subject'>): { person?: string } {
  return row.subject === null ? { person: row.person } : {};
}

interface GrantArgs {
  site: string;
  input: GrantInput;
  actor: string;
}

async function grant(deps: PhysicalSitesDeps, args: GrantArgs) {
  const { site, actor } = args;
  const row = accessRow(deps.now(), args);
  await deps.events.atomically(async (tx, emit) => {
    if (!(await store.getSiteRow(tx, site))) throw new BulwarkError('not_found', `no site "${site}"`);
    if ((await store.countAccess(tx, site)) >= MAX_ACCESS_PER_SITE)
      throw new BulwarkError(
        'conflict',
        `site ${site} has ${MAX_ACCESS_PER_SITE} access records: revoke some first`,
      );
    await store.insertAccessRow(tx, row);
    emit({
      type: 'physical.access_granted',
      actor,
      subject: subjectOf.site(site),
      data: {
        accessId: row.id,
        ...whoIn(row),
        role: row.role,
        reviewAt: row.review_at,
        expiresAt: row.expires_at,
      },
    });
  });
  return toAccess(row);
}

interface RevokeArgs {
  site: string;
  id: string;
  reason: string;
  actor: string;
}

async function revoke(deps: PhysicalSitesDeps, { site, id, actor, ...args }: RevokeArgs) {
  const reason = text(args.reason, 'reason', 256);
  return deps.events.atomically(async (tx, emit) => {
    if (!(await store.getSiteRow(tx, site))) throw new BulwarkError('not_found', `no site "${site}"`);
    const row = await store.getAccessRow(tx, site, id);
    if (!row || !(await store.deleteAccessRow(tx, row.id))) return { removed: false };
    emit({
      type: 'physical.access_revoked',
      actor,
      subject: subjectOf.site(site),
      data: { accessId: row.id, ...whoIn(row), reason },
    });
    return { removed: true };
  });
}

function siteFacts(site: SiteView, now: number): PhysicalSiteFacts {
  const inForce = site.access.filter((a) => a.expiresAt === null || a.expiresAt > now);
  const overdue = inForce.filter((a) => a.reviewAt <= now);
  return {
    name: site.name,
    owner: site.owner,
    groups: site.groups,
    access: inForce.length,
    overdueReviews: overdue.length,
    expired: site.access.length - inForce.length,
    overdue: overdue
      .slice(0, MAX_OVERDUE_LISTED)
      .map((a) => ({ id: a.id, role: a.role, reviewAt: a.reviewAt })),
  };
}

async function complianceFacts(deps: PhysicalSitesDeps): Promise<PhysicalComplianceFacts> {
  const now = deps.now();
  const sites = (await list(deps)).map((s) => siteFacts(s, now));
  if (!deps.deviceGroups) return { sites };
  const located = new Set(sites.flatMap((s) => s.groups));
  const groups = await deps.deviceGroups();
  return { sites, groupsWithoutSite: groups.filter((g) => !located.has(g)) };
}

/**
 * A person's access records (module `physical-sites`): exported as recorded, erased by deletion, each with
 * its `physical.access_revoked` (naming no one) in the same transaction.
 */
function subjectData(deps: PhysicalSitesDeps): SubjectData {
  return {
    module: 'physical-sites',
    async exportSubject(subject: Subject) {
      if (subject.kind !== 'person') return [];
      const rows = await store.accessRowsOfPerson(deps.db, subject.id);
      return rows.map((r) => ({ record: 'site_access', ...toAccess(r) }));
    },
    async eraseSubject(subject: Subject, actor: string) {
      if (subject.kind !== 'person') return { erased: 0 };
      return deps.events.atomically(async (tx, emit) => {
        const rows = await store.accessRowsOfPerson(tx, subject.id);
        for (const row of rows) {
          await store.deleteAccessRow(tx, row.id);
          emit({
            type: 'physical.access_revoked',
            actor,
            subject: subjectOf.site(row.site),
            data: { accessId: row.id, reason: 'data-subject erasure' },
          });
        }
        return { erased: rows.length };
      });
    },
  };
}

/** The physical sites service over its deps (see PhysicalSites). */
export function createPhysicalSites(deps: PhysicalSitesDeps): PhysicalSites {
  return {
    list: () => list(deps),
    get: (name) => get(deps, name),
    put: (name, input, actor) => put(deps, { name, input, actor }),
    grant: (site, input, actor) => grant(deps, { site, input, actor }),
    revoke: (site, input, actor) => revoke(deps, { site, ...input, actor }),
    complianceFacts: () => complianceFacts(deps),
    subjectData: subjectData(deps),
  };
}
