import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { api, BulwarkError, frameworkIdPattern, standardIds, type FrameworkId } from '@bulwark/protocol';
import {
  checkCatalogView,
  reportFileName,
  runsView,
  type AttestationRecord,
  type ComplianceApi,
  type ReportFormat,
  type RunResult,
  type WaiverRecord,
} from '../compliance/index.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';
const MAX_FILE_BYTES = 2 * 1024 * 1024;

/** Runs `work` on the compliance service of a platform built from the command's options. */
export type OpenCompliance = <T>(
  options: CommonOptions,
  work: (c: ComplianceApi) => Promise<T>,
) => Promise<T>;

/** A platform that may not offer compliance (a build without it): the commands then say so. */
function complianceOf(platform: { config: unknown; compliance?: ComplianceApi }): ComplianceApi {
  if (!platform.compliance) throw new BulwarkError('unavailable', 'this platform has no compliance service');
  return platform.compliance;
}

const openFromPlatform: OpenCompliance = (options, work) =>
  withPlatform(options, (platform) => work(complianceOf(platform)));

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * `YYYY-MM-DD` as the END of that day in UTC (23:59:59.999Z, as the API reads a date-only value): the date
 * named is the last day it still holds. The error names the option.
 */
export function dateOption(name: string) {
  return (value: string): number => {
    const ms = api.compliance.endOfDayUtc(value);
    if (!Number.isFinite(ms))
      throw new BulwarkError('validation_failed', `${name} must be a date as YYYY-MM-DD, not "${value}"`);
    return ms;
  };
}

/** `--limit` of the attestation and waiver lists (the API's bounds). */
const listLimit = intOption('--limit', 1, 1000);

/** A built-in standard or a framework added in the server's frameworksDir (the server refuses an unknown one). */
function standardOption(value: string): FrameworkId {
  if (!frameworkIdPattern.test(value))
    throw new BulwarkError(
      'validation_failed',
      `--standard must be a framework id (${standardIds.join(', ')} or one added in compliance.frameworksDir), not "${value}"`,
    );
  return value;
}

const pct = (score: number | null | undefined) =>
  score === null || score === undefined ? 'n/a' : `${Math.round(score * 1000) / 10}%`;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

const MEDIA_TYPES: Record<string, string> = {
  '.pdf': 'application/pdf',
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.yaml': 'application/yaml',
  '.yml': 'application/yaml',
  '.html': 'text/html',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.zip': 'application/zip',
};

