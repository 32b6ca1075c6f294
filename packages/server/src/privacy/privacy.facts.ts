import { covers } from '../policy/index.ts';
import { fieldPlans } from './data-schema.ts';
import type { PrivacyContext } from './privacy.context.ts';
import * as store from './privacy.store.ts';

/**
 * The privacy module's compliance facts (the `privacy` source of the compliance engine; GDPR Art. 5(1)(e)
 * storage limitation, Art. 12(3) request deadlines, Art. 30 the controller; ETSI EN 303 645 6): personal
 * fields per data schema, open data-subject requests, the controller, and what the telemetry store keeps.
 */
export interface PrivacyComplianceFacts {
  schemas: {
    name: string;
    topic: string;
    personalFields: { path: string; category: string; retentionMs: number | null; store: string }[];
  }[];
  openRequests: { id: string; kind: string; receivedAt: number; dueAt: number }[];
  controller: { name: string | null; contact: string | null };
  /** Telemetry store patterns, their retention and whether a data schema's topic covers the pattern. */
  telemetryPatterns: { pattern: string; retentionMs: number; classified: boolean }[];
}

async function schemas(ctx: Pick<PrivacyContext, 'db'>): Promise<PrivacyComplianceFacts['schemas']> {
  return (await store.listSchemaRows(ctx.db)).map((row) => {
    const document = store.storedSchema(row);
    return {
      name: row.name,
      topic: row.topic,
      personalFields: fieldPlans(document)
        .filter((f) => f.personal)
        .map((f) => ({ path: f.path, category: f.category, retentionMs: f.retentionMs, store: f.store })),
    };
  });
}

async function openRequests(
  ctx: Pick<PrivacyContext, 'db'>,
): Promise<PrivacyComplianceFacts['openRequests']> {
  const rows = await store.listRequestRows(ctx.db, { status: 'open' });
  return rows
    .map((r) => ({ id: r.id, kind: r.kind, receivedAt: Number(r.received_at), dueAt: Number(r.due_at) }))
    .sort((a, b) => a.dueAt - b.dueAt || a.id.localeCompare(b.id));
}

/**
 * A telemetry pattern is classified when some data schema's topic covers it (the pattern is that topic or a
 * narrower filter): every message it stores then has its fields classified and transformed by that schema.
 */
export function classifiedBy(pattern: string, schemaTopics: readonly string[]): boolean {
  return schemaTopics.some((topic) => covers(topic, pattern));
}

export async function privacyComplianceFacts(
  ctx: Pick<PrivacyContext, 'db' | 'settings' | 'sources'>,
): Promise<PrivacyComplianceFacts> {
  const patternsOf = ctx.sources().telemetryPatterns;
  // Without the telemetry store's patterns the retention checks would pass on nothing: refuse instead.
  if (!patternsOf) throw new Error('privacy has no source for the telemetry patterns (PrivacySources)');
  const [schemaFacts, requests, patterns] = await Promise.all([
    schemas(ctx),
    openRequests(ctx),
    patternsOf(),
  ]);
  const topics = schemaFacts.map((s) => s.topic);
  return {
    schemas: schemaFacts,
    openRequests: requests,
    controller: { name: ctx.settings.controller.name, contact: ctx.settings.controller.contact },
    telemetryPatterns: patterns.map((p) => ({
      pattern: p.pattern,
      retentionMs: p.retentionMs,
      classified: classifiedBy(p.pattern, topics),
    })),
  };
}
