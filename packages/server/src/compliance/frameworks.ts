import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  BulwarkError,
  frameworkIdPattern,
  standardIds,
  type FrameworkId,
  type StandardId,
} from '@bulwark/protocol';
import { checkIds, type CheckId } from './checks/types.ts';
import type { Framework, FrameworkClause, SecurityLevelRequirement } from './model.ts';

/**
 * Frameworks as data: one file per standard (frameworks/<standard>.json) maps each clause to the checks that
 * evidence it (automated), to an attestation (manual) or to a justification (not applicable, ETSI EN 303 645
 * 5.0-1). A directory of `<id>.json` files (config compliance.frameworksDir) replaces built-in files, so a
 * clause can be remapped without a code change, and adds a framework when `<id>` is not a built-in standard (an id
 * matching frameworkIdPattern, equal to the file's `id` field). Every file is validated before use; a bad file is an error naming
 * the file, the clause and the problem, never a silently wrong report.
 */

const clauseSchema = z
  .object({
    id: z.string().min(1),
    title: z.string().min(1),
    group: z.string().min(1),
    level: z.number().int().min(1).max(4).optional(),
    mode: z.enum(['automated', 'manual', 'not_applicable']),
    checks: z.array(z.string().min(1)).optional(),
    note: z.string().min(1).optional(),
    guidance: z.string().min(1).optional(),
    justification: z.string().min(1).optional(),
  })
  .strict();

const frameworkSchema = z
  .object({
    id: z.string().min(1),
    title: z.string().min(1),
    version: z.string().min(1),
    clauses: z.array(clauseSchema).min(1),
  })
  .strict();

type RawClause = z.output<typeof clauseSchema>;

const knownChecks: ReadonlySet<string> = new Set(checkIds);
const isCheckId = (id: string): id is CheckId => knownChecks.has(id);
const isStandardId = (id: string): id is StandardId => (standardIds as readonly string[]).includes(id);

/** The check that reads the security levels (phase 2): a level cannot require it without needing itself. */
const LEVEL_CONSUMER: CheckId = 'zones.security-level';

function invalid(file: string, problems: string[]): BulwarkError {
  const shown = problems.slice(0, 5).join('; ');
  const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
  return new BulwarkError('config_invalid', `framework file ${file}: ${shown}${more}`);
}

/** Where a zod issue is, in the file's own words: `clause "5.1-1" field checks`. */
function issueWhere(issuePath: readonly PropertyKey[], raw: unknown): string {
  const [first, index, ...rest] = issuePath;
  if (first !== 'clauses' || typeof index !== 'number')
    return issuePath.length ? `field ${issuePath.join('.')}` : '';
  const clauses = (raw as { clauses?: unknown }).clauses;
  const entry: unknown = Array.isArray(clauses) ? clauses[index] : undefined;
  const id = typeof entry === 'object' && entry !== null ? (entry as { id?: unknown }).id : undefined;
  const name = typeof id === 'string' ? `clause "${id}"` : `clause #${index + 1}`;
  return rest.length ? `${name} field ${rest.join('.')}` : name;
}

/** The mode-specific rules zod's shape cannot say. */
function clauseProblems(clause: RawClause, standard: string): string[] {
  const at = `clause "${clause.id}"`;
  const problems: string[] = [];
  if (clause.mode === 'automated') {
    if (!clause.checks?.length) problems.push(`${at} is automated but names no checks`);
    for (const check of clause.checks ?? []) {
      if (!isCheckId(check)) problems.push(`${at} names unknown check "${check}"`);
    }
    if (standard === 'iec-62443-3-3' && clause.level === undefined) {
      problems.push(`${at} is automated but has no security level (level 1..4 drives zones.security-level)`);
    }
  } else if (clause.checks !== undefined) {
    problems.push(`${at} is ${clause.mode}: checks belong to automated clauses only`);
  }
  if (clause.mode === 'manual' && !clause.guidance) {
    problems.push(`${at} is manual but has no guidance (what an attestation must show)`);
  }
  if (clause.mode === 'not_applicable' && !clause.justification) {
    problems.push(`${at} is not_applicable but has no justification`);
  }
  return problems;
}

function toClause(raw: RawClause): FrameworkClause {
  const clause: FrameworkClause = { id: raw.id, title: raw.title, group: raw.group, mode: raw.mode };
  if (raw.level !== undefined) clause.level = raw.level;
  if (raw.checks) clause.checks = raw.checks.filter(isCheckId);
  if (raw.note !== undefined) clause.note = raw.note;
  if (raw.guidance !== undefined) clause.guidance = raw.guidance;
  if (raw.justification !== undefined) clause.justification = raw.justification;
  return clause;
}

