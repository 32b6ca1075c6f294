import { z } from 'zod';
import { contract, noContent, raw } from './contract.ts';

/**
 * Risk assessment (risk's operations under `/api/v1/risk`): assets from the live inventory with their owners and
 * cybersecurity requirements, TARAs (ISO/SAE 21434 clause 15) kept with the fleet they describe, the IEC 62443-3-2
 * target and achieved security level per zone, and the risk register that live facts move.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const { risks } = api.riskRegister.register.response[200].parse(await res.json());
 * ```
 */

const tags = ['risk'] as const;

export const assetKinds = ['model', 'firmware', 'zone', 'conduit', 'data', 'manual'] as const;
export type AssetKind = (typeof assetKinds)[number];
/** A cybersecurity requirement's weight (the CVSS security requirements CR/IR/AR use the same three). */
export const requirementLevels = ['low', 'medium', 'high'] as const;
export type RequirementLevel = (typeof requirementLevels)[number];
export const riskStatuses = ['open', 'treating', 'accepted', 'closed'] as const;
export type RiskStatus = (typeof riskStatuses)[number];
export const riskTreatments = ['avoid', 'reduce', 'share', 'retain'] as const;
export const feasibilityRatings = ['very low', 'low', 'medium', 'high'] as const;
export const impactRatings = ['negligible', 'moderate', 'major', 'severe'] as const;
export const riskFactorKinds = [
  'vulnerability',
  'known-exploited',
  'failing-check',
  'open-alert',
  'zone-gap',
] as const;

const assetId = z
  .string()
  .max(300)
  .regex(
    /^(model|firmware|zone|conduit|data|manual):[^\s]{1,256}$/,
    'an asset id: <kind>:<name>, kind one of model, firmware, zone, conduit, data, manual',
  );
const requirement = z.enum(requirementLevels);
export const requirements = z
  .object({
    confidentiality: requirement,
    integrity: requirement,
    availability: requirement,
    authenticity: requirement,
  })
  .strict();

export const asset = z.object({
  id: z.string(),
  kind: z.enum(assetKinds),
  name: z.string(),
  owner: z.string().nullable(),
  description: z.string().nullable(),
  requirements,
  groups: z.array(z.string()),
  /** Devices the asset covers now (a firmware's devices run one of its releases). */
  devices: z.number().int(),
  detail: z.string(),
  /** false: annotated, but the inventory no longer has it. */
  present: z.boolean(),
  updatedAt: z.number().int().nullable(),
});

export const riskFactor = z.object({
  kind: z.enum(riskFactorKinds),
  ref: z.string(),
  detail: z.string(),
  feasibility: z.enum(feasibilityRatings),
});

export const registerRisk = z.object({
  id: z.string(),
  title: z.string(),
  source: z.union([
    z.object({ kind: z.literal('tara'), tara: z.string(), threat: z.string() }),
    z.object({ kind: z.literal('zone'), zone: z.string() }),
    z.object({ kind: z.literal('manual') }),
  ]),
  assets: z.array(z.string()),
  owner: z.string().nullable(),
  treatment: z.enum(riskTreatments),
  controls: z.array(z.string()),
  checks: z.array(z.string()),
  due: z.string().nullable(),
  status: z.enum(riskStatuses),
  impact: z.enum(impactRatings),
  baseFeasibility: z.enum(feasibilityRatings),
  baseRisk: z.number().int(),
  feasibility: z.enum(feasibilityRatings),
  risk: z.number().int(),
  /** The live value is at least the baseline's threshold above the assessed one (an alert is open). */
  raised: z.boolean(),
  factors: z.array(riskFactor),
  assessedAt: z.number().int(),
  reviewDueAt: z.number().int(),
  updatedAt: z.number().int(),
});

export const riskHistoryEntry = z.object({
  at: z.number().int(),
  actor: z.string(),
  change: z.string(),
  from: z.number().int().nullable(),
  to: z.number().int().nullable(),
  detail: z.record(z.string(), z.unknown()),
});

export const zoneLevel = z.object({
  zone: z.string(),
  target: z.number().int(),
  achieved: z.number().int().nullable(),
  gap: z.number().int().nullable(),
  blocking: z.array(z.string()),
  devices: z.number().int(),
  measuredAt: z.number().int().nullable(),
});

export const taraSummary = z.object({
  id: z.string(),
  item: z.string(),
  version: z.number().int(),
  savedAt: z.number().int(),
  savedBy: z.string(),
  threats: z.number().int(),
  risks: z.record(z.string(), z.number().int()),
});

const taraId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower case letters, digits, . _ - (max 63)');
const anyJson = z.record(z.string(), z.unknown());
const riskIdParams = z.object({ id: z.string().max(40) });
const date = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'a date, YYYY-MM-DD', abort: true })
  .refine((d) => {
    const t = Date.parse(`${d}T00:00:00Z`);
    return Number.isFinite(t) && new Date(t).toISOString().startsWith(d);
  }, 'not a date of the calendar');

export const assets = contract({
  method: 'GET',
  path: '/api/v1/risk/assets',
  summary:
    'Assets: device models, firmware, zones, conduits and data categories from the inventory, and manual assets',
  tags,
  access: 'risk:read',
  query: z.object({ kind: z.enum(assetKinds).optional() }),
  response: { 200: z.object({ assets: z.array(asset) }) },
});

