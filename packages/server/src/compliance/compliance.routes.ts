import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError, type FrameworkId } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetWide, requestScope } from '../authz/index.ts';
import type { Compliance, ReportFormat } from './compliance.service.ts';
import { clausesByCheck } from './frameworks.ts';
import { HTML_REPORT_CSP } from './report.html.ts';

/** What the compliance routes and the CLI call on the compliance service (nothing else). */
export type ComplianceApi = Pick<
  Compliance,
  | 'frameworks'
  | 'checks'
  | 'run'
  | 'getRun'
  | 'listRuns'
  | 'trend'
  | 'report'
  | 'attest'
  | 'attestations'
  | 'revokeAttestation'
  | 'evidenceFile'
  | 'waive'
  | 'waivers'
  | 'revokeWaiver'
  | 'approveWaiver'
>;

const contracts = api.compliance;

/**
 * An attestation may carry MAX_EVIDENCE_FILES files of MAX_EVIDENCE_BASE64_LENGTH base64 characters each (the
 * contract's maximum, 2 MiB decoded each): its route takes that plus room for the rest of the JSON (statement,
 * names, escapes), so an over-size file is refused by the contract or the service naming `files`, not by the
 * global 1 MiB limit. The guard authenticates in onRequest, before any body is read.
 */
export const ATTESTATION_BODY_LIMIT =
  api.compliance.MAX_EVIDENCE_FILES * (api.compliance.MAX_EVIDENCE_BASE64_LENGTH + 4096) + 256 * 1024;

/**
 * Compliance spans the whole fleet (its evidence names devices of every group): a user limited to device
 * groups has no access. The actor for events otherwise.
 */
function complianceActor(request: FastifyRequest): string {
  const { scope, actor } = requestScope(request);
  if (!fleetWide(scope))
    throw new BulwarkError(
      'forbidden',
      'compliance evidence spans the fleet: users limited to device groups have no access',
    );
  return actor;
}

/** The checks with the clauses each evidences (from the frameworks). */
export function checkCatalogView(compliance: Pick<ComplianceApi, 'checks' | 'frameworks'>) {
  const clauses = clausesByCheck(compliance.frameworks());
  return compliance.checks().map((c) => ({
    id: c.id,
    title: c.title,
    severity: c.severity,
    rationale: c.rationale,
    remediation: c.remediation,
    needs: c.needs ?? null,
    reads: [...c.reads],
    clauses: clauses.get(c.id) ?? {},
  }));
}

/** Runs listed newest first, with the trend oldest first (a chart's order). */
export async function runsView(compliance: Pick<ComplianceApi, 'listRuns' | 'trend'>, limit: number) {
  const [runs, trend] = await Promise.all([compliance.listRuns({ limit }), compliance.trend({ limit })]);
  return {
    runs: [...runs],
    trend: [...trend].sort((a, b) => a.finishedAt - b.finishedAt),
  };
}

/** A file name for a report: `bulwark-<standard>-<run>.html|json|oscal.json`. */
export function reportFileName(standard: FrameworkId, format: ReportFormat, runId: string): string {
  const ext = format === 'html' ? 'html' : format === 'oscal' ? 'oscal.json' : 'json';
  return `bulwark-${standard}-${runId.replace(/[^A-Za-z0-9._-]/g, '_')}.${ext}`;
}

function sendReport(
  reply: FastifyReply,
  report: { contentType: string; body: string },
  fileName: string,
): FastifyReply {
  void reply.header('Content-Disposition', `attachment; filename="${fileName}"`);
  void reply.header('X-Content-Type-Options', 'nosniff');
  if (report.contentType.startsWith('text/html')) {
    // One self-contained file: its one <style> block by hash, images as data: URLs, nothing else.
    void reply.header('Content-Security-Policy', HTML_REPORT_CSP);
    return reply.type('text/html; charset=utf-8').send(report.body);
  }
  return reply.type('application/json; charset=utf-8').send(report.body);
}

