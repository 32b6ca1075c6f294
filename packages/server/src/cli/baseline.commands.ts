import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import {
  createBaselineService,
  describeBaselineErrors,
  describeChange,
  frameworkClauses,
  type BaselineChange,
  type BaselineError,
  type BaselineService,
  type Compliance,
  validateBaselineText,
} from '../compliance/index.ts';
import type { Platform } from '../platform.ts';
import {
  common,
  configFrom,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

/** What the commands use of a platform; a build without the compliance service still has the baseline. */
interface BaselinePlatform {
  store: Platform['store'];
  events: Platform['events'];
  now: () => number;
  compliance?: Pick<Compliance, 'baseline' | 'run'>;
}

/** The baseline service of a platform. */
const baselineOf = (p: BaselinePlatform): BaselineService =>
  p.compliance?.baseline ?? createBaselineService({ db: p.store.db, events: p.events, now: p.now });

/** The text of a document given on the command line. */
function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** `FILE:LINE: path: message`, as compilers print them. */
function errorLine(file: string, e: BaselineError): string {
  const where = e.line === null ? file : `${file}:${e.line}`;
  return `${where}: ${e.path ? `${e.path}: ` : ''}${e.message}`;
}

function printChanges(changes: readonly BaselineChange[]): void {
  if (changes.length === 0) {
    process.stdout.write('no changes\n');
    return;
  }
  for (const c of changes) process.stdout.write(`  ${describeChange(c)}\n`);
}

/**
 * The baseline a command reads from FILE (the service validates it again): an invalid one is refused with a
 * one-line reason naming each error by line.
 */
function validText(file: string, service: Pick<BaselineService, 'validate'>): string {
  const text = readText(file);
  const result = service.validate(text);
  if (!result.ok)
    throw new BulwarkError('validation_failed', `${file}: ${describeBaselineErrors(result.errors)}`);
  return text;
}

function showCommand(): Command {
  return common(
    new Command('show').description('print the baseline in force (YAML; --json: with what the checks read)'),
  ).action(async (options: CommonOptions) => {
    const current = await withPlatform(options, (p) => baselineOf(p).current());
    if (options.json) return printJson(current);
    const applied =
      current.appliedAt === null
        ? 'built-in, none applied'
        : `applied ${iso(current.appliedAt)} by ${current.appliedBy ?? ''}`;
    process.stdout.write(`# ${current.name}, version ${current.version} (${applied})\n`);
    process.stdout.write(current.document.endsWith('\n') ? current.document : `${current.document}\n`);
  });
}

function validateCommand(): Command {
  return common(
    new Command('validate')
      .argument('<file>', 'a baseline document (YAML or JSON)')
      .description('check a baseline document without applying it; exits 1 listing every error'),
  ).action((file: string, options: CommonOptions) => {
    // Validation needs no data directory: the document is checked against the schema and the frameworks.
    const clauseExists = frameworkClauses(configFrom(options).compliance.frameworksDir);
    const result = validateBaselineText(readText(file), { clauseExists });
    if (options.json)
      printJson(
        result.ok
          ? { valid: true, name: result.baseline.name, errors: [] }
          : { valid: false, name: null, errors: result.errors },
      );
    else if (result.ok) process.stdout.write(`${file}: valid baseline "${result.baseline.name}"\n`);
    else for (const e of result.errors) process.stdout.write(`${errorLine(file, e)}\n`);
    if (!result.ok) process.exitCode = 1;
  });
}

function applyCommand(): Command {
  return common(
    new Command('apply')
      .argument('<file>', 'a baseline document (YAML or JSON)')
      .description('apply a baseline document as a new version (the same content again changes nothing)'),
    false,
  ).action(async (file: string, options: CommonOptions) => {
    await withPlatform(options, async (p) => {
      const service = baselineOf(p);
      const applied = await service.apply(validText(file, service), 'cli');
      if (applied.changes.length === 0)
        process.stdout.write(`baseline "${applied.name}" unchanged (version ${applied.version})\n`);
      else process.stdout.write(`baseline "${applied.name}" applied as version ${applied.version}\n`);
      printChanges(applied.changes);
      if (applied.changes.length > 0) await runChecks(p);
    });
  });
}

function diffCommand(): Command {
  return common(
    new Command('diff')
      .argument('<file>', 'a baseline document (YAML or JSON)')
      .description('what applying a baseline document would change, setting by setting'),
  ).action(async (file: string, options: CommonOptions) => {
    const changes = await withPlatform(options, (p) => {
      const service = baselineOf(p);
      return service.diff(validText(file, service));
    });
    if (options.json) printJson({ changes });
    else printChanges(changes);
  });
}

function historyCommand(): Command {
  return common(new Command('history').description('the baseline versions applied, newest first')).action(
    async (options: CommonOptions) => {
      const versions = await withPlatform(options, (p) => baselineOf(p).history());
      if (options.json) return printJson({ versions });
      printTable(
        versions.map((v) => ({
          version: String(v.version),
          name: v.name,
          applied: iso(v.appliedAt),
          by: v.appliedBy,
          sha256: v.sha256.slice(0, 12),
        })),
        ['version', 'name', 'applied', 'by', 'sha256'],
      );
    },
  );
}

/** A run's outcome in a few lines: the score per standard, then the checks that fail. */
export function printRunSummary(run: {
  id: string;
  checks: readonly { id: string; status: string; summary: string }[];
  standards: readonly { id: string; score: number | null }[];
}): void {
  process.stdout.write(`compliance run ${run.id}:\n`);
  for (const s of run.standards) {
    const score = s.score === null ? 'n/a' : `${Math.round(s.score * 100)}%`;
    process.stdout.write(`  ${s.id.padEnd(16)} ${score}\n`);
  }
  const failing = run.checks.filter((c) => c.status !== 'pass');
  if (failing.length === 0) process.stdout.write('every check passes\n');
  for (const c of failing) process.stdout.write(`  ${c.status.toUpperCase()} ${c.id}: ${c.summary}\n`);
}

/** The checks against the baseline just applied (a server also runs them when it sees the event). */
async function runChecks(p: BaselinePlatform): Promise<void> {
  if (!p.compliance) return;
  try {
    printRunSummary(await p.compliance.run({ trigger: 'baseline', actor: 'cli' }));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new BulwarkError('internal', `the baseline was applied, but the compliance run failed: ${reason}`, {
      cause: err,
    });
  }
}

/** `bulwark baseline show|validate|apply|diff|history`: the organisation baseline (issue 16). */
export function baselineCommands(): Command {
  return new Command('baseline')
    .description('the organisation baseline every compliance check reads')
    .addCommand(showCommand())
    .addCommand(validateCommand())
    .addCommand(applyCommand())
    .addCommand(diffCommand())
    .addCommand(historyCommand());
}