export const putAsset = contract({
  method: 'PUT',
  path: '/api/v1/risk/assets/:id',
  summary: "Set an asset's owner, description and requirements (a manual asset is created)",
  tags,
  access: 'risk:write',
  params: z.object({ id: assetId }),
  body: z
    .object({
      owner: z.string().trim().min(1).max(200).nullable().optional(),
      description: z.string().trim().min(1).max(2000).nullable().optional(),
      requirements: requirements.partial().optional(),
      groups: z.array(z.string().min(1).max(200)).max(100).optional(),
    })
    .strict(),
  response: { 200: asset },
});

export const deleteAsset = contract({
  method: 'DELETE',
  path: '/api/v1/risk/assets/:id',
  summary: "Delete a manual asset, or an inventory asset's annotations",
  tags,
  access: 'risk:write',
  params: z.object({ id: assetId }),
  response: { 204: noContent },
});

export const taras = contract({
  method: 'GET',
  path: '/api/v1/risk/taras',
  summary: 'Saved TARAs',
  tags,
  access: 'risk:read',
  response: { 200: z.object({ taras: z.array(taraSummary) }) },
});

export const saveTara = contract({
  method: 'PUT',
  path: '/api/v1/risk/taras/:id',
  summary: 'Save a TARA (rated and validated; its threat scenarios become register risks)',
  tags,
  access: 'risk:write',
  params: z.object({ id: taraId }),
  body: anyJson,
  response: {
    200: z.object({
      tara: taraSummary,
      risks: z.object({ created: z.number().int(), updated: z.number().int(), closed: z.number().int() }),
    }),
  },
});

export const getTara = contract({
  method: 'GET',
  path: '/api/v1/risk/taras/:id',
  summary: 'A saved TARA: its document and its clause-15 work products',
  tags,
  access: 'risk:read',
  params: z.object({ id: taraId }),
  response: { 200: z.object({ tara: taraSummary, document: anyJson, result: anyJson }) },
});

export const taraReport = contract({
  method: 'GET',
  path: '/api/v1/risk/taras/:id/report.html',
  summary: 'A saved TARA as an HTML report',
  tags,
  access: 'risk:read',
  params: z.object({ id: taraId }),
  response: { 200: raw('text/html', 'The TARA report') },
});

export const register = contract({
  method: 'GET',
  path: '/api/v1/risk/register',
  summary: 'The risk register, highest live risk first',
  tags,
  access: 'risk:read',
  query: z.object({
    status: z.enum(riskStatuses).optional(),
    minRisk: z.coerce.number().int().min(1).max(5).optional(),
  }),
  response: { 200: z.object({ risks: z.array(registerRisk) }) },
});

export const registerReport = contract({
  method: 'GET',
  path: '/api/v1/risk/register/report.html',
  summary: 'The risk register and zone security levels as an HTML report',
  tags,
  access: 'risk:read',
  response: { 200: raw('text/html', 'The register report') },
});

export const registerReportJson = contract({
  method: 'GET',
  path: '/api/v1/risk/register/report.json',
  summary:
    "The register report's data: every risk, the zones' security levels, recent history, the baseline's settings",
  tags,
  access: 'risk:read',
  response: {
    200: z.object({
      risks: z.array(registerRisk),
      zones: z.array(zoneLevel),
      history: z.record(z.string(), z.array(riskHistoryEntry)),
      baseline: z.object({ reassessEvery: z.number().int(), alertOnIncrease: z.number().int() }),
    }),
  },
});

export const getRisk = contract({
  method: 'GET',
  path: '/api/v1/risk/register/:id',
  summary: 'One risk with its history',
  tags,
  access: 'risk:read',
  params: riskIdParams,
  response: { 200: z.object({ risk: registerRisk, history: z.array(riskHistoryEntry) }) },
});

export const updateRisk = contract({
  method: 'PATCH',
  path: '/api/v1/risk/register/:id',
  summary: "Change a risk's owner, treatment, due date or status (recorded in its history)",
  tags,
  access: 'risk:write',
  params: riskIdParams,
  body: z
    .object({
      owner: z.string().trim().min(1).max(200).nullable().optional(),
      treatment: z.enum(riskTreatments).optional(),
      due: date.nullable().optional(),
      status: z.enum(riskStatuses).optional(),
      note: z.string().trim().min(1).max(2000).optional(),
    })
    .strict()
    .refine((b) => Object.keys(b).some((k) => k !== 'note'), 'nothing to change'),
  response: { 200: registerRisk },
});

export const reviewRisk = contract({
  method: 'POST',
  path: '/api/v1/risk/register/:id/review',
  summary: 'Record a re-assessment: the review is due again after the baseline interval',
  tags,
  access: 'risk:write',
  params: riskIdParams,
  body: z.object({ note: z.string().trim().min(1).max(2000) }).strict(),
  response: { 200: registerRisk },
});

export const reassess = contract({
  method: 'POST',
  path: '/api/v1/risk/register/reassess',
  summary: 'Re-evaluate every risk from the live fleet now (it also runs on each relevant change)',
  tags,
  access: 'risk:write',
  response: {
    200: z.object({
      examined: z.number().int(),
      changed: z.number().int(),
      raised: z.number().int(),
      lowered: z.number().int(),
    }),
  },
});

export const zones = contract({
  method: 'GET',
  path: '/api/v1/risk/zones',
  summary: 'IEC 62443-3-2: target and achieved security level per zone (from the latest compliance run)',
  tags,
  access: 'risk:read',
  response: { 200: z.object({ zones: z.array(zoneLevel) }) },
});
