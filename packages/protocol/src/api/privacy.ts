/**
 * Privacy (docs/privacy.md): data schemas that classify every field of device payloads per topic pattern,
 * data subjects with their devices, users and consents, data-subject requests (GDPR Art. 15-18) with their
 * deadlines, the record of processing activities (Art. 30), de-identified telemetry exports checked for
 * k-anonymity, and decryption of encrypted field values for a purpose the fields allow.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const schemas = api.privacy.listSchemas.response[200].parse(await res.json()); // [{ name, topic, … }]
 * ```
 */
import { z } from 'zod';
import { auditEntry } from './audit.ts';
import { contract, pageOf, pageQuery } from './contract.ts';
import { timeParam } from './telemetry.ts';
import {
  dataSchemaDocumentSchema,
  lawfulBases,
  privacyRequestKinds,
  specialConditions,
  subjectIdPattern,
} from '../privacy.ts';

const tags = ['privacy'] as const;

const purpose = z.string().max(128).describe('a fideslang data use, e.g. analytics.reporting');
/** A data subject's id (privacy's subjects; other modules link records to it). */
export const subjectId = z
  .string()
  .max(128)
  .regex(subjectIdPattern, 'a subject id: 1-128 characters of A-Z a-z 0-9 _ . @ + -, no : ~ / or spaces');

/** A field's effective settings: what the schema says with every default applied. */
export const fieldPlan = z.object({
  path: z.string().describe('a top-level property or a dotted path below one'),
  category: z.string().describe('fideslang data category'),
  personal: z.boolean(),
  special: z.boolean().describe('special-category data (GDPR Art. 9)'),
  specialCondition: z.enum(specialConditions).nullable().describe('the Art. 9(2) condition'),
  uses: z
    .array(z.string())
    .nullable()
    .describe('purposes that receive the clear value; null: every consumer'),
  lawfulBasis: z.enum(lawfulBases).nullable().describe('GDPR Art. 6(1)'),
  retentionMs: z.number().int().nullable(),
  transform: z
    .unknown()
    .describe('what other consumers receive: none, drop, pseudonymise, encrypt, {generalise}'),
  store: z.enum(['clear', 'transformed', 'none']).describe('what Bulwark keeps'),
  quasiIdentifier: z.boolean(),
  description: z.string().nullable(),
});

export const dataSchemaView = z.object({
  name: z.string(),
  topic: z.string().describe('the MQTT topic filter whose payloads it describes'),
  version: z.number().int().describe('1 when created, +1 on every change'),
  document: z
    .record(z.string(), z.unknown())
    .describe('the schema as stored, with defaults applied (the form `put` takes)'),
  fields: z.array(fieldPlan),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  updatedBy: z.string(),
});

const schemaParams = z.object({ name: z.string().max(64) });

export const listSchemas = contract({
  method: 'GET',
  path: '/api/v1/privacy/schemas',
  summary: 'Data schemas: topic patterns whose payloads are validated and whose fields are classified',
  tags,
  access: 'privacy:read',
  response: { 200: z.array(dataSchemaView) },
});

export const showSchema = contract({
  method: 'GET',
  path: '/api/v1/privacy/schemas/:name',
  summary: 'One data schema with the effective settings of each field',
  tags,
  access: 'privacy:read',
  params: schemaParams,
  response: { 200: dataSchemaView },
});

export const putSchema = contract({
  method: 'PUT',
  path: '/api/v1/privacy/schemas/:name',
  summary:
    'Create or replace a data schema (the document of docs/privacy.md; its name, when given, must be the one in the path)',
  tags,
  access: 'privacy:write',
  params: schemaParams,
  body: dataSchemaDocumentSchema.partial({ name: true }),
  response: {
    200: z.object({
      schema: dataSchemaView,
      created: z.boolean(),
      changes: z.array(z.string()).describe('what differs from the previous version, one line each'),
    }),
  },
});

