import { Command } from 'commander';
import { common, iso, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';

const ACTOR = 'cli';

/**
 * A progress line on stderr while rows are stored (only on a terminal: piped output stays clean), cleared
 * when the work ends, whether it succeeded or not.
 */
async function withProgress<T>(
  what: string,
  work: (onProgress: (n: number, total: number) => void) => Promise<T>,
) {
  const progress = process.stderr.isTTY === true;
  try {
    return await work((n, total) => {
      if (progress) process.stderr.write(`\r${what} ${n}/${total}`);
    });
  } finally {
    if (progress) process.stderr.write('\r\x1b[K');
  }
}

/** `bulwark risk feeds import-kev FILE`: the CISA KEV catalog, checked whole, replacing the stored one. */
function importKevCommand(): Command {
  return common(
    new Command('import-kev')
      .description(
        "import the CISA Known Exploited Vulnerabilities catalog (known_exploited_vulnerabilities.json, gzipped or not): checked against CISA's schema, all or nothing",
      )
      .argument('<file>', 'the catalog JSON'),
  ).action(async (file: string, flags: CommonOptions) => {
    const result = await withPlatform(flags, (p) =>
      withProgress('storing', (onProgress) => p.risk.feeds.importKev(file, ACTOR, { onProgress })),
    );
    if (flags.json) printJson(result);
    else
      process.stdout.write(
        `KEV catalog ${result.version}: ${result.entries} known exploited vulnerabilities\n`,
      );
  });
}

/** `bulwark risk feeds import-epss FILE`: FIRST's daily EPSS scores, checked whole, replacing the stored ones. */
function importEpssCommand(): Command {
  return common(
    new Command('import-epss')
      .description(
        'import FIRST EPSS scores (epss_scores-YYYY-MM-DD.csv or .csv.gz as published): all or nothing, replacing the stored scores',
      )
      .argument('<file>', 'the EPSS CSV, gzipped or not'),
  ).action(async (file: string, flags: CommonOptions) => {
    const result = await withPlatform(flags, (p) =>
      withProgress('storing', (onProgress) => p.risk.feeds.importEpss(file, ACTOR, { onProgress })),
    );
    if (flags.json) printJson(result);
    else
      process.stdout.write(
        `EPSS ${result.version ?? '(model version not given)'} scored ${result.scoreDate ?? '(date not given)'}: ${result.entries} CVEs\n`,
      );
  });
}

/** `bulwark risk feeds status`: what each feed holds and when it was imported. */
function statusCommand(): Command {
  return common(
    new Command('status').description('the feeds imported: entries, when, the EPSS score date'),
  ).action(async (flags: CommonOptions) => {
    const status = await withPlatform(flags, (p) => p.risk.feeds.status());
    if (flags.json) return printJson(status);
    printTable(
      [
        {
          feed: 'kev',
          entries: String(status.kev.entries),
          imported: iso(status.kev.importedAt),
          scored: '',
        },
        {
          feed: 'epss',
          entries: String(status.epss.entries),
          imported: iso(status.epss.importedAt),
          scored: status.epss.scoreDate ?? '',
        },
      ],
      ['feed', 'entries', 'imported', 'scored'],
    );
  });
}

/** `bulwark risk feeds …`: offline threat-intelligence feeds, CISA KEV and FIRST EPSS (docs/risk.md). */
export function feedsCommand(): Command {
  return new Command('feeds')
    .description('offline threat-intelligence feeds: CISA KEV catalog, FIRST EPSS scores')
    .addCommand(importKevCommand())
    .addCommand(importEpssCommand())
    .addCommand(statusCommand());
}
