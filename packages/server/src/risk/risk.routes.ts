import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { requestScope } from '../authz/index.ts';
import type { Risk } from './risk.service.ts';
import { scoreCvssBatch } from './cvss.ts';

const contracts = api.risk;

/** An OSV import may carry a whole ecosystem's advisories. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024;

export interface RiskRoutesDeps {
  risk: Risk;
  /** A release by id or name@version (firmware's door), for its vulnerabilities. */
  releaseId(ref: string): Promise<string>;
}

function readRoutes(app: FastifyInstance, deps: RiskRoutesDeps) {
  const { vulnerabilities } = deps.risk;
  app.defineRoute(contracts.releaseVulnerabilities, {
    handler: async ({ params }) => ({
      vulnerabilities: await vulnerabilities.forRelease(await deps.releaseId(params.id)),
    }),
  });
  app.defineRoute(contracts.advisories, {
    handler: async ({ query }) => ({ advisories: await vulnerabilities.advisories(query) }),
  });
  app.defineRoute(contracts.exposure, {
    handler: async ({ request, query }) => ({
      devices: await vulnerabilities.exposure({
        groupsIn: requestScope(request).groups ?? undefined,
        minSeverity: query.minSeverity,
      }),
    }),
  });
}

/** CVSS scores: computation only, nothing stored. */
function cvssRoute(app: FastifyInstance) {
  app.defineRoute(contracts.scoreCvss, {
    handler: ({ body }) => {
      const scores = scoreCvssBatch(body.vectors).map((r, index) =>
        r.ok ? { index, ...r.result } : { index, vector: r.vector, error: r.error },
      );
      return { scores, refused: scores.filter((s) => 'error' in s).length };
    },
  });
}

function importRoute(app: FastifyInstance, deps: RiskRoutesDeps) {
  // defineRoute sets no body limit: this plugin's routes get theirs here (only the import needs more).
  app.addHook('onRoute', (route) => {
    if (route.config?.contract === contracts.importAdvisories) route.bodyLimit = IMPORT_BODY_LIMIT;
  });
  app.defineRoute(contracts.importAdvisories, {
    handler: ({ request, body }) =>
      deps.risk.vulnerabilities.importJson(body, requestScope(request).actor, 'api'),
  });
}

/** The vulnerability API (api.risk, under /api/v1/firmware where operators look for it): advisories and exposure. */
export function riskRoutes(deps: RiskRoutesDeps) {
  return function register(app: FastifyInstance) {
    readRoutes(app, deps);
    importRoute(app, deps);
    cvssRoute(app);
  };
}
