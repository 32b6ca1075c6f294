import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import { eventTypes, type AuditEntry, type EventType } from '../events/index.ts';
import type { Platform } from '../platform.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

interface ListFilter {
  types: EventType[] | undefined;
  subject: string | undefined;
  from: number | undefined;
}

/** `--since 2h` (a duration back from now) or `--since 2026-12-01T08:00Z` (a time). */
function parseSince(value: string): number {
  const back = /[a-z]\s*$/.test(value.trim()) ? parseDuration(value) : undefined;
  if (back !== undefined) return Date.now() - back;
  const at = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(at))
    throw new BulwarkError(
      'validation_failed',
      `--since "${value}" must be a duration back from now (30m, 2h, 7d) or a date/time (2026-12-01T08:00Z)`,
    );
  return at;
}

function parseTypes(value: string): EventType[] {
  return value.split(',').map((t) => {
    const type = t.trim();
    if (!(eventTypes as readonly string[]).includes(type))
      throw new BulwarkError(
        'validation_failed',
        `--type "${type}" is not an event type (e.g. mqtt.publish_denied, device.quarantined, alert.raised; see docs/audit-log.md)`,
      );
    return type as EventType;
  });
}

const matches = (e: AuditEntry, f: ListFilter) =>
  (!f.types || f.types.includes(e.type)) &&
  (f.subject === undefined || e.subject === f.subject) &&
  (f.from === undefined || e.ts >= f.from);

/** The latest `limit` entries matching the filter, oldest first. */
async function latest(p: Platform, f: ListFilter, limit: number): Promise<AuditEntry[]> {
  if (!f.types && f.subject === undefined && f.from === undefined) {
    const head = await p.audit.head();
    return p.audit.readAfter(Math.max(0, head.seq - limit), limit);
  }
  const kept: AuditEntry[] = [];
  for (const type of f.types ?? [undefined]) {
    let after: number | undefined;
    for (;;) {
      const page = await p.audit.query({ type, subject: f.subject, from: f.from, after, limit: 1000 });
      kept.push(...page);
      if (kept.length > limit * 2) kept.sort((a, b) => a.seq - b.seq).splice(0, kept.length - limit);
      const lastOfPage = page.at(-1);
      if (page.length < 1000 || !lastOfPage) break;
      after = lastOfPage.seq;
    }
  }
  return kept.sort((a, b) => a.seq - b.seq).slice(-limit);
}

const rowOf = (e: AuditEntry) => ({
  seq: String(e.seq),
  time: iso(e.ts),
  type: e.type,
  actor: e.actor,
  subject: e.subject ?? '',
  data: JSON.stringify(e.data),
});
const columns = ['seq', 'time', 'type', 'actor', 'subject', 'data'];

/** Follows the log until interrupted: one line (or one JSON object, with --json) per new matching entry. */
async function follow(p: Platform, f: ListFilter, from: { afterSeq: number; json: boolean }): Promise<void> {
  const { json } = from;
  let last = from.afterSeq;
  let stop = false;
  const done = new Promise<void>((resolve) => {
    const end = () => {
      stop = true;
      resolve();
    };
    process.once('SIGINT', end);
    process.once('SIGTERM', end);
  });
  while (!stop) {
    for (;;) {
      const page = await p.audit.readAfter(last, 500);
      for (const e of page) {
        last = e.seq;
        if (!matches(e, f)) continue;
        if (json) process.stdout.write(JSON.stringify(e) + '\n');
        else {
          const r = rowOf(e);
          process.stdout.write(columns.map((c) => r[c as keyof typeof r]).join('  ') + '\n');
        }
      }
      if (page.length < 500) break;
    }
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 500))]);
  }
}

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

  common(audit.command('list').description('show the latest entries, filtered; --follow for new ones'))
    .option('--limit <n>', 'how many', intOption('--limit', 1, 10_000), 20)
    .option('--type <types>', 'only these event types (comma-separated), e.g. mqtt.publish_denied')
    .option('--subject <subject>', 'only entries about this, e.g. device:pump-1, user:alice')
    .option('--since <when>', 'only entries since a duration ago (30m, 2h, 7d) or a date/time')
    .option('--follow', 'keep printing new matching entries until interrupted (Ctrl-C)')
    .action(
      async (
        options: CommonOptions & {
          limit: number;
          type?: string;
          subject?: string;
          since?: string;
          follow?: boolean;
        },
      ) => {
        const filter: ListFilter = {
          types: options.type === undefined ? undefined : parseTypes(options.type),
          subject: options.subject,
          from: options.since === undefined ? undefined : parseSince(options.since),
        };
        await withPlatform(options, async (p) => {
          const head = await p.audit.head();
          const entries = await latest(p, filter, options.limit);
          if (options.follow) {
            // JSON lines while following: each entry is complete the moment it is printed.
            for (const e of entries)
              if (options.json) process.stdout.write(JSON.stringify(e) + '\n');
              else {
                const r = rowOf(e);
                process.stdout.write(columns.map((c) => r[c as keyof typeof r]).join('  ') + '\n');
              }
            return follow(p, filter, {
              afterSeq: Math.max(head.seq, entries.at(-1)?.seq ?? 0),
              json: options.json === true,
            });
          }
          if (options.json) printJson(entries);
          else printTable(entries.map(rowOf), columns);
        });
      },
    );
  return audit;
}
