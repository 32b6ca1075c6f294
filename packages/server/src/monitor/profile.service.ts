import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import {
  attachmentKinds,
  builtinDetectors,
  profileDocumentSchema,
  type AttachmentKind,
  type BuiltinDetector,
  type SecurityProfile,
} from './profile.ts';

const profileName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'profile names are a-z 0-9 _ . - (up to 64)');

/** Zod issues as one readable line: `behaviours.0.threshold: …`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`)
    .join('; ');
}

/** Parses a stored or submitted document; the built-ins it sets explicitly are remembered for merging. */
export function parseProfileDocument(input: unknown) {
  const parsed = profileDocumentSchema.safeParse(input);
  if (!parsed.success)
    throw new BulwarkError('validation_failed', `invalid security profile: ${describeIssues(parsed.error)}`);
  const given = (input as { builtins?: Record<string, unknown> }).builtins ?? {};
  const explicitBuiltins = builtinDetectors.filter((d): d is BuiltinDetector => Object.hasOwn(given, d));
  return { document: parsed.data, explicitBuiltins };
}

export interface ProfileServiceDeps {
  db: Db;
  events: Pick<EventBus, 'subscribe' | 'atomically'>;
  now: () => number;
}

const PROFILE_EVENTS = new Set([
  'monitor.profile_updated',
  'monitor.profile_deleted',
  'monitor.profile_attached',
  'monitor.profile_detached',
]);

/** Security profiles (behaviours, built-in detector settings, responses) and where they are attached. */
export function createProfileService(deps: ProfileServiceDeps) {
  const { db, events, now } = deps;
  let cache: Promise<SecurityProfile[]> | undefined;
  const listeners = new Set<() => void>();
  // Changes from this process or, through the audit-log tail, from any other (CLI, other nodes).
  events.subscribe((entry) => {
    if (!PROFILE_EVENTS.has(entry.type)) return;
    cache = undefined;
    for (const l of listeners) l();
  });

  async function load(): Promise<SecurityProfile[]> {
    const [rows, attachments] = await Promise.all([
      db.selectFrom('security_profiles').selectAll().orderBy('name').execute(),
      db.selectFrom('security_profile_attachments').selectAll().execute(),
    ]);
    return rows.map((row) => {
      const raw = JSON.parse(row.document) as unknown;
      const { document, explicitBuiltins } = parseProfileDocument(raw);
      return {
        id: row.id,
        name: row.name,
        version: row.version,
        document,
        explicitBuiltins,
        attachments: attachments
          .filter((a) => a.profile_id === row.id)
          .map((a) => ({ kind: a.kind as AttachmentKind, target: a.target })),
        updatedAt: Number(row.updated_at),
        updatedBy: row.updated_by,
      };
    });
  }

  const list = () =>
    (cache ??= load().catch((err: unknown) => {
      cache = undefined;
      throw err;
    }));

  async function find(name: string): Promise<SecurityProfile> {
    const profile = (await list()).find((p) => p.name === name);
    if (!profile) throw new BulwarkError('not_found', `no security profile ${name}`);
    return profile;
  }

  return {
    list,
    get: find,
    onChange(listener: () => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    /** Creates or replaces a profile (a new version); the document is stored as given, validated. */
    async put(name: string, input: unknown, actor: string): Promise<SecurityProfile> {
      const n = profileName.safeParse(name);
      if (!n.success) throw new BulwarkError('validation_failed', describeIssues(n.error));
      const { document } = parseProfileDocument(input);
      const at = now();
      await events.atomically(async (tx, emit) => {
        const existing = await tx
          .selectFrom('security_profiles')
          .selectAll()
          .where('name', '=', name)
          .executeTakeFirst();
        const version = (existing?.version ?? 0) + 1;
        if (existing)
          await tx
            .updateTable('security_profiles')
            .set({ document: JSON.stringify(input), version, updated_at: at, updated_by: actor })
            .where('id', '=', existing.id)
            .execute();
        else
          await tx
            .insertInto('security_profiles')
            .values({
              id: randomUUID(),
              name,
              document: JSON.stringify(input),
              version,
              created_at: at,
              updated_at: at,
              updated_by: actor,
            })
            .execute();
        emit({
          type: 'monitor.profile_updated',
          actor,
          subject: subjectOf.profile(name),
          data: { version, behaviours: document.behaviours.length },
        });
      });
      cache = undefined;
      return find(name);
    },

    async remove(name: string, actor: string): Promise<void> {
      const profile = await find(name);
      await events.atomically(async (tx, emit) => {
        await tx.deleteFrom('security_profile_attachments').where('profile_id', '=', profile.id).execute();
        await tx.deleteFrom('security_profiles').where('id', '=', profile.id).execute();
        emit({
          type: 'monitor.profile_deleted',
          actor,
          subject: subjectOf.profile(name),
          data: { version: profile.version },
        });
      });
      cache = undefined;
    },

    async attach(
      name: string,
      attachment: { kind: string; target: string; detach?: boolean },
      actor: string,
    ): Promise<SecurityProfile> {
      const { kind, target, detach = false } = attachment;
      if (!(attachmentKinds as readonly string[]).includes(kind))
        throw new BulwarkError('validation_failed', `attach to one of ${attachmentKinds.join(', ')}`);
      const t = kind === 'all' ? '*' : target;
      if (!/^[A-Za-z0-9*][A-Za-z0-9_.:-]{0,63}$/.test(t))
        throw new BulwarkError('validation_failed', 'target must be a group, zone or device id');
      const profile = await find(name);
      await events.atomically(async (tx, emit) => {
        if (detach)
          await tx
            .deleteFrom('security_profile_attachments')
            .where('profile_id', '=', profile.id)
            .where('kind', '=', kind)
            .where('target', '=', t)
            .execute();
        else if (!profile.attachments.some((a) => a.kind === kind && a.target === t))
          await tx
            .insertInto('security_profile_attachments')
            .values({ profile_id: profile.id, kind, target: t, created_at: now() })
            .execute();
        emit({
          type: detach ? 'monitor.profile_detached' : 'monitor.profile_attached',
          actor,
          subject: subjectOf.profile(name),
          data: { kind, target: t },
        });
      });
      cache = undefined;
      return find(name);
    },
  };
}

export type ProfileService = ReturnType<typeof createProfileService>;