export const removeSchema = contract({
  method: 'DELETE',
  path: '/api/v1/privacy/schemas/:name',
  summary: "Remove a data schema: its topic's payloads are no longer validated nor transformed",
  tags,
  access: 'privacy:write',
  params: schemaParams,
  response: { 200: z.object({ name: z.string(), topic: z.string() }) },
});

export const schemaTestResult = z.object({
  schema: z.string().nullable().describe('the data schema the topic matches; null: none (delivered as is)'),
  valid: z.boolean().describe('false: the broker would refuse the payload'),
  reason: z.string().optional().describe('why it would be refused'),
  subject: z.string().nullable().describe('the data subject the message is about'),
  kept: z.unknown().describe('what the telemetry store and retained messages would keep (null: nothing)'),
  view: z.unknown().describe('what a consumer with this purpose would receive (null: withheld)'),
  note: z
    .string()
    .optional()
    .describe('set when pseudonyms or encrypted values come from throwaway keys, not the stored ones'),
});

export const testSchema = contract({
  method: 'POST',
  path: '/api/v1/privacy/schemas/test',
  summary: 'What the broker would do with a payload on a topic: refuse it, or what it keeps and delivers',
  tags,
  access: 'privacy:read',
  body: z.object({
    topic: z.string().min(1).max(256),
    payload: z.string().max(262_144).describe('the payload as text (usually JSON)'),
    purpose: purpose.nullable().optional().describe("the consumer's purpose; null or omitted: a device"),
    device: z.string().max(64).optional().describe('the publishing device (for its linked subject)'),
  }),
  response: { 200: schemaTestResult },
});

export const consent = z.object({
  purpose: z.string(),
  noticeVersion: z.string().describe('the version of the privacy notice the subject was shown'),
  status: z.enum(['given', 'withdrawn']),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
});

export const requestStatuses = ['open', 'completed', 'rejected'] as const;

export const privacyRequest = z.object({
  id: z.string(),
  subject: z.string().nullable().describe('null once the subject was erased'),
  kind: z.enum(privacyRequestKinds),
  status: z.enum(requestStatuses),
  receivedAt: z.number().int(),
  dueAt: z.number().int().describe('GDPR Art. 12(3): one month after receipt by default'),
  completedAt: z.number().int().nullable(),
  overdueAt: z.number().int().nullable().describe('when it was found past its due date while open'),
  result: z.record(z.string(), z.number()).nullable().describe('counts per module, never the data'),
  note: z.string().nullable(),
  createdBy: z.string(),
});

export const subject = z.object({
  id: z.string(),
  kind: z.string().describe('fideslang data subject, e.g. customer, employee'),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  restrictedAt: z
    .number()
    .int()
    .nullable()
    .describe('GDPR Art. 18: while set, the data is kept but delivered to no one'),
  devices: z.array(z.string()),
  users: z.array(z.string()),
});

export const subjectDetail = subject.extend({
  consents: z.array(consent),
  requests: z.array(privacyRequest),
});

const subjectParams = z.object({ id: z.string().max(128) });
const ids = z.array(z.string().max(64)).max(256);

export const listSubjects = contract({
  method: 'GET',
  path: '/api/v1/privacy/subjects',
  summary: 'Data subjects with their linked devices and users (keyset pagination: pass `next` as `after`)',
  tags,
  access: 'privacy:read',
  query: z.object(pageQuery({ max: 1000, default: 100 })),
  response: { 200: pageOf('subjects', subject) },
});

export const showSubject = contract({
  method: 'GET',
  path: '/api/v1/privacy/subjects/:id',
  summary: 'One data subject: linked devices and users, consents, requests',
  tags,
  access: 'privacy:read',
  params: subjectParams,
  response: { 200: subjectDetail },
});

export const addSubject = contract({
  method: 'POST',
  path: '/api/v1/privacy/subjects',
  summary:
    'Add a data subject (a person, by the id the fleet data names them with) and link devices and users',
  tags,
  access: 'privacy:write',
  body: z.object({
    id: subjectId,
    kind: z.string().max(64).optional().describe('fideslang data subject (default customer)'),
    devices: ids.optional(),
    users: ids.optional().describe('user names'),
  }),
  response: { 201: subjectDetail },
});

