import { Command } from 'commander';
import { BulwarkError, durationMs, parseDurationMs } from '@bulwark/protocol';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

/**
 * A time given on the command line: `-1h` (that long before now), epoch milliseconds, or an ISO 8601
 * date-time.
 */
export function parseTimeOption(text: string, name: string, now: number = Date.now()): number {
  if (text.startsWith('-')) {
    const ms = durationMs(text.slice(1));
    if (ms !== undefined && ms > 0) return now - ms;
  } else {
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
    if (Number.isSafeInteger(ms)) return ms;
  }
  throw new BulwarkError(
    'validation_failed',
    `${name} "${text}" is not a time: use an ISO date-time, epoch milliseconds or -DURATION (e.g. -1h)`,
  );
}

/** A payload for a table cell: its JSON, or its size when it is not JSON. */
function shownPayload(m: { payload?: unknown; bytes: number }): string {
  if (m.payload === null || m.payload === undefined) return `(${m.bytes} bytes, not JSON)`;
  const text = JSON.stringify(m.payload);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function enableCommand(): Command {
  return common(
    new Command('enable')
      .argument('<pattern>', 'an MQTT topic filter under devices/+/… or devices/<id>/…')
      .description('store the device messages of a topic pattern (or change its retention)'),
  )
    .requiredOption('--retention <duration>', 'how long messages are kept, e.g. 30d (1m to 10 years)')
    .action(async (pattern: string, options: CommonOptions & { retention: string }) => {
      const retentionMs = parseDurationMs(options.retention, '--retention');
      const set = await withPlatform(options, (p) => p.telemetry.setPattern(pattern, { retentionMs }, 'cli'));
      if (options.json) printJson(set);
      else process.stdout.write(`storing ${set.pattern} for ${options.retention}\n`);
    });
}

function disableCommand(): Command {
  return common(
    new Command('disable')
      .argument('<pattern>', 'a stored pattern')
      .description('stop storing a pattern and delete the messages stored under it'),
  ).action(async (pattern: string, options: CommonOptions) => {
    const removed = await withPlatform(options, (p) => p.telemetry.removePattern(pattern, 'cli'));
    if (options.json) printJson(removed);
    else process.stdout.write(`${removed.pattern} no longer stored (${removed.deleted} messages deleted)\n`);
  });
}

function listCommand(): Command {
  return common(
    new Command('list').description('stored patterns: retention, messages stored, oldest message'),
  ).action(async (options: CommonOptions) => {
    const patterns = await withPlatform(options, (p) => p.telemetry.listPatterns());
    if (options.json) return printJson(patterns);
    printTable(
      patterns.map((p) => ({
        pattern: p.pattern,
        retention: `${Math.round(p.retentionMs / 60_000)}m`,
        messages: String(p.messages),
        oldest: iso(p.oldestAt),
        by: p.createdBy,
      })),
      ['pattern', 'retention', 'messages', 'oldest', 'by'],
    );
  });
}

interface QueryOptions extends CommonOptions {
  from?: string;
  to?: string;
  topic?: string;
  after?: string;
  limit: number;
}

function queryCommand(): Command {
  return common(
    new Command('query')
      .argument('<device>', 'device id')
      .description("a device's stored messages in arrival order (one page; --after NEXT for the next)"),
  )
    .option('--from <time>', 'received at or after: ISO date-time, epoch ms or -DURATION (e.g. -1h)')
    .option('--to <time>', 'received before (same forms)')
    .option('--topic <filter>', 'a topic or an MQTT filter')
    .option('--after <id>', 'the `next` of the previous page')
    .option('--limit <n>', 'messages per page (1-1000)', intOption('--limit', 1, 1000), 100)
    .action(async (deviceId: string, options: QueryOptions) => {
      const page = await withPlatform(options, (p) =>
        p.telemetry.query({
          deviceId,
          from: options.from === undefined ? undefined : parseTimeOption(options.from, '--from'),
          to: options.to === undefined ? undefined : parseTimeOption(options.to, '--to'),
          topic: options.topic,
          after: options.after,
          limit: options.limit,
        }),
      );
      if (options.json) return printJson(page);
      printTable(
        page.items.map((m) => ({ received: iso(m.receivedAt), topic: m.topic, payload: shownPayload(m) })),
        ['received', 'topic', 'payload'],
      );
      if (page.next) process.stdout.write(`more: --after ${page.next}\n`);
    });
}

export function telemetryCommands(): Command {
  return new Command('telemetry')
    .description('the optional telemetry store: topic patterns whose device messages are kept, and queries')
    .addCommand(enableCommand())
    .addCommand(disableCommand())
    .addCommand(listCommand())
    .addCommand(queryCommand());
}
