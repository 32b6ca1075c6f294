import { readFileSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { checkIds } from '../compliance/index.ts';
import { evaluateTara, scoreCvssBatch, taraHtml } from '../risk/index.ts';
import { common, printJson, printTable, readDocument, type CommonOptions } from './context.ts';
import {
  openRegister,
  riskRegisterCommands,
  saveTaraFile,
  type OpenRegister,
} from './risk-register.commands.ts';
import { feedsCommand } from './risk-feeds.commands.ts';

interface CvssOptions {
  file?: string;
  json?: boolean;
}

/** The vectors of a file: one per line (blank lines and `#` comments skipped), or a JSON array of strings. */
function vectorsOf(file: string): { where: string; vector: string }[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/^\uFEFF/, ''); // a byte-order mark is not part of the first vector
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

interface TaraOptions extends CommonOptions {
  html?: string;
  json?: boolean;
  save?: string;
}

/**
 * `bulwark risk tara FILE [--html OUT] [--json] [--save ID]`: rates a TARA document (YAML or JSON; docs/risk.md)
 * and prints its threat scenarios with feasibility, impact, risk and treatment, or writes the HTML report;
 * `--save` keeps it with the fleet (its threat scenarios become register risks; asset refs must exist).
 */
function taraCommand(open: OpenRegister): Command {
  return common(new Command('tara'), false)
    .description(
      'rate an ISO/SAE 21434 TARA document (YAML or JSON): feasibility, impact, risk value, treatment',
    )
    .argument('<file>', 'the TARA document')
    .option(
      '--html <file>',
      'write the HTML report (damage and threat scenarios, feasibility, risk, treatment per asset)',
    )
    .option('--json', 'print the rated work products as JSON')
    .option('--save <id>', 'save it with the fleet under this id: its threat scenarios become register risks')
    .action(async (file: string, options: TaraOptions) => {
      const known = new Set<string>(checkIds);
      const result = evaluateTara(readDocument(file), (id) => known.has(id));
      const saved = options.save ? await saveTaraFile(open, { file, id: options.save, options }) : null;
      if (options.html) {
        try {
          writeFileSync(options.html, taraHtml(result, Date.now()));
        } catch (err) {
          throw new BulwarkError('validation_failed', `--html ${options.html}: ${(err as Error).message}`);
        }
      }
      if (options.json) return printJson(saved ? { ...result, saved } : result);
      printTable(
        result.threatScenarios.map((t) => ({
          id: t.id,
          asset: t.asset,
          threat: t.title,
          feasibility: t.feasibility,
          impact: t.impact,
          risk: String(t.risk),
          treatment: t.treatment.option,
        })),
        ['id', 'asset', 'threat', 'feasibility', 'impact', 'risk', 'treatment'],
      );
      if (options.html) process.stdout.write(`report written to ${options.html}\n`);
      if (saved)
        process.stdout.write(
          `saved as TARA ${saved.tara.id} version ${saved.tara.version}: ${saved.risks.created} risks created, ${saved.risks.updated} updated, ${saved.risks.closed} closed (bulwark risk register)\n`,
        );
    });
}

/** `bulwark risk …`: risk assessment (docs/risk.md). */
export function riskCommands(open: OpenRegister = openRegister): Command {
  const risk = new Command('risk')
    .description('risk assessment: CVSS scores, TARAs, assets, the live risk register, zone levels, feeds')
    .addCommand(cvssCommand())
    .addCommand(taraCommand(open))
    .addCommand(feedsCommand());
  for (const command of riskRegisterCommands(open)) risk.addCommand(command);
  return risk;
}
