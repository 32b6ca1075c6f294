import { z } from 'zod';
import { durationMs } from './common.ts';
import { dataCategoryProblem, dataSubjectProblem, dataUseProblem } from './taxonomy/taxonomy.ts';

/**
 * Data schemas (privacy): per MQTT topic pattern, the JSON Schema of the payload and, per field, its data
 * category (fideslang), whether it is personal or special-category (GDPR Art. 9), the purposes (fideslang
 * data uses) that may receive it in clear, its lawful basis (Art. 6), retention, what every other consumer
 * receives (its transform) and what Bulwark keeps.
 *
 * @example
 * ```yaml
 * name: room-sensor
 * topic: devices/+/telemetry
 * subject: { field: user_id, kind: customer }
 * schema:
 *   type: object
 *   additionalProperties: false
 *   required: [user_id, temp]
 *   properties:
 *     user_id: { type: string }
 *     lat: { type: number, minimum: -90, maximum: 90 }
 *     lon: { type: number, minimum: -180, maximum: 180 }
 *     temp: { type: number }
 * fields:
 *   user_id:
 *     { category: user.unique_id, uses: [essential.service.operations], transform: pseudonymise,
 *       lawfulBasis: contract, retention: 30d }
 *   lat:
 *     { category: user.location.precise, uses: [essential.service.operations], lawfulBasis: contract,
 *       retention: 30d, transform: { generalise: { grid: 1000, axis: latitude } } }
 *   lon:
 *     { category: user.location.precise, uses: [essential.service.operations], lawfulBasis: contract,
 *       retention: 30d, transform: { generalise: { grid: 1000, axis: longitude, latitudeField: lat } } }
 *   temp: { category: system.operations, lawfulBasis: legitimate_interests }
 * ```
 */

/** GDPR Art. 6(1) lawful bases, (a) to (f). */
export const lawfulBases = [
  'consent',
  'contract',
  'legal_obligation',
  'vital_interests',
  'public_task',
  'legitimate_interests',
] as const;
export type LawfulBasis = (typeof lawfulBases)[number];

/** GDPR Art. 9(2) conditions for special-category data, by their letter: (a) explicit consent … (j) research. */
export const specialConditions = [
  'explicit_consent',
  'employment',
  'vital_interests',
  'not_for_profit',
  'made_public',
  'legal_claims',
  'substantial_public_interest',
  'health_care',
  'public_health',
  'research',
] as const;
export type SpecialCondition = (typeof specialConditions)[number];

/**
 * fideslang data categories that GDPR Art. 9 makes special: biometric, health and genetic data, and the
 * demographic traits the article names. A field under one of these is special unless it says otherwise.
 */
export const specialCategoryRoots = [
  'user.biometric',
  'user.authorization.biometric',
  'user.health_and_medical',
  'user.demographic.political_opinion',
  'user.demographic.race_ethnicity',
  'user.demographic.religious_belief',
  'user.demographic.sexual_orientation',
] as const;

const under = (key: string, root: string) => key === root || key.startsWith(`${root}.`);

/** Whether a data category is personal data by default (fideslang's `user` tree). */
export const isPersonalCategory = (category: string): boolean => under(category, 'user');
/** Whether a data category is special-category data (GDPR Art. 9) by default. */
export const isSpecialCategory = (category: string): boolean =>
  specialCategoryRoots.some((root) => under(category, root));
/** Whether a consumer's purpose is allowed by a field's uses: equal to one of them or below it. */
export const purposeAllowed = (purpose: string, uses: readonly string[]): boolean =>
  uses.some((use) => under(purpose, use));

const durationText = z.string().refine((v) => durationMs(v) !== undefined, {
  message: 'a duration: a number and a unit, e.g. 30d, 24h, 15m',
});

const taxonomyKey = (problem: (key: string) => string | undefined) =>
  z.string().superRefine((key, ctx) => {
    const p = problem(key);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });

/** A field path: a top-level property, or a dotted path into nested objects (`location.lat`). */
export const fieldPathPattern = /^[A-Za-z_$][A-Za-z0-9_$-]{0,63}(?:\.[A-Za-z_$][A-Za-z0-9_$-]{0,63}){0,7}$/;

/** Location to the centre of a grid cell of `grid` metres (latitude, or longitude at the message's latitude). */
const gridGeneralisation = z
  .object({
    grid: z.number().int().min(10).max(1_000_000),
    axis: z.enum(['latitude', 'longitude']),
    /** For a longitude: the field holding the latitude (cells are `grid` metres wide at that latitude). */
    latitudeField: z.string().regex(fieldPathPattern).optional(),
  })
  .strict()
  .refine((g) => g.axis === 'latitude' || g.latitudeField !== undefined, {
    message: 'a longitude grid needs latitudeField (the field holding the latitude)',
  });
