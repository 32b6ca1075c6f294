import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetWide, requestScope } from '../authz/index.ts';
import type { Register } from './register.service.ts';
import { registerHtml, REGISTER_REPORT_CSP } from './register.html.ts';
import { taraHtml, TARA_REPORT_CSP } from './tara.html.ts';
import { registerReport } from './register.report.ts';

const contracts = api.riskRegister;

/** TARA documents are small; a whole product line's fits in 1 MiB. */
const TARA_BODY_LIMIT = 1024 * 1024;

/** The register covers the whole fleet: users limited to device groups cannot use it. */
function fleetActor(request: FastifyRequest): string {
  const { scope, actor } = requestScope(request);
  if (!fleetWide(scope))
    throw new BulwarkError(
      'forbidden',
      'the risk register covers the whole fleet: users limited to device groups cannot use it',
    );
  return actor;
}

function sendHtml(reply: FastifyReply, page: { html: string; csp: string; fileName: string }): FastifyReply {
  const { html, csp, fileName } = page;
  void reply.header('Content-Disposition', `inline; filename="${fileName}"`);
  void reply.header('X-Content-Type-Options', 'nosniff');
  void reply.header('Content-Security-Policy', csp);
  return reply.type('text/html; charset=utf-8').send(html);
}

function assetRoutes(app: FastifyInstance, register: Register) {
  app.defineRoute(contracts.assets, {
    handler: async ({ request, query }) => {
      fleetActor(request);
      return { assets: await register.assets({ kind: query.kind }) };
    },
  });
  app.defineRoute(contracts.putAsset, {
    handler: ({ request, params, body }) => register.putAsset(params.id, body, fleetActor(request)),
  });
  app.defineRoute(contracts.deleteAsset, {
    async handler({ request, params }) {
      await register.deleteAsset(params.id, fleetActor(request));
    },
  });
}

function taraRoutes(app: FastifyInstance, register: Register) {
  app.addHook('onRoute', (route) => {
    if (route.config?.contract === contracts.saveTara) route.bodyLimit = TARA_BODY_LIMIT;
  });
  app.defineRoute(contracts.taras, {
    handler: async ({ request }) => {
      fleetActor(request);
      return { taras: await register.taras() };
    },
  });
  app.defineRoute(contracts.saveTara, {
    handler: ({ request, params, body }) => register.saveTara(params.id, body, fleetActor(request)),
  });
  app.defineRoute(contracts.getTara, {
    handler: async ({ request, params }) => {
      fleetActor(request);
      const { tara, document, result } = await register.getTara(params.id);
      return { tara, document, result: result as unknown as Record<string, unknown> };
    },
  });
  app.defineRoute(contracts.taraReport, {
    async handler({ request, params, reply }) {
      fleetActor(request);
      const { result } = await register.getTara(params.id);
      return sendHtml(reply, {
        html: taraHtml(result, Date.now()),
        csp: TARA_REPORT_CSP,
        fileName: `tara-${params.id}.html`,
      });
    },
  });
}

function registerRoutesOf(app: FastifyInstance, register: Register) {
  app.defineRoute(contracts.register, {
    handler: async ({ request, query }) => {
      fleetActor(request);
      return { risks: await register.list({ status: query.status, minRisk: query.minRisk }) };
    },
  });
  app.defineRoute(contracts.registerReport, {
    async handler({ request, reply }) {
      fleetActor(request);
      const report = await registerReport(register);
      return sendHtml(reply, {
        html: registerHtml(report, Date.now()),
        csp: REGISTER_REPORT_CSP,
        fileName: 'risk-register.html',
      });
    },
  });
  app.defineRoute(contracts.registerReportJson, {
    handler: ({ request }) => {
      fleetActor(request);
      return registerReport(register);
    },
  });
  app.defineRoute(contracts.getRisk, {
    handler: ({ request, params }) => {
      fleetActor(request);
      return register.get(params.id);
    },
  });
  app.defineRoute(contracts.updateRisk, {
    handler: ({ request, params, body }) => register.update(params.id, body, fleetActor(request)),
  });
  app.defineRoute(contracts.reviewRisk, {
    handler: ({ request, params, body }) => register.review(params.id, body.note, fleetActor(request)),
  });
  app.defineRoute(contracts.reassess, {
    handler: ({ request }) => {
      fleetActor(request);
      return register.reassess();
    },
  });
  app.defineRoute(contracts.zones, {
    handler: async ({ request }) => {
      fleetActor(request);
      return { zones: await register.zones() };
    },
  });
}

/** The risk assessment API (api.riskRegister, under /api/v1/risk): assets, TARAs, the register, zone levels. */
export function registerRoutes(register: Register) {
  return function routes(app: FastifyInstance) {
    assetRoutes(app, register);
    taraRoutes(app, register);
    registerRoutesOf(app, register);
  };
}