function runRoutes(app: FastifyInstance, compliance: ComplianceApi): void {
  app.defineRoute(contracts.runCompliance, {
    handler: ({ request }) => compliance.run({ trigger: 'manual', actor: complianceActor(request) }),
  });
  app.defineRoute(contracts.listRuns, {
    async handler({ request, query }) {
      complianceActor(request);
      return runsView(compliance, query.limit);
    },
  });
  app.defineRoute(contracts.getRun, {
    async handler({ request, params }) {
      complianceActor(request);
      return compliance.getRun(params.id);
    },
  });
  app.defineRoute(contracts.listChecks, {
    handler({ request }) {
      complianceActor(request);
      return checkCatalogView(compliance);
    },
  });
  app.defineRoute(contracts.listStandards, {
    handler({ request }) {
      complianceActor(request);
      return compliance.frameworks();
    },
  });
  app.defineRoute(contracts.getReport, {
    async handler({ request, params, query, reply }) {
      const actor = complianceActor(request);
      const report = await compliance.report(
        { standard: params.standard, format: query.format, ...(query.run ? { runId: query.run } : {}) },
        actor,
      );
      return sendReport(reply, report, reportFileName(params.standard, query.format, report.runId));
    },
  });
}

function attestationRoutes(app: FastifyInstance, compliance: ComplianceApi): void {
  // defineRoute sets no body limit: the attestation route gets its own (see ATTESTATION_BODY_LIMIT).
  app.addHook('onRoute', (route) => {
    if (route.config?.contract === contracts.recordAttestation) route.bodyLimit = ATTESTATION_BODY_LIMIT;
  });
  app.defineRoute(contracts.recordAttestation, {
    handler: ({ request, body }) => compliance.attest(body, complianceActor(request)),
  });
  app.defineRoute(contracts.listAttestations, {
    async handler({ request, query }) {
      complianceActor(request);
      const includeRevoked = query.includeRevoked === 'true';
      return [...(await compliance.attestations({ includeRevoked, limit: query.limit }))];
    },
  });
  app.defineRoute(contracts.revokeAttestation, {
    handler: ({ request, params, body }) =>
      compliance.revokeAttestation(params.id, body.reason, complianceActor(request)),
  });
  app.defineRoute(contracts.getEvidenceFile, {
    async handler({ request, params, reply }) {
      complianceActor(request);
      const file = await compliance.evidenceFile(params.sha256.toLowerCase());
      // Served as a download, never rendered in the API's origin (the file is whatever its owner uploaded).
      void reply.header('Content-Disposition', `attachment; filename="${params.sha256.toLowerCase()}"`);
      void reply.header('X-Content-Type-Options', 'nosniff');
      void reply.header('Content-Security-Policy', "default-src 'none'; sandbox");
      return reply.type(file.mediaType).send(file.content);
    },
  });
}

function waiverRoutes(app: FastifyInstance, compliance: ComplianceApi): void {
  app.defineRoute(contracts.grantWaiver, {
    handler: ({ request, body }) => compliance.waive(body, complianceActor(request)),
  });
  app.defineRoute(contracts.listWaivers, {
    async handler({ request, query }) {
      complianceActor(request);
      const includeRevoked = query.includeRevoked === 'true';
      return [...(await compliance.waivers({ includeRevoked, limit: query.limit }))];
    },
  });
  app.defineRoute(contracts.approveWaiver, {
    handler: ({ request, params }) => compliance.approveWaiver(params.id, complianceActor(request)),
  });
  app.defineRoute(contracts.revokeWaiver, {
    handler: ({ request, params, body }) =>
      compliance.revokeWaiver(params.id, body.reason, complianceActor(request)),
  });
}

/**
 * `/api/v1/compliance`: runs and their results, the checks and standards, reports (HTML, JSON, OSCAL),
 * attestations with their evidence files, and waivers (contracts in protocol's api/compliance.ts). Reads need
 * `compliance:read`; running, attesting, asking for waivers and revoking need `compliance:write`; approving
 * a waiver needs `compliance:approve` (and being the approver it names).
 */
export function complianceRoutes(compliance: ComplianceApi) {
  return function register(app: FastifyInstance) {
    runRoutes(app, compliance);
    attestationRoutes(app, compliance);
    waiverRoutes(app, compliance);
  };
}