/** A timestamp (epoch ms, epoch s with `unit: s`, or an ISO 8601 string) to the start of its bucket. */
const bucketGeneralisation = z
  .object({ bucket: durationText, unit: z.enum(['ms', 's']).optional() })
  .strict();
/** A number to the range `{ gte, lt }` of width `step` that holds it. */
const stepGeneralisation = z.object({ step: z.number().positive() }).strict();

export const fieldTransformSchema = z.union([
  z.enum(['none', 'drop', 'pseudonymise', 'encrypt']),
  z.object({ generalise: z.union([gridGeneralisation, bucketGeneralisation, stepGeneralisation]) }).strict(),
]);
export type FieldTransform = z.infer<typeof fieldTransformSchema>;

export const dataFieldSchema = z
  .object({
    /** fideslang data category, e.g. `user.location.precise`. */
    category: taxonomyKey(dataCategoryProblem),
    /** Personal data (default: the category is under `user`). */
    personal: z.boolean().optional(),
    /** Special-category data, GDPR Art. 9 (default: from the category). */
    special: z.boolean().optional(),
    /** The Art. 9(2) condition that allows processing special-category data (required when special). */
    specialCondition: z.enum(specialConditions).optional(),
    /** Purposes (fideslang data uses) that receive the clear value; omitted: every consumer. */
    uses: z.array(taxonomyKey(dataUseProblem)).max(32).optional(),
    /** GDPR Art. 6 lawful basis (required when personal). */
    lawfulBasis: z.enum(lawfulBases).optional(),
    /** How long the value is kept (required when personal and kept). */
    retention: durationText.optional(),
    /** What a consumer whose purpose `uses` does not allow receives (default: drop when personal, else none). */
    transform: fieldTransformSchema.optional(),
    /** What Bulwark keeps (telemetry store, retained messages): default transformed when personal, else clear. */
    store: z.enum(['clear', 'transformed', 'none']).optional(),
    /** A quasi-identifier for the k-anonymity check of telemetry exports (default: location, demographics). */
    quasiIdentifier: z.boolean().optional(),
    description: z.string().max(500).optional(),
  })
  .strict();
export type DataField = z.infer<typeof dataFieldSchema>;

/** A data schema's name: 1-64 characters of a-z 0-9 _ . -, starting with a letter or digit. */
export const dataSchemaNamePattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

export const dataSchemaDocumentSchema = z
  .object({
    name: z.string().regex(dataSchemaNamePattern, 'name: 1-64 characters of a-z 0-9 _ . -'),
    /** The MQTT topic filter whose payloads this schema describes (`+` and a final `#` allowed). */
    topic: z.string().min(1).max(256),
    description: z.string().max(2000).optional(),
    /** Who the data is about: a payload field holding the subject's id, else the device's linked subject. */
    subject: z
      .object({
        field: z.string().regex(fieldPathPattern).optional(),
        kind: taxonomyKey(dataSubjectProblem).default('customer'),
      })
      .strict()
      .prefault({}),
    /** The JSON Schema of the payload (an object with `properties` and `additionalProperties: false`). */
    schema: z.record(z.string(), z.unknown()),
    /** Every property of the payload, classified. */
    fields: z.record(z.string().regex(fieldPathPattern), dataFieldSchema),
  })
  .strict();
/** A data schema as written (YAML or JSON) and as the API takes it. */
export type DataSchemaDocument = z.input<typeof dataSchemaDocumentSchema>;
/** A data schema after parsing (defaults applied). */
export type DataSchema = z.output<typeof dataSchemaDocumentSchema>;

/** A data subject's id as the fleet's data names it (`u-17`): no `:`, `~`, `/` or whitespace. */
export const subjectIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/;

export const privacyRequestKinds = ['access', 'rectification', 'erasure', 'restriction'] as const;
export type PrivacyRequestKind = (typeof privacyRequestKinds)[number];

/** Prefix of an encrypted field value: `bwenc1.<keyId>.<base64url(iv | tag | ciphertext)>`. */
export const ENCRYPTED_VALUE_PREFIX = 'bwenc1.';
/** Prefix of a pseudonym: `ps1.<period>.<base64url(HMAC-SHA256)[0..22]>`. */
export const PSEUDONYM_PREFIX = 'ps1.';
