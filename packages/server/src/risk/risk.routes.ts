import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requestScope } from '../authz/index.ts';
import type { Risk } from './risk.service.ts';
import { advisorySeverities } from './severity.ts';

const vulnerabilityOut = z.object({
  advisoryId: z.string(),
  summary: z.string(),
  aliases: z.array(z.string()),
  severity: z.enum(advisorySeverities),
  score: z.number().nullable(),
  cvssVector: z.string().nullable(),
  purl: z.string(),
  componentVersion: z.string(),
});

const advisoryOut = z.object({
  id: z.string(),
  summary: z.string(),
  aliases: z.array(z.string()),
  severity: z.enum(advisorySeverities),
  score: z.number().nullable(),
  cvssVector: z.string().nullable(),
  modified: z.number().int(),
  withdrawn: z.number().int().nullable(),
});

const exposureOut = z.object({
  deviceId: z.string(),
  group: z.string().nullable(),
  release: z.object({ id: z.string(), name: z.string(), version: z.string() }).nullable(),
  worstSeverity: z.enum(advisorySeverities),
  worstScore: z.number().nullable(),
  advisories: z.array(
    z.object({ id: z.string(), severity: z.enum(advisorySeverities), score: z.number().nullable() }),
  ),
});

const anyJson = z.record(z.string(), z.unknown());
const tags = ['firmware vulnerabilities'];

export interface RiskRoutesDeps {
  risk: Risk;
  /** A release by id or name@version (firmware's door), for its vulnerabilities. */
  releaseId(ref: string): Promise<string>;
}

function readRoutes(app: FastifyInstance, deps: RiskRoutesDeps) {
  const { vulnerabilities } = deps.risk;
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/api/v1/firmware/releases/:id/vulnerabilities',
    {
      config: { access: 'firmware:read' },
      schema: {
        tags,
        summary: 'Known vulnerabilities of the release (SBOM × imported OSV advisories), worst first',
        params: z.object({ id: z.string().max(200) }),
        response: { 200: z.object({ vulnerabilities: z.array(vulnerabilityOut) }) },
      },
    },
    async (request) => ({
      vulnerabilities: await vulnerabilities.forRelease(await deps.releaseId(request.params.id)),
    }),
  );
  api.get(
    '/api/v1/firmware/advisories',
    {
      config: { access: 'firmware:read' },
      schema: {
        tags,
        summary: 'Imported OSV advisories, highest score first',
        querystring: z.object({
          severity: z.enum(advisorySeverities).optional(),
          limit: z.coerce.number().int().min(1).max(10_000).default(1000),
        }),
        response: { 200: z.object({ advisories: z.array(advisoryOut) }) },
      },
    },
    async (request) => ({ advisories: await vulnerabilities.advisories(request.query) }),
  );
  api.get(
    '/api/v1/firmware/exposure',
    {
      config: { access: 'firmware:read' },
      schema: {
        tags,
        summary: 'Devices running releases with known vulnerabilities, worst severity first',
        querystring: z.object({ minSeverity: z.enum(advisorySeverities).optional() }),
        response: { 200: z.object({ devices: z.array(exposureOut) }) },
      },
    },
    async (request) => ({
      devices: await vulnerabilities.exposure({
        groupsIn: requestScope(request).groups ?? undefined,
        minSeverity: request.query.minSeverity,
      }),
    }),
  );
}

function importRoute(app: FastifyInstance, deps: RiskRoutesDeps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/api/v1/firmware/advisories',
    {
      config: { access: 'firmware:write' },
      bodyLimit: 64 * 1024 * 1024,
      schema: {
        tags,
        summary: 'Import OSV advisories (one, an array, or {"vulns": [...]}) and match them against SBOMs',
        body: z.union([anyJson, z.array(anyJson)]),
        response: {
          200: z.object({
            imported: z.number().int(),
            unchanged: z.number().int(),
            matches: z.number().int(),
          }),
        },
      },
    },
    async (request) => deps.risk.vulnerabilities.importJson(request.body, requestScope(request).actor, 'api'),
  );
}

/** The vulnerability API (under /api/v1/firmware, where operators look for it): advisories and exposure. */
export function riskRoutes(deps: RiskRoutesDeps) {
  return function register(app: FastifyInstance) {
    readRoutes(app, deps);
    importRoute(app, deps);
  };
}
