import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

export function auditCommands(): Command {
  const audit = new Command('audit-log').description('the tamper-evident audit log');

  common(
    audit.command('verify').description('check the hash chain; exits non-zero naming the first bad entry'),
  ).action(async (options: CommonOptions) => {
    const showProgress = process.stderr.isTTY && !options.json;
    const result = await withPlatform(options, (p) =>
      p.audit.verify({
        onProgress: showProgress ? (seq) => process.stderr.write(`\rverified ${seq} entries…`) : undefined,
      }),
    );
    if (showProgress) process.stderr.write('\r\x1b[K');
    if (options.json) printJson(result);
    if (!result.ok)
      throw new BulwarkError(
        'audit_chain_broken',
        `audit log verification FAILED at entry ${result.badSeq}: ${result.reason}`,
      );
    if (!options.json)
      process.stdout.write(`audit log intact: ${result.entries} entries, head ${result.headSeq}\n`);
  });

  common(audit.command('list').description('show the latest entries'))
    .option('--limit <n>', 'how many', intOption('--limit', 1, 10_000), 20)
    .action(async (options: CommonOptions & { limit: number }) => {
      const entries = await withPlatform(options, async (p) => {
        const head = await p.audit.head();
        return p.audit.readAfter(Math.max(0, head.seq - options.limit), options.limit);
      });
      if (options.json) printJson(entries);
      else
        printTable(
          entries.map((e) => ({
            seq: String(e.seq),
            time: iso(e.ts),
            type: e.type,
            actor: e.actor,
            subject: e.subject ?? '',
            data: JSON.stringify(e.data),
          })),
          ['seq', 'time', 'type', 'actor', 'subject', 'data'],
        );
    });
  return audit;
}
