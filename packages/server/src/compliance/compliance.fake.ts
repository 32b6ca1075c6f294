import { BulwarkError, type FrameworkId } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { createAttestations } from './attestations.ts';
import type { CheckDefinition } from './checks/types.ts';
import type { ComplianceApi } from './compliance.routes.ts';
import { NO_RUN_YET } from './compliance.service.ts';
import type { Framework, RunResult } from './model.ts';
import { buildStandardReport } from './report.ts';
import { HTML_REPORT_CSP, renderHtml } from './report.html.ts';
import { fixtureRun, fixtureTrend } from './report.fixture.ts';
import { toOscal } from './report.oscal.ts';
import { createWaivers } from './waivers.ts';

/**
 * A compliance service for the route and CLI tests (the adapters, not the engine): runs are the report
 * fixture's run, attestations and waivers are the real ones on the given store.
 */

export { HTML_REPORT_CSP };

export const fakeFrameworks: Framework[] = [
  {
    id: 'etsi-en-303-645',
    title: 'ETSI EN 303 645',
    version: 'V3.1.3',
    clauses: [
      {
        id: '5.1-1',
        title: 'No universal default passwords',
        group: '5.1',
        mode: 'automated',
        checks: ['accounts.dormant', 'net.unauthenticated-listener'],
      },
      {
        id: '5.2-1',
        title: 'Vulnerability disclosure policy',
        group: '5.2',
        mode: 'manual',
        guidance: 'Show the published policy.',
      },
      {
        id: '5.13-1a',
        title: 'Input validation',
        group: '5.13',
        mode: 'not_applicable',
        justification: 'n/a',
      },
    ],
  },
];

const fakeCheck = (id: CheckDefinition['id']): CheckDefinition => ({
  id,
  title: `Check ${id}`,
  severity: 'high',
  rationale: 'Why it matters.',
  remediation: 'How to fix it.',
  reads: ['users'],
  run: () => ({ status: 'pass', summary: 'ok', examined: 0, evidence: [] }),
});

export const fakeChecks: CheckDefinition[] = [
  fakeCheck('accounts.dormant'),
  { ...fakeCheck('net.unauthenticated-listener'), needs: 'operator' },
];

export interface FakeCompliance extends ComplianceApi {
  /** Runs made so far (each a copy of the fixture run with its own id). */
  runsMade: RunResult[];
}

export function createFakeCompliance(deps: {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  approvers: string[];
}): FakeCompliance {
  const clauseExists = (standard: FrameworkId, clause: string) =>
    fakeFrameworks.find((f) => f.id === standard)?.clauses.find((c) => c.id === clause)?.mode;
  const attestations = createAttestations({
    ...deps,
    clauseExists,
    standards: fakeFrameworks.map((f) => f.id),
  });
  const waivers = createWaivers({
    ...deps,
    approvers: { canApprove: (name) => Promise.resolve(deps.approvers.includes(name)) },
  });
  const runsMade: RunResult[] = [];
  const find = (id: string) => {
    const run = runsMade.find((r) => r.id === id);
    if (!run) throw new BulwarkError('not_found', `no compliance run ${id}`);
    return run;
  };
  return {
    runsMade,
    frameworks: () => fakeFrameworks,
    checks: () => fakeChecks,
    run(options) {
      const run: RunResult = { ...fixtureRun(), id: `run-${runsMade.length + 1}`, createdBy: options.actor };
      runsMade.unshift(run);
      return Promise.resolve(run);
    },
    getRun: (id) => Promise.resolve(find(id)),
    listRuns: ({ limit }) =>
      Promise.resolve(
        runsMade.slice(0, limit).map((r) => ({
          id: r.id,
          trigger: r.trigger,
          startedAt: r.startedAt,
          finishedAt: r.finishedAt,
          createdBy: r.createdBy,
          baseline: r.baseline,
          counts: { pass: 10, fail: 2, error: 1, waived: 1 },
          scores: { 'etsi-en-303-645': 4 / 9 },
          hasResults: true,
        })),
      ),
    trend: () => Promise.resolve(fixtureTrend().reverse()),
    report(options) {
      const run = options.runId ? find(options.runId) : runsMade[0];
      if (!run) throw new BulwarkError('conflict', NO_RUN_YET);
      const report = buildStandardReport(run, options.standard, fixtureTrend());
      const body =
        options.format === 'html'
          ? renderHtml(report)
          : JSON.stringify(options.format === 'json' ? report : toOscal(report, run));
      const contentType = options.format === 'html' ? 'text/html; charset=utf-8' : 'application/json';
      return Promise.resolve({ contentType, body, runId: run.id });
    },
    attest: (input, actor) => attestations.record(input, actor),
    attestations: (options) => attestations.list(options),
    revokeAttestation: (id, reason, actor) => attestations.revoke(id, reason, actor),
    evidenceFile: (sha256) => attestations.file(sha256),
    waive: (input, actor) => waivers.grant(input, actor),
    waivers: (options) => waivers.list(options),
    revokeWaiver: (id, reason, actor) => waivers.revoke(id, reason, actor),
    approveWaiver: (id, actor) => waivers.approve(id, actor),
  };
}
