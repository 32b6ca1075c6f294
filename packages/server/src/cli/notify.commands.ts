import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { BulwarkError, severities, type Severity } from '@bulwark/protocol';
import type { Channel } from '../notify/index.ts';
import {
  common,
  intOption,
  severityOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';

interface AddOptions extends CommonOptions {
  webhook?: string;
  syslog?: string;
  transport?: string;
  format?: string;
  facility?: number;
  ca?: string;
  types?: string;
  minSeverity?: Severity;
  from?: string;
  disabled?: boolean;
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read --ca ${file}: ${(err as Error).message}`);
  }
}

function parseFrom(value: string | undefined): 'head' | 'beginning' | number | undefined {
  if (value === undefined || value === 'head' || value === 'beginning') return value;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new BulwarkError(
      'validation_failed',
      `--from must be head, beginning or an audit seq, not "${value}"`,
    );
  return n;
}

function channelRow(c: Channel): Record<string, string> {
  return {
    name: c.name,
    kind: c.kind,
    format: c.format,
    target: c.kind === 'syslog' ? `${c.settings.transport ?? 'tls'}://${c.target}` : c.target,
    types: c.filter.types.join(',') + (c.filter.minSeverity ? ` (>=${c.filter.minSeverity})` : ''),
    status: !c.enabled ? 'disabled' : c.status.failing ? `failing (${c.status.attempts})` : 'ok',
    lag: String(c.status.lag),
    delivered: iso(c.status.lastDeliveredAt),
    id: c.id,
  };
}

export function notifyCommands(): Command {
  const notify = new Command('notify').description(
    'notification channels: signed webhooks and syslog (RFC 5424 or CEF, over TLS or TCP) that follow the audit log',
  );

  common(
    notify
      .command('add <name>')
      .description(
        'add a channel: --webhook <https-url> or --syslog <host:port> (new events only, unless --from)',
      ),
  )
    .option('--webhook <url>', 'POST each event, signed (Standard Webhooks), to this https:// URL')
    .option('--syslog <host:port>', 'send each event to this syslog collector')
    .addOption(
      new Option('--transport <transport>', 'syslog transport (default tls)').choices(['tls', 'tcp']),
    )
    .addOption(
      new Option('--format <format>', 'syslog message format (default rfc5424)').choices(['rfc5424', 'cef']),
    )
    .option('--facility <n>', 'syslog facility 0-23 (default 10, authpriv)', intOption('--facility', 0, 23))
    .option('--ca <file>', "PEM file the receiver's TLS certificate must chain to")
    .option('--types <globs>', 'comma-separated event types or globs (default alert.*,response.*)')
    .option(
      '--min-severity <level>',
      `drop rated events below this (${severities.join(', ')})`,
      severityOption('--min-severity'),
    )
    .option('--from <where>', 'head (default), beginning, or an audit seq to start from')
    .option('--disabled', 'create it paused')
    .action(async (name: string, options: AddOptions) => {
      const target = options.webhook ?? options.syslog;
      if (Boolean(options.webhook) === Boolean(options.syslog) || target === undefined)
        throw new BulwarkError('validation_failed', 'give exactly one of --webhook or --syslog');
      const created = await withPlatform(options, (p) =>
        p.notify.create(
          {
            name,
            kind: options.webhook ? 'webhook' : 'syslog',
            target,
            format: options.format,
            transport: options.transport,
            facility: options.facility,
            ca: options.ca === undefined ? undefined : readCa(options.ca),
            filter: {
              types: options.types
                ?.split(',')
                .map((t) => t.trim())
                .filter(Boolean),
              minSeverity: options.minSeverity,
            },
            enabled: !options.disabled,
            from: parseFrom(options.from),
          },
          ACTOR,
        ),
      );
      if (options.json) return printJson(created);
      process.stdout.write(
        `channel ${created.name} added (id ${created.id}), from audit seq ${created.cursor + 1}\n`,
      );
      if (created.secret)
        process.stdout.write(
          `signing secret (shown once, store it in the receiver): ${created.secret}\n` +
            'verify each request as docs/notifications.md shows (Standard Webhooks)\n',
        );
    });

  common(notify.command('list').description('channels and their delivery status')).action(
    async (options: CommonOptions) => {
      const channels = await withPlatform(options, (p) => p.notify.list());
      if (options.json) return printJson(channels);
      printTable(channels.map(channelRow), [
        'name',
        'kind',
        'format',
        'target',
        'types',
        'status',
        'lag',
        'delivered',
        'id',
      ]);
      for (const c of channels)
        if (c.status.failing && c.status.lastError)
          process.stdout.write(`${c.name}: ${c.status.lastError}\n`);
    },
  );

  common(notify.command('remove <name-or-id>').description('remove a channel'), false).action(
    async (id: string, options: CommonOptions) => {
      await withPlatform(options, (p) => p.notify.remove(id, ACTOR));
      process.stdout.write(`channel ${id} removed\n`);
    },
  );

  common(
    notify.command('test <name-or-id>').description('send a test message now and report the outcome'),
  ).action(async (id: string, options: CommonOptions) => {
    const result = await withPlatform(options, (p) => p.notify.test(id, ACTOR));
    if (options.json) printJson(result);
    else if (result.ok) process.stdout.write(`test message delivered to ${id} in ${result.durationMs} ms\n`);
    if (!result.ok) throw new BulwarkError('bad_request', `test message to ${id} failed: ${result.error}`);
  });
  return notify;
}
