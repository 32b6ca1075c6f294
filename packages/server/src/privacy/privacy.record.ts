import { purposeAllowed, type DataSchema } from '@bulwark/protocol';
import { intersects, parseGrant } from '../policy/index.ts';
import { describeTransform, fieldPlans, type FieldPlan } from './data-schema.ts';
import type { PrivacyApp, PrivacyContext } from './privacy.context.ts';
import { schemaRetentionMs } from './privacy.retention.ts';
import { listSchemaRows, storedSchema } from './privacy.store.ts';

/**
 * The record of processing activities (GDPR Art. 30(1)), generated from what Bulwark enforces: one activity
 * per data schema, with its purposes, the categories of data subjects and of personal data, the recipients
 * (the apps whose grants receive the topic, and whether each field reaches them in clear or transformed),
 * the time limits for erasure (retention), transfers and the security measures (Art. 32).
 */

export interface RecordField {
  path: string;
  category: string;
  personal: boolean;
  special: boolean;
  specialCondition: string | null;
  /** The purposes that receive the clear value; null: every consumer. */
  purposes: string[] | null;
  lawfulBasis: string | null;
  /** As the schema writes it (`30d`); null: none (kept as long as the store keeps messages). */
  retention: string | null;
  retentionMs: number | null;
  /** What a consumer whose purpose is not allowed receives. */
  transform: string;
  /** What Bulwark keeps: clear, transformed or none. */
  store: FieldPlan['store'];
  quasiIdentifier: boolean;
}

export interface RecordRecipient {
  app: string;
  purpose: string | null;
  status: string;
  /** The app's grants that receive the topic. */
  grants: string[];
  /** Per field: `clear`, `dropped`, `transformed (…)`, or clear only with the subject's consent. */
  fields: { path: string; receives: string }[];
}

export interface ProcessingActivity {
  name: string;
  topic: string;
  description: string | null;
  /** Art. 30(1)(b): the union of the fields' purposes; `every purpose` when a field is not limited. */
  purposes: string[];
  /** Art. 30(1)(c): categories of data subjects (fideslang data subjects). */
  dataSubjects: string[];
  /** Art. 30(1)(c): categories of personal data. */
  personalDataCategories: string[];
  fields: RecordField[];
  /** Art. 30(1)(d). */
  recipients: RecordRecipient[];
  /** Art. 30(1)(f): the retention of the schema's messages (the shortest of its kept fields). */
  retention: { ms: number | null; text: string };
  /** Art. 30(1)(e). */
  transfers: string;
  /** Art. 30(1)(g), Art. 32. */
  securityMeasures: string[];
}

export interface ProcessingRecord {
  controller: { name: string | null; contact: string | null };
  generatedAt: number;
  activities: ProcessingActivity[];
}

const EVERY_PURPOSE = 'every purpose';
const TRANSFERS = 'none: Bulwark is self-hosted; data leaves it only to the recipients listed';
const BASE_MEASURES = [
  'TLS 1.2 or later on every listener; devices and apps authenticate with mutual TLS or tokens',
  'least privilege per message: every publish, subscribe and delivery is checked against policy',
  'encryption at rest of secrets (keys wrapped with the installation master key)',
  'tamper-evident audit log (hash chain) of every security-relevant event; personal values sealed and erasable',
];

function recordField(schema: DataSchema, plan: FieldPlan): RecordField {
  return {
    path: plan.path,
    category: plan.category,
    personal: plan.personal,
    special: plan.special,
    specialCondition: plan.specialCondition,
    purposes: plan.uses ? [...plan.uses] : null,
    lawfulBasis: plan.lawfulBasis,
    retention: schema.fields[plan.path]?.retention ?? null,
    retentionMs: plan.retentionMs,
    transform: describeTransform(plan.transform),
    store: plan.store,
    quasiIdentifier: plan.quasiIdentifier,
  };
}

