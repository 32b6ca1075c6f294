import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import { common, iso, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';

export function banCommands(): Command {
  const ban = new Command('ban').description(
    'ban lists: addresses/CIDRs, devices and certificates, with expiry and origin (enforced by the broker firewall)',
  );

  common(
    ban
      .command('add')
      .description(
        'ban an address or CIDR (--address), a device (--device) or a certificate (--certificate)',
      ),
  )
    .option('--address <cidr>', 'IP address or CIDR')
    .option('--device <id>', 'device id')
    .option('--certificate <serial>', 'certificate serial (hex)')
    .requiredOption('--reason <text>', 'why (recorded in the audit log)')
    .option('--ttl <duration>', 'how long, e.g. 15m, 7d (default: until removed)')
    .action(
      async (
        options: CommonOptions & {
          address?: string;
          device?: string;
          certificate?: string;
          reason: string;
          ttl?: string;
        },
      ) => {
        const given = (['address', 'device', 'certificate'] as const).filter((k) => options[k] !== undefined);
        const kind = given[0];
        const value = kind === undefined ? undefined : options[kind];
        if (given.length !== 1 || kind === undefined || value === undefined)
          throw new BulwarkError(
            'validation_failed',
            'give exactly one of --address, --device or --certificate',
          );
        const ttlMs = options.ttl === undefined ? undefined : parseDuration(options.ttl);
        if (options.ttl !== undefined && ttlMs === undefined)
          throw new BulwarkError(
            'validation_failed',
            `--ttl "${options.ttl}" is not a duration such as 15m or 7d`,
          );
        const added = await withPlatform(options, (p) =>
          p.firewall.add(
            {
              kind,
              value,
              reason: options.reason,
              ttlMs,
            },
            'cli',
          ),
        );
        if (options.json) printJson(added);
        else
          process.stdout.write(
            `banned ${added.kind} ${added.value}${added.expiresAt ? ` until ${iso(added.expiresAt)}` : ''} (id ${added.id})\n`,
          );
      },
    );

  common(
    ban
      .command('list')
      .description('bans, active and expired: reason, origin (manual or automatic: rule), expiry'),
  ).action(async (options: CommonOptions) => {
    const bans = await withPlatform(options, (p) => p.firewall.list());
    if (options.json) return printJson(bans);
    printTable(
      bans.map((b) => ({
        id: b.id,
        kind: b.kind,
        value: b.value,
        reason: b.reason,
        origin: b.origin === 'automatic' ? `automatic: ${b.rule ?? '?'}` : 'manual',
        expires: b.expiresAt ? iso(b.expiresAt) : 'never',
        active: b.active ? 'yes' : 'no',
      })),
      ['id', 'kind', 'value', 'reason', 'origin', 'expires', 'active'],
    );
  });

  common(ban.command('remove <id>').description('lift a ban'), false).action(
    async (id: string, options: CommonOptions) => {
      await withPlatform(options, (p) => p.firewall.remove(id, 'cli'));
      process.stdout.write(`ban ${id} removed\n`);
    },
  );
  return ban;
}
