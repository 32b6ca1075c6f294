import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { scoreCvssBatch } from '../risk/index.ts';
import { printJson, printTable } from './context.ts';

interface CvssOptions {
  file?: string;
  json?: boolean;
}

/** The vectors of a file: one per line (blank lines and `#` comments skipped), or a JSON array of strings. */
function vectorsOf(file: string): { where: string; vector: string }[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('validation_failed', `--file ${file}: ${(err as Error).message}`);
  }
  if (text.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new BulwarkError('validation_failed', `--file ${file}: not JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed) || parsed.some((v) => typeof v !== 'string'))
      throw new BulwarkError(
        'validation_failed',
        `--file ${file}: a JSON file must be an array of vector strings`,
      );
    return (parsed as string[]).map((vector, i) => ({ where: `item ${i + 1}`, vector }));
  }
  return text
    .split(/\r?\n/)
    .map((vector, i) => ({ where: `line ${i + 1}`, vector: vector.trim() }))
    .filter(({ vector }) => vector !== '' && !vector.startsWith('#'));
}

const fixed = (n: number | null) => (n === null ? '' : n.toFixed(1));

/**
 * `bulwark risk cvss VECTOR… | --file FILE [--json]`: CVSS 3.0, 3.1 and 4.0 scores (base, temporal or threat,
 * environmental), each vector checked strictly; a refused one is named with its line and the command exits 1
 * after scoring the rest.
 */
function cvssCommand(): Command {
  return new Command('cvss')
    .description(
      'score CVSS 3.0, 3.1 and 4.0 vectors (base, temporal/threat, environmental) as FIRST specifies',
    )
    .argument('[vectors...]', 'vectors, e.g. CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H')
    .option('--file <file>', 'vectors from a file: one per line (# comments), or a JSON array of strings')
    .option('--json', 'print JSON')
    .action((vectors: string[], options: CvssOptions) => {
      const items = [
        ...vectors.map((vector, i) => ({ where: `argument ${i + 1}`, vector })),
        ...(options.file ? vectorsOf(options.file) : []),
      ];
      if (items.length === 0)
        throw new BulwarkError('validation_failed', 'name at least one vector, or --file FILE');
      const scored = scoreCvssBatch(items.map((i) => i.vector)).map((r, i) => ({
        ...r,
        where: items[i]?.where ?? '',
      }));
      const refused = scored.filter((r) => !r.ok);
      if (options.json)
        printJson({
          scores: scored.map((r) =>
            r.ok ? { where: r.where, ...r.result } : { where: r.where, vector: r.vector, error: r.error },
          ),
          refused: refused.length,
        });
      else {
        const rows = scored.flatMap((r) =>
          r.ok
            ? [
                {
                  vector: r.result.vector,
                  base: fixed(r.result.base),
                  'temporal/threat': fixed(r.result.temporal),
                  environmental: fixed(r.result.environmental),
                  score: fixed(r.result.score),
                  severity: r.result.severity,
                },
              ]
            : [],
        );
        if (rows.length > 0)
          printTable(rows, ['vector', 'base', 'temporal/threat', 'environmental', 'score', 'severity']);
        for (const r of refused) if (!r.ok) process.stderr.write(`${r.where}: ${r.error}\n`);
      }
      if (refused.length > 0) process.exitCode = 1;
    });
}

/** `bulwark risk …`: risk assessment (docs/risk.md). */
export function riskCommands(): Command {
  return new Command('risk').description('risk assessment: CVSS scores').addCommand(cvssCommand());
}