/** What one field reaches an app as (as the broker's transform stage decides for its purpose). */
function receivesAs(plan: FieldPlan, purpose: string | null): string {
  const otherwise =
    plan.transform === 'drop'
      ? 'dropped'
      : plan.transform === 'none'
        ? 'clear'
        : `transformed (${describeTransform(plan.transform)})`;
  // As transforms.ts decides: no purpose, no clear value; a consent basis needs the subject's consent.
  if (purpose === null || (plan.uses !== null && !purposeAllowed(purpose, plan.uses))) return otherwise;
  return plan.lawfulBasis === 'consent' ? `clear with the subject's consent, else ${otherwise}` : 'clear';
}

/** The apps whose grants receive the schema's topic, with what each field reaches them as. */
function recipientsOf(
  topic: string,
  plans: readonly FieldPlan[],
  apps: readonly PrivacyApp[],
): RecordRecipient[] {
  const recipients: RecordRecipient[] = [];
  for (const app of apps) {
    // A revoked app connects no more: it receives nothing.
    if (app.status === 'revoked') continue;
    const grants = app.grants.filter((text) => {
      const parsed = parseGrant(text);
      if (!parsed.ok || !parsed.statement.actions.includes('mqtt:receive')) return false;
      return parsed.statement.resources.some((filter) => intersects(filter, topic));
    });
    if (grants.length === 0) continue;
    recipients.push({
      app: app.name,
      purpose: app.purpose,
      status: app.status,
      grants,
      fields: plans.map((p) => ({ path: p.path, receives: receivesAs(p, app.purpose) })),
    });
  }
  return recipients;
}

function measuresOf(plans: readonly FieldPlan[]): string[] {
  const per = (what: string, test: (p: FieldPlan) => boolean) => {
    const paths = plans.filter(test).map((p) => p.path);
    return paths.length > 0 ? [`${what}: ${paths.join(', ')}`] : [];
  };
  return [
    ...BASE_MEASURES,
    ...per('pseudonymisation (keyed HMAC, rotating key)', (p) => p.transform === 'pseudonymise'),
    ...per(
      'encryption per data subject (AES-256-GCM; erasure destroys the key)',
      (p) => p.transform === 'encrypt',
    ),
    ...per('generalisation', (p) => typeof p.transform === 'object'),
    ...per('minimisation (dropped for consumers without the purpose)', (p) => p.transform === 'drop'),
    ...per('not stored', (p) => p.store === 'none'),
  ];
}

function activityOf(schema: DataSchema, apps: readonly PrivacyApp[]): ProcessingActivity {
  const plans = fieldPlans(schema);
  const purposes = new Set<string>();
  for (const p of plans) for (const use of p.uses ?? [EVERY_PURPOSE]) purposes.add(use);
  const retentionMs = schemaRetentionMs(schema) ?? null;
  const shortest = plans.find(
    (p) => p.store !== 'none' && p.retentionMs === retentionMs && retentionMs !== null,
  );
  return {
    name: schema.name,
    topic: schema.topic,
    description: schema.description ?? null,
    purposes: [...purposes].sort(),
    dataSubjects: [schema.subject.kind],
    personalDataCategories: [...new Set(plans.filter((p) => p.personal).map((p) => p.category))].sort(),
    fields: plans.map((p) => recordField(schema, p)),
    recipients: recipientsOf(schema.topic, plans, apps),
    retention: {
      ms: retentionMs,
      text:
        shortest === undefined
          ? 'no field sets a retention: messages are kept as long as the telemetry store keeps them'
          : `${schema.fields[shortest.path]?.retention ?? `${retentionMs} ms`}, then deleted by the retention job`,
    },
    transfers: TRANSFERS,
    securityMeasures: measuresOf(plans),
  };
}

/** The record of processing activities (GDPR Art. 30), as JSON. */
export async function processingRecord(ctx: PrivacyContext): Promise<ProcessingRecord> {
  const [rows, apps] = await Promise.all([listSchemaRows(ctx.db), ctx.sources().apps.list()]);
  return {
    controller: { ...ctx.settings.controller },
    generatedAt: ctx.now(),
    activities: rows.map((row) => activityOf(storedSchema(row), apps)),
  };
}

