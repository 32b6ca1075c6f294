/**
 * The organisation baseline (issue 16): one YAML document, versioned, holding the parameters every compliance
 * check reads. Version 0 is the built-in baseline (every default); each apply of a document that changes
 * something is a new version, committed with its `compliance.baseline_applied` event and the diff.
 */
import { BulwarkError, DEFAULT_BASELINE_NAME, type Baseline } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import { isUniqueViolation, type Db } from '../store/index.ts';
import {
  defaultBaseline,
  diffBaselines,
  renderBaseline,
  sha256Hex,
  validateBaselineText,
  type BaselineChange,
  type BaselineError,
  type BaselineTextOptions,
  type BaselineValidation,
  type ClauseExists,
} from './baseline.document.ts';
import { loadFrameworks } from './frameworks.ts';
import {
  insertBaselineRow,
  latestBaselineRow,
  listBaselineRows,
  type BaselineRow,
} from './baseline.store.ts';

export type { BaselineChange, BaselineError, BaselineValidation, ClauseExists } from './baseline.document.ts';

/** The baseline in force. */
export interface CurrentBaseline {
  /** 0: the built-in baseline (none applied yet). */
  version: number;
  name: string;
  /** The document as applied; version 0: the defaults rendered as YAML. */
  document: string;
  /** What the checks read: defaults filled in, durations in milliseconds. */
  baseline: Baseline;
  /** Hex SHA-256 of `document`. */
  sha256: string;
  appliedAt: number | null;
  appliedBy: string | null;
}

export interface BaselineVersion {
  version: number;
  name: string;
  sha256: string;
  appliedAt: number;
  appliedBy: string;
}

export interface AppliedBaseline {
  /** The version in force after the apply (unchanged when nothing changed). */
  version: number;
  name: string;
  /** Empty: the document was the baseline in force; no version was made. */
  changes: BaselineChange[];
}

export interface BaselineService {
  /** The baseline in force (cached; refreshed when any process applies one). */
  current(): Promise<CurrentBaseline>;
  validate(text: string): BaselineValidation;
  /** What applying `text` would change; an invalid document is a `validation_failed` error naming its errors. */
  diff(text: string): Promise<BaselineChange[]>;
  /** Validates and applies `text` as a new version (nothing when it changes nothing). */
  apply(text: string, actor: string): Promise<AppliedBaseline>;
  /** The versions applied, newest first. */
  history(options?: { limit?: number }): Promise<BaselineVersion[]>;
}

export interface BaselineServiceDeps {
  db: Db;
  events: Pick<EventBus, 'atomically' | 'on'>;
  now: () => number;
  /**
   * Does a framework have this clause? With it, validate, diff and apply refuse `compliance.notApplicable`
   * entries naming no clause (a stored version is read without it: a framework file may change later).
   */
  clauseExists?: ClauseExists | undefined;
}

/** `clauseExists` over the frameworks in force: the built-in ones, replaced or added by `frameworksDir`'s files. */
export function frameworkClauses(frameworksDir: string | undefined): ClauseExists {
  const frameworks = loadFrameworks(frameworksDir === undefined ? {} : { dir: frameworksDir });
  const clauses = new Map(frameworks.map((f) => [f.id, new Set(f.clauses.map((c) => c.id))]));
  return (standard, clause) =>
    clause === undefined ? clauses.has(standard) : (clauses.get(standard)?.has(clause) ?? false);
}

/** The built-in baseline as version 0. */
function builtIn(): CurrentBaseline {
  const baseline = defaultBaseline();
  const document = renderBaseline(baseline);
  return {
    version: 0,
    name: DEFAULT_BASELINE_NAME,
    document,
    baseline,
    sha256: sha256Hex(document),
    appliedAt: null,
    appliedBy: null,
  };
}

/** A stored version as the checks read it (it validated when applied; a schema change may refuse it now). */
function fromRow(row: BaselineRow): CurrentBaseline {
  const parsed = validateBaselineText(row.document);
  if (!parsed.ok)
    throw new BulwarkError(
      'config_invalid',
      `baseline version ${row.version} no longer validates: ${describeBaselineErrors(parsed.errors)}; apply a corrected one`,
    );
  return { ...row, baseline: parsed.baseline };
}

/** Errors as one line: `line 3: accounts.dormantAfter: message; …`. */
export function describeBaselineErrors(errors: readonly BaselineError[]): string {
  return errors
    .map((e) => [e.line === null ? undefined : `line ${e.line}`, e.path || undefined, e.message])
    .map((parts) => parts.filter((p) => p !== undefined).join(': '))
    .join('; ');
}

/** The baseline a valid document describes, or a `validation_failed` error listing every problem. */
export function parseOrThrow(text: string, options: BaselineTextOptions = {}): Baseline {
  const result = validateBaselineText(text, options);
  if (result.ok) return result.baseline;
  const count = result.errors.length === 1 ? '1 error' : `${result.errors.length} errors`;
  throw new BulwarkError(
    'validation_failed',
    `the baseline has ${count}: ${describeBaselineErrors(result.errors)}`,
    {
      details: { errors: result.errors },
    },
  );
}

async function applyInTransaction(
  deps: BaselineServiceDeps,
  input: { text: string; baseline: Baseline; actor: string },
): Promise<AppliedBaseline> {
  return deps.events.atomically(async (tx, emit) => {
    const latest = await latestBaselineRow(tx);
    const before = latest ? fromRow(latest).baseline : defaultBaseline();
    const changes = diffBaselines(before, input.baseline);
    if (changes.length === 0) return { version: latest?.version ?? 0, name: before.name, changes };
    const row: BaselineRow = {
      version: (latest?.version ?? 0) + 1,
      name: input.baseline.name,
      document: input.text,
      sha256: sha256Hex(input.text),
      appliedAt: deps.now(),
      appliedBy: input.actor,
    };
    await insertBaselineRow(tx, row);
    emit({
      type: 'compliance.baseline_applied',
      actor: input.actor,
      subject: 'baseline',
      data: { version: row.version, name: row.name, sha256: row.sha256, changes },
    });
    return { version: row.version, name: row.name, changes };
  });
}

export function createBaselineService(deps: BaselineServiceDeps): BaselineService {
  const options: BaselineTextOptions = { clauseExists: deps.clauseExists };
  let cached: Promise<CurrentBaseline> | undefined;
  const load = async () => {
    const row = await latestBaselineRow(deps.db);
    return row ? fromRow(row) : builtIn();
  };
  // Another process (the CLI, another node) may apply one: the bus delivers its event from the log's tail.
  deps.events.on('compliance.baseline_applied', () => {
    cached = undefined;
  });

  const current = () => {
    const pending = (cached ??= load());
    // A failed read is not remembered: the next call reads again.
    pending.catch(() => {
      if (cached === pending) cached = undefined;
    });
    return pending;
  };

  return {
    current,
    validate: (text) => validateBaselineText(text, options),
    async diff(text) {
      const after = parseOrThrow(text, options);
      return diffBaselines((await current()).baseline, after);
    },
    async apply(text, actor) {
      const baseline = parseOrThrow(text, options);
      try {
        return await applyInTransaction(deps, { text, baseline, actor });
      } catch (err) {
        if (isUniqueViolation(err))
          throw new BulwarkError('conflict', 'another baseline was applied at the same moment: try again');
        throw err;
      } finally {
        cached = undefined;
      }
    },
    history: ({ limit = 100 } = {}) => listBaselineRows(deps.db, limit),
  };
}