/** Validates one framework file's content; `expected` is the standard its file name says it holds. */
export function parseFramework(raw: unknown, file: string, expected: FrameworkId): Framework {
  const parsed = frameworkSchema.safeParse(raw);
  if (!parsed.success) {
    throw invalid(
      file,
      parsed.error.issues.map((issue) => {
        const where = issueWhere(issue.path, raw);
        return where ? `${where}: ${issue.message}` : issue.message;
      }),
    );
  }
  const data = parsed.data;
  const problems: string[] = [];
  if (data.id !== expected)
    problems.push(`id "${data.id}" does not match the file name (expected "${expected}")`);
  const seen = new Set<string>();
  for (const clause of data.clauses) {
    if (seen.has(clause.id)) problems.push(`clause "${clause.id}" appears more than once`);
    seen.add(clause.id);
    problems.push(...clauseProblems(clause, expected));
  }
  if (problems.length) throw invalid(file, problems);
  return { id: expected, title: data.title, version: data.version, clauses: data.clauses.map(toClause) };
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BulwarkError(
      'config_invalid',
      `framework file ${file} cannot be read: ${(error as Error).message}`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw invalid(file, [`not valid JSON: ${(error as Error).message}`]);
  }
}

/** The files of a directory, by framework id (only `*.json`): a built-in's replacement or an added framework. */
function overrideFiles(dir: string): Map<FrameworkId, string> {
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.json'));
  } catch (error) {
    throw new BulwarkError(
      'config_invalid',
      `compliance frameworks directory ${dir} cannot be read: ${(error as Error).message}`,
    );
  }
  const files = new Map<FrameworkId, string>();
  for (const name of names.sort()) {
    const standard = name.slice(0, -'.json'.length);
    if (!frameworkIdPattern.test(standard)) {
      throw invalid(path.join(dir, name), [
        `"${standard}" is not a framework id (the file name must be <id>.json, the id lower case letters, digits, . - (2..63), e.g. ${standardIds[0]}.json)`,
      ]);
    }
    files.set(standard, path.join(dir, name));
  }
  return files;
}

/**
 * The frameworks in force: the six built-in ones in `standardIds` order, each replaced by `<dir>/<standard>.json`
 * when that file exists, then every other `<dir>/<id>.json` as an added framework, by id. Throws
 * BulwarkError('config_invalid') naming the file, the clause and the problem.
 */
export function loadFrameworks(options: { dir?: string } = {}): Framework[] {
  const overrides = options.dir === undefined ? new Map<FrameworkId, string>() : overrideFiles(options.dir);
  const builtIn = standardIds.map((standard) => {
    // Read beside this module (new URL … import.meta.url) so the esbuild bundle finds the files too.
    const file =
      overrides.get(standard) ?? fileURLToPath(new URL(`./frameworks/${standard}.json`, import.meta.url));
    return parseFramework(readJson(file), file, standard);
  });
  const added = [...overrides]
    .filter(([id]) => !isStandardId(id))
    .map(([id, file]) => parseFramework(readJson(file), file, id));
  return [...builtIn, ...added];
}

/**
 * IEC 62443-3-3 security levels and the checks each needs: the checks of every automated clause whose level is at
 * most that level (cumulative). zones.security-level itself is left out: it is the check that reads these.
 */
export function securityLevelRequirements(frameworks: readonly Framework[]): SecurityLevelRequirement[] {
  const framework = frameworks.find((f) => f.id === 'iec-62443-3-3');
  if (!framework) return [];
  const levels = [1, 2, 3, 4] as const;
  return levels.map((level) => {
    const needed = new Set<CheckId>();
    for (const clause of framework.clauses) {
      if (clause.mode !== 'automated' || (clause.level ?? 1) > level) continue;
      for (const check of clause.checks ?? []) if (check !== LEVEL_CONSUMER) needed.add(check);
    }
    return { level, checks: checkIds.filter((id) => needed.has(id)) };
  });
}

/** For every check id, the clauses (per standard, in framework order) whose automated mapping names it. */
export function clausesByCheck(
  frameworks: readonly Framework[],
): Map<CheckId, Record<FrameworkId, string[]>> {
  const map = new Map<CheckId, Record<FrameworkId, string[]>>(checkIds.map((id) => [id, {}]));
  for (const framework of frameworks) {
    for (const clause of framework.clauses) {
      if (clause.mode !== 'automated') continue;
      for (const check of new Set(clause.checks ?? [])) {
        const byStandard = map.get(check) ?? {};
        (byStandard[framework.id] ??= []).push(clause.id);
        map.set(check, byStandard);
      }
    }
  }
  return map;
}