// ---------------------------------------------------------------------------------------------------------
// HTML: one self-contained page (no external assets, no scripts), every value escaped.

type Cell = string | number | boolean | null | undefined;

const escapeHtml = (value: Cell): string =>
  String(value ?? '—').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

const row = (cells: readonly Cell[], tag = 'td') =>
  `<tr>${cells.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join('')}</tr>`;

const table = (head: readonly string[], rows: readonly (readonly Cell[])[]) =>
  `<table><thead>${row(head, 'th')}</thead><tbody>${rows.map((r) => row(r)).join('')}</tbody></table>`;

function fieldsTable(fields: readonly RecordField[]): string {
  return table(
    [
      'Field',
      'Category',
      'Personal',
      'Special (Art. 9)',
      'Purposes',
      'Lawful basis',
      'Retention',
      'Others receive',
      'Kept',
    ],
    fields.map((f) => [
      f.path,
      f.category,
      f.personal ? 'yes' : 'no',
      f.special ? `yes (${f.specialCondition ?? '—'})` : 'no',
      f.purposes === null ? 'every consumer' : f.purposes.join(', '),
      f.lawfulBasis,
      f.retention ?? 'none',
      f.transform,
      f.store,
    ]),
  );
}

function recipientsTable(recipients: readonly RecordRecipient[]): string {
  if (recipients.length === 0) return '<p>No application receives this topic.</p>';
  return table(
    ['Application', 'Purpose', 'Status', 'Grants', 'Receives'],
    recipients.map((r) => [
      r.app,
      r.purpose ?? 'none declared',
      r.status,
      r.grants.join('; '),
      r.fields.map((f) => `${f.path}: ${f.receives}`).join('; '),
    ]),
  );
}

function activityHtml(a: ProcessingActivity): string {
  const facts: [string, Cell][] = [
    ['Topic', a.topic],
    ['Description', a.description],
    ['Purposes', a.purposes.join(', ')],
    ['Categories of data subjects', a.dataSubjects.join(', ')],
    ['Categories of personal data', a.personalDataCategories.join(', ') || 'none'],
    ['Retention', a.retention.text],
    ['Transfers to third countries', a.transfers],
  ];
  return [
    `<section><h2>${escapeHtml(a.name)}</h2>`,
    `<dl>${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>`,
    `<h3>Data</h3>${fieldsTable(a.fields)}`,
    `<h3>Recipients</h3>${recipientsTable(a.recipients)}`,
    `<h3>Security measures</h3><ul>${a.securityMeasures.map((m) => `<li>${escapeHtml(m)}</li>`).join('')}</ul>`,
    '</section>',
  ].join('\n');
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:2rem;color:#111}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #bbb;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}th{background:#eee}
dt{font-weight:600}dd{margin:0 0 .4rem 0}section{margin-bottom:2.5rem}`;

/** The record as one self-contained HTML page (a table per activity). */
export function processingRecordHtml(record: ProcessingRecord): string {
  const controller = [record.controller.name, record.controller.contact].filter((v) => v !== null).join(', ');
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    // No scripts, no external assets: a page an auditor can open offline.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<title>Record of processing activities (GDPR Art. 30)</title>',
    `<style>${STYLE}</style></head><body>`,
    '<h1>Record of processing activities (GDPR Art. 30)</h1>',
    `<p>Controller: ${escapeHtml(controller || 'not configured (privacy.controller)')}. Generated ${escapeHtml(new Date(record.generatedAt).toISOString())} by Bulwark from its data schemas, applications and retention.</p>`,
    record.activities.length === 0
      ? '<p>No data schema is defined.</p>'
      : record.activities.map(activityHtml).join('\n'),
    '</body></html>',
    '',
  ].join('\n');
}
