import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import { common, iso, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';

export function banCommands(): Command {
  const ban = new Command('ban').description(
    'ban lists: addresses/CIDRs and devices, with expiry (enforced by the broker firewall)',
  );

  common(ban.command('add').description('ban an address or CIDR (--address) or a device (--device)'))
    .option('--address <cidr>', 'IP address or CIDR')
    .option('--device <id>', 'device id')
    .requiredOption('--reason <text>', 'why (recorded in the audit log)')
    .option('--ttl <duration>', 'how long, e.g. 15m, 7d (default: until removed)')
    .action(
      async (
        options: CommonOptions & { address?: string; device?: string; reason: string; ttl?: string },
      ) => {
        if (Boolean(options.address) === Boolean(options.device))
          throw new BulwarkError('validation_failed', 'give exactly one of --address or --device');
        const ttlMs = options.ttl === undefined ? undefined : parseDuration(options.ttl);
        if (options.ttl !== undefined && ttlMs === undefined)
          throw new BulwarkError(
            'validation_failed',
            `--ttl "${options.ttl}" is not a duration such as 15m or 7d`,
          );
        const added = await withPlatform(options, (p) =>
          p.firewall.add(
            {
              kind: options.address ? 'address' : 'device',
              value: (options.address ?? options.device)!,
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

  common(ban.command('list').description('bans')).action(async (options: CommonOptions) => {
    const bans = await withPlatform(options, (p) => p.firewall.list());
    if (options.json) return printJson(bans);
    printTable(
      bans.map((b) => ({
        id: b.id,
        kind: b.kind,
        value: b.value,
        reason: b.reason,
        expires: b.expiresAt ? iso(b.expiresAt) : 'never',
        active: b.active ? 'yes' : 'no',
      })),
      ['id', 'kind', 'value', 'reason', 'expires', 'active'],
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