export const updateSubject = contract({
  method: 'PATCH',
  path: '/api/v1/privacy/subjects/:id',
  summary: "Link or unlink a data subject's devices and users; lift its restriction (`restricted: false`)",
  tags,
  access: 'privacy:write',
  params: subjectParams,
  body: z.object({
    addDevices: ids.optional(),
    removeDevices: ids.optional(),
    addUsers: ids.optional(),
    removeUsers: ids.optional(),
    restricted: z
      .literal(false)
      .optional()
      .describe('false: lifts the restriction (GDPR Art. 18(3)); a restriction request sets it'),
  }),
  response: { 200: subjectDetail },
});

export const setConsent = contract({
  method: 'POST',
  path: '/api/v1/privacy/subjects/:id/consents',
  summary:
    "Record a subject's consent for a purpose (given or withdrawn): withdrawn stops delivery of their data to that purpose",
  tags,
  access: 'privacy:write',
  params: subjectParams,
  body: z.object({
    purpose,
    noticeVersion: z.string().min(1).max(64),
    status: z.enum(['given', 'withdrawn']),
  }),
  response: { 200: subjectDetail },
});

/** Every record each module holds about one subject (GDPR Art. 15 and 20: machine-readable). */
export const subjectExport = z.object({
  subject: z.string(),
  generatedAt: z.number().int(),
  modules: z
    .record(z.string(), z.array(z.record(z.string(), z.unknown())))
    .describe('records per module (telemetry, retained, devices, users, privacy): empty arrays when none'),
  audit: z.array(auditEntry).describe('audit entries naming the subject or a user account linked to them'),
  authored: z
    .array(
      z.object({
        seq: z.number().int(),
        ts: z.number().int(),
        type: z.string(),
        subjectKind: z.string().nullable(),
      }),
    )
    .describe('entries a linked user authored about others: when and what only (GDPR Art. 15(4))'),
});

export const requestOutcome = z.object({
  request: privacyRequest,
  export: subjectExport.optional().describe('an access request run now: the export'),
});

export const listRequests = contract({
  method: 'GET',
  path: '/api/v1/privacy/requests',
  summary: 'Data-subject requests with their deadlines, newest first',
  tags,
  access: 'privacy:read',
  query: z.object({ status: z.enum(requestStatuses).optional() }),
  response: { 200: z.array(privacyRequest) },
});

export const showRequest = contract({
  method: 'GET',
  path: '/api/v1/privacy/requests/:id',
  summary: 'One data-subject request',
  tags,
  access: 'privacy:read',
  params: z.object({ id: z.string().max(64) }),
  response: { 200: privacyRequest },
});

export const createRequest = contract({
  method: 'POST',
  path: '/api/v1/privacy/requests',
  summary:
    'Record a data-subject request (access, erasure and restriction run at once unless held; an access request answers the export)',
  tags,
  access: 'privacy:write',
  body: z.object({
    subject: subjectId,
    kind: z.enum(privacyRequestKinds),
    hold: z.boolean().optional().describe('record it open, to run later'),
    note: z.string().max(2000).optional(),
  }),
  response: { 201: requestOutcome },
});

export const runRequest = contract({
  method: 'POST',
  path: '/api/v1/privacy/requests/:id/run',
  summary: 'Run an open request now (an access request answers the export)',
  tags,
  access: 'privacy:write',
  params: z.object({ id: z.string().max(64) }),
  response: { 200: requestOutcome },
});

export const completeRequest = contract({
  method: 'POST',
  path: '/api/v1/privacy/requests/:id/complete',
  summary: 'Close an open request by hand (a rectification done, or a request rejected) with a note',
  tags,
  access: 'privacy:write',
  params: z.object({ id: z.string().max(64) }),
  body: z.object({
    status: z.enum(['completed', 'rejected']),
    note: z.string().min(1).max(2000),
  }),
  response: { 200: privacyRequest },
});

