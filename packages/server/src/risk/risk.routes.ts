import type { FastifyInstance } from 'fastify';
import { api, BulwarkError, type Contract } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { requestScope } from '../authz/index.ts';
import type { Risk } from './risk.service.ts';
import { scoreCvssBatch } from './cvss.ts';
import { feedText } from './feeds.ts';

const contracts = api.risk;

/** An OSV import may carry a whole ecosystem's advisories. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024;
/** CISA's KEV catalog is ~1.5 MB: room for years of growth. */
const KEV_BODY_LIMIT = 8 * 1024 * 1024;
/** FIRST's EPSS CSV is ~10 MB (~2 MB gzipped): the body, and the CSV it gunzips to, are bounded by this. */
const EPSS_BODY_LIMIT = 32 * 1024 * 1024;

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

/** Offline feeds: the KEV catalog as JSON; EPSS as its CSV (text/csv) or the .csv.gz (application/gzip). */
function feedRoutes(app: FastifyInstance, deps: RiskRoutesDeps) {
  const limits = new Map<Contract, number>([
    [contracts.importKev, KEV_BODY_LIMIT],
    [contracts.importEpss, EPSS_BODY_LIMIT],
  ]);
  app.addHook('onRoute', (route) => {
    const limit = route.config?.contract ? limits.get(route.config.contract) : undefined;
    if (limit !== undefined) route.bodyLimit = limit;
  });
  // Bytes, not a string: feedText gunzips what starts with the gzip magic bytes and decodes UTF-8 strictly.
  app.addContentTypeParser(
    ['text/csv', 'application/gzip'],
    { parseAs: 'buffer' },
    (_request, body, done) => {
      done(null, body);
    },
  );
  const { feeds } = deps.risk;
  app.defineRoute(contracts.importKev, {
    handler: ({ request, body }) => feeds.importKevJson(body, requestScope(request).actor, 'api'),
  });
  app.defineRoute(contracts.importEpss, {
    handler: ({ request }) => {
      if (!Buffer.isBuffer(request.body))
        throw new BulwarkError(
          'unsupported_media_type',
          'send the EPSS CSV as text/csv, or the .csv.gz as application/gzip',
        );
      const text = feedText(request.body, 'the request body', EPSS_BODY_LIMIT);
      return feeds.importEpssText(text, requestScope(request).actor, 'api');
    },
  });
  app.defineRoute(contracts.feedsStatus, { handler: () => feeds.status() });
}

/** The vulnerability API (api.risk, under /api/v1/firmware where operators look for it): advisories and exposure. */
export function riskRoutes(deps: RiskRoutesDeps) {
  return function register(app: FastifyInstance) {
    readRoutes(app, deps);
    importRoute(app, deps);
    feedRoutes(app, deps);
    cvssRoute(app);
  };
}