/** An evidence file given on the command line: checked for size before it is read. */
function readEvidenceFile(file: string): { name: string; mediaType: string; content: string } {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${file}: ${(err as Error).message}`);
  }
  if (size > MAX_FILE_BYTES)
    throw new BulwarkError(
      'validation_failed',
      `${file}: ${size} bytes, more than ${MAX_FILE_BYTES} (2 MiB)`,
    );
  const name = path.basename(file);
  const mediaType = MEDIA_TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';
  return { name, mediaType, content: readFileSync(file).toString('base64') };
}

// --- runs ---------------------------------------------------------------------------------------------------

/** Per standard its score and failing clauses, then the failing checks with their summary. */
export function printRun(run: RunResult): void {
  process.stdout.write(
    `run ${run.id} (${run.trigger}, baseline v${run.baseline.version} ${run.baseline.name}) finished ${iso(run.finishedAt)}\n\n`,
  );
  printTable(
    run.standards.map((s) => ({
      standard: s.id,
      score: pct(s.score),
      failing: String(s.counts.fail + s.counts.error),
      manual: String(s.counts.manual),
      pass: String(s.counts.pass),
      waived: String(s.counts.waived),
      'n/a': String(s.counts.not_applicable),
    })),
    ['standard', 'score', 'failing', 'manual', 'pass', 'waived', 'n/a'],
  );
  const failing = run.checks.filter((c) => c.status !== 'pass');
  process.stdout.write(`\nfailing checks (${failing.length} of ${run.checks.length}):\n`);
  printTable(
    failing.map((c) => ({
      check: c.id,
      status: c.waiver ? `${c.status} (waived until ${day(c.waiver.expiresAt)})` : c.status,
      severity: c.severity,
      summary: c.summary,
    })),
    ['check', 'status', 'severity', 'summary'],
  );
}

function runCommands(compliance: Command, open: OpenCompliance): void {
  common(
    compliance.command('run').description('run every automated check now against the live fleet'),
  ).action(async (o: CommonOptions) => {
    if (process.stderr.isTTY) process.stderr.write('running the compliance checks…\n');
    const run = await open(o, (c) => c.run({ trigger: 'manual', actor: ACTOR }));
    if (o.json) return printJson(run);
    printRun(run);
  });
  common(compliance.command('runs').description('recent runs, newest first, with their scores'))
    .option('--limit <n>', 'runs (1-500)', intOption('--limit', 1, 500), 20)
    .action(async (o: CommonOptions & { limit: number }) => {
      const view = await open(o, (c) => runsView(c, o.limit));
      if (o.json) return printJson(view);
      const standards = [...new Set(view.runs.flatMap((r) => Object.keys(r.scores)))];
      printTable(
        view.runs.map((r) => ({
          id: r.id,
          finished: iso(r.finishedAt),
          trigger: r.trigger,
          baseline: `v${r.baseline.version}`,
          failing: String(r.counts.fail + r.counts.error),
          ...Object.fromEntries(standards.map((s) => [s, pct(r.scores[s])])),
        })),
        ['id', 'finished', 'trigger', 'baseline', 'failing', ...standards],
      );
    });
  common(
    compliance.command('show <run>').description('one run: scores, failing checks and their evidence'),
  ).action(async (id: string, o: CommonOptions) => {
    const run = await open(o, (c) => c.getRun(id));
    if (o.json) return printJson(run);
    printRun(run);
    for (const c of run.checks.filter((x) => x.status !== 'pass' && x.evidence.length > 0)) {
      process.stdout.write(`\n${c.id}: ${c.summary}\n`);
      for (const e of c.evidence) process.stdout.write(`  ${e.kind} ${e.id}: ${e.detail}\n`);
    }
  });
  common(
    compliance.command('checks').description('the automated checks and the clauses each evidences'),
  ).action(async (o: CommonOptions) => {
    const checks = await open(o, (c) => Promise.resolve(checkCatalogView(c)));
    if (o.json) return printJson(checks);
    printTable(
      checks.map((c) => ({
        id: c.id,
        severity: c.severity,
        needs: c.needs ?? '',
        title: c.title,
      })),
      ['id', 'severity', 'needs', 'title'],
    );
  });
}

interface ReportOptions extends CommonOptions {
  standard: FrameworkId;
  format: ReportFormat;
  out?: string;
  run?: string;
}

function reportCommand(open: OpenCompliance): Command {
  return common(
    new Command('report').description('a standard’s report: self-contained HTML, JSON or OSCAL'),
    false,
  )
    .requiredOption(
      '--standard <id>',
      `the standard: ${standardIds.join(', ')} or an added framework's id`,
      standardOption,
    )
    .addOption(
      new Option('--format <format>', 'html, json or oscal (assessment results)')
        .choices(['html', 'json', 'oscal'])
        .default('html'),
    )
    .option('--out <file>', 'write it to this file (default: standard output)')
    .option('--run <id>', 'the run (default: the latest)')
    .action(async (o: ReportOptions) => {
      const report = await open(o, (c) =>
        c.report({ standard: o.standard, format: o.format, ...(o.run ? { runId: o.run } : {}) }, ACTOR),
      );
      if (!o.out) {
        process.stdout.write(report.body.endsWith('\n') ? report.body : `${report.body}\n`);
        return;
      }
      try {
        writeFileSync(o.out, report.body);
      } catch (err) {
        throw new BulwarkError('validation_failed', `cannot write ${o.out}: ${(err as Error).message}`);
      }
      process.stdout.write(
        `wrote the ${o.standard} report (${o.format}, run ${report.runId}) to ${o.out}` +
          ` (suggested name ${reportFileName(o.standard, o.format, report.runId)})\n`,
      );
    });
}

// --- attestations and waivers -------------------------------------------------------------------------------

function printAttestations(list: readonly AttestationRecord[]): void {
  printTable(
    list.map((a) => ({
      id: a.id,
      standard: a.standard,
      clause: a.clause,
      owner: a.owner,
      files: String(a.files.length),
      review: day(a.reviewAt),
      expires: day(a.expiresAt),
      revoked: a.revokedAt === null ? '' : iso(a.revokedAt),
    })),
    ['id', 'standard', 'clause', 'owner', 'files', 'review', 'expires', 'revoked'],
  );
}

function printWaivers(list: readonly WaiverRecord[]): void {
  printTable(
    list.map((w) => ({
      id: w.id,
      check: w.check,
      approver: w.approver,
      status: w.status,
      expires: day(w.expiresAt),
      by: w.createdBy,
      revoked: w.revokedAt === null ? '' : iso(w.revokedAt),
      reason: w.reason,
    })),
    ['id', 'check', 'approver', 'status', 'expires', 'by', 'revoked', 'reason'],
  );
}

interface AttestOptions extends CommonOptions {
  standard: FrameworkId;
  clause: string;
  statement: string;
  owner: string;
  file?: string[];
  reviewBy: number;
  expires: number;
}