export const recordField = z.object({
  path: z.string(),
  category: z.string(),
  personal: z.boolean(),
  special: z.boolean(),
  specialCondition: z.string().nullable(),
  purposes: z
    .array(z.string())
    .nullable()
    .describe('the purposes that receive the clear value; null: every consumer'),
  lawfulBasis: z.string().nullable(),
  retention: z.string().nullable().describe('as the schema writes it (30d)'),
  retentionMs: z.number().int().nullable(),
  transform: z.string().describe('what a consumer whose purpose is not allowed receives'),
  store: z.enum(['clear', 'transformed', 'none']),
  quasiIdentifier: z.boolean(),
});

export const recordRecipient = z.object({
  app: z.string(),
  purpose: z.string().nullable(),
  status: z.string(),
  grants: z.array(z.string()).describe("the app's grants that receive the topic"),
  fields: z.array(z.object({ path: z.string(), receives: z.string() })),
});

export const processingActivity = z.object({
  name: z.string(),
  topic: z.string(),
  description: z.string().nullable(),
  purposes: z.array(z.string()).describe('Art. 30(1)(b)'),
  dataSubjects: z.array(z.string()).describe('Art. 30(1)(c): categories of data subjects'),
  personalDataCategories: z.array(z.string()).describe('Art. 30(1)(c)'),
  fields: z.array(recordField),
  recipients: z.array(recordRecipient).describe('Art. 30(1)(d)'),
  retention: z.object({ ms: z.number().int().nullable(), text: z.string() }).describe('Art. 30(1)(f)'),
  transfers: z.string().describe('Art. 30(1)(e)'),
  securityMeasures: z.array(z.string()).describe('Art. 30(1)(g), Art. 32'),
});

/** The record of processing activities (GDPR Art. 30), generated from schemas, apps and retention. */
export const processingRecord = z.object({
  controller: z.object({ name: z.string().nullable(), contact: z.string().nullable() }),
  generatedAt: z.number().int(),
  activities: z.array(processingActivity).describe('one per data schema'),
});

export const record = contract({
  method: 'GET',
  path: '/api/v1/privacy/record',
  summary:
    'The record of processing activities (GDPR Art. 30): JSON, or an HTML page with format=html (text/html)',
  tags,
  access: 'privacy:read',
  query: z.object({ format: z.enum(['json', 'html']).default('json') }),
  response: { 200: processingRecord },
});

export const telemetryExport = contract({
  method: 'POST',
  path: '/api/v1/privacy/telemetry-export',
  summary:
    "A de-identified export of a schema's stored telemetry; refused when its quasi-identifiers single out fewer than k subjects",
  tags,
  access: 'privacy:read',
  body: z.object({
    schema: z.string().max(64),
    k: z.number().int().min(2).max(1000),
    from: timeParam.optional(),
    to: timeParam.optional(),
    limit: z.number().int().min(1).max(100_000).optional(),
  }),
  response: {
    200: z.object({
      rows: z.array(z.record(z.string(), z.unknown())),
      k: z.number().int(),
      classes: z.number().int().describe('equivalence classes over the quasi-identifiers'),
      smallestClass: z.number().int(),
      quasiIdentifiers: z.array(z.string()),
    }),
  },
});

export const decrypt = contract({
  method: 'POST',
  path: '/api/v1/privacy/decrypt',
  summary:
    'Decrypt encrypted field values (bwenc1.…) for a purpose the fields allow; erased subjects stay unreadable',
  tags,
  access: 'privacy:decrypt',
  body: z.object({
    schema: z.string().max(64).describe('the data schema the values come from'),
    field: z.string().max(512).describe('the field they are the value of (its uses must allow the purpose)'),
    values: z.array(z.string().max(65_536)).min(1).max(1000),
    purpose,
  }),
  response: {
    200: z.object({
      values: z.array(z.unknown()).describe('each clear value, or null when refused or erased'),
      refused: z.number().int().describe('not a token, altered, or the subject refused this purpose'),
      erased: z.number().int().describe('the key is gone: the subject was erased (crypto-shredding)'),
    }),
  },
});