function attestCommand(open: OpenCompliance): Command {
  return common(new Command('attest').description('attest a manual clause, with evidence files'))
    .requiredOption(
      '--standard <id>',
      `the standard: ${standardIds.join(', ')} or an added framework's id`,
      standardOption,
    )
    .requiredOption('--clause <id>', 'the clause id, e.g. 5.2-1')
    .requiredOption('--statement <text>', 'what is in place (up to 4000 characters)')
    .requiredOption('--owner <name>', 'the person or team who owns it')
    .option('--file <file>', 'an evidence file, at most 2 MiB (repeatable, up to 10)', collect)
    .requiredOption(
      '--review-by <date>',
      'review it by the end of this day, UTC (YYYY-MM-DD)',
      dateOption('--review-by'),
    )
    .requiredOption(
      '--expires <date>',
      'it counts until the end of this day, UTC (YYYY-MM-DD)',
      dateOption('--expires'),
    )
    .action(async (o: AttestOptions) => {
      const files = (o.file ?? []).map(readEvidenceFile);
      const input = {
        standard: o.standard,
        clause: o.clause,
        statement: o.statement,
        owner: o.owner,
        files,
        reviewAt: o.reviewBy,
        expiresAt: o.expires,
      };
      const recorded = await open(o, (c) => c.attest(input, ACTOR));
      if (o.json) return printJson(recorded);
      process.stdout.write(
        `attestation ${recorded.id} recorded for ${recorded.standard} ${recorded.clause}` +
          ` (${recorded.files.length} files, review by ${day(recorded.reviewAt)}, expires ${day(recorded.expiresAt)})\n`,
      );
    });
}

interface WaiveOptions extends CommonOptions {
  check: string;
  reason: string;
  approver: string;
  expires: number;
}

function waiveCommand(open: OpenCompliance): Command {
  return common(
    new Command('waive')
      .description('ask to accept a failing check until a date (at most 365 days); pending until approved')
      .addHelpText(
        'after',
        '\nThe waiver is pending, not in force, until the approver approves it, signed in as themselves:\n' +
          'POST /api/v1/compliance/waivers/<id>/approve (or the console). The CLI has no signed-in second\n' +
          'person, so it cannot approve (four eyes).',
      ),
  )
    .requiredOption('--check <id>', 'the check id, e.g. devices.not-seen')
    .requiredOption('--reason <text>', 'why the risk is accepted (at least 10 characters)')
    .requiredOption('--approver <user>', 'the user who must approve it (holding compliance:approve)')
    .requiredOption(
      '--expires <date>',
      'it holds until the end of this day, UTC (YYYY-MM-DD)',
      dateOption('--expires'),
    )
    .action(async (o: WaiveOptions) => {
      const input = { check: o.check, reason: o.reason, approver: o.approver, expiresAt: o.expires };
      const asked = await open(o, (c) => c.waive(input, ACTOR));
      if (o.json) return printJson(asked);
      process.stdout.write(
        `waiver ${asked.id} for ${asked.check} until ${day(asked.expiresAt)} is pending: it awaits approval by ` +
          `${asked.approver} through the API (POST /api/v1/compliance/waivers/${asked.id}/approve) or the console\n`,
      );
    });
}

type ListOptions = CommonOptions & { all?: boolean; limit: number };

function listAndRevokeCommands(compliance: Command, open: OpenCompliance): void {
  common(compliance.command('attestations').description('attestations of manual clauses, newest first'))
    .option('--all', 'include revoked ones')
    .option('--limit <n>', 'at most this many (1-1000)', listLimit, 100)
    .action(async (o: ListOptions) => {
      const list = await open(o, (c) => c.attestations({ includeRevoked: o.all === true, limit: o.limit }));
      if (o.json) return printJson(list);
      printAttestations(list);
    });
  common(compliance.command('revoke-attestation <id>').description('revoke an attestation'))
    .requiredOption('--reason <text>', 'why')
    .action(async (id: string, o: CommonOptions & { reason: string }) => {
      const revoked = await open(o, (c) => c.revokeAttestation(id, o.reason, ACTOR));
      if (o.json) return printJson(revoked);
      process.stdout.write(`attestation ${revoked.id} (${revoked.standard} ${revoked.clause}) revoked\n`);
    });
  common(
    compliance
      .command('waivers')
      .description('waivers of failing checks, pending and approved, newest first'),
  )
    .option('--all', 'include revoked ones')
    .option('--limit <n>', 'at most this many (1-1000)', listLimit, 100)
    .action(async (o: ListOptions) => {
      const list = await open(o, (c) => c.waivers({ includeRevoked: o.all === true, limit: o.limit }));
      if (o.json) return printJson(list);
      printWaivers(list);
    });
  common(compliance.command('revoke-waiver <id>').description('revoke a waiver'))
    .requiredOption('--reason <text>', 'why')
    .action(async (id: string, o: CommonOptions & { reason: string }) => {
      const revoked = await open(o, (c) => c.revokeWaiver(id, o.reason, ACTOR));
      if (o.json) return printJson(revoked);
      process.stdout.write(`waiver ${revoked.id} (${revoked.check}) revoked\n`);
    });
}

/**
 * `bulwark compliance …`: runs, results, checks, reports, attestations and waivers (docs/compliance.md).
 * `open` gives the commands a compliance service (the platform's; tests give their own).
 */
export function complianceCommands(open: OpenCompliance = openFromPlatform): Command {
  const compliance = new Command('compliance').description(
    'continuous compliance: checks, runs, reports, attestations and waivers',
  );
  runCommands(compliance, open);
  compliance.addCommand(reportCommand(open));
  compliance.addCommand(attestCommand(open));
  compliance.addCommand(waiveCommand(open));
  listAndRevokeCommands(compliance, open);
  return compliance;
}
