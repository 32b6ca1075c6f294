import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import type { Device } from '../devices/index.ts';
import { revocationReasons, type RevocationReason } from '../pki/index.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';

function deviceRow(d: Device): Record<string, string> {
  return {
    id: d.id,
    group: d.group ?? '',
    status: d.status,
    enrolled: iso(d.enrolledAt),
    created: iso(d.createdAt),
  };
}

export function deviceCommands(): Command {
  const device = new Command('device').description('manage devices: add, enrollment tokens, list, revoke');

  common(device.command('add <id>').description('register a device so it can be given an enrollment token'))
    .option('--group <group>', 'device group')
    .action(async (id: string, options: CommonOptions & { group?: string }) => {
      const added = await withPlatform(options, (p) => p.devices.add({ id, group: options.group }, ACTOR));
      if (options.json) printJson(added);
      else
        process.stdout.write(
          `device ${added.id} added${added.group ? ` to group ${added.group}` : ''}; next: bulwark device token ${added.id}\n`,
        );
    });

  common(device.command('token <id>').description('print a one-time enrollment token for the device'))
    .option(
      '--ttl <duration>',
      'how long the token is valid, e.g. 30m, 24h, 7d (default: pki.enrollmentTokenTtl, 24h)',
    )
    .action(async (id: string, options: CommonOptions & { ttl?: string }) => {
      const ttl = options.ttl === undefined ? undefined : parseDuration(options.ttl);
      if (options.ttl !== undefined && ttl === undefined)
        throw new BulwarkError(
          'validation_failed',
          `--ttl "${options.ttl}" is not a duration such as 30m, 24h or 7d`,
        );
      const issued = await withPlatform(options, (p) => p.devices.issueToken(id, ACTOR, ttl));
      if (options.json)
        printJson({ token: issued.token, deviceId: id, expiresAt: new Date(issued.expiresAt).toISOString() });
      else process.stdout.write(`${issued.token}\n`);
    });

  common(device.command('list').description('list devices'))
    .option('--group <group>', 'only this group')
    .option('--status <status>', 'only this status: registered, active, disabled, revoked')
    .option('--limit <n>', 'at most this many', intOption('--limit', 1, 10_000), 1000)
    .option('--after <id>', 'start after this device id (pagination)')
    .action(
      async (options: CommonOptions & { group?: string; status?: string; limit: number; after?: string }) => {
        const devices = await withPlatform(options, (p) =>
          p.devices.list({
            group: options.group,
            status: options.status,
            limit: options.limit,
            after: options.after,
          }),
        );
        if (options.json) printJson(devices);
        else printTable(devices.map(deviceRow), ['id', 'group', 'status', 'enrolled', 'created']);
      },
    );

  common(device.command('show <id>').description('show one device')).action(
    async (id: string, options: CommonOptions) => {
      const d = await withPlatform(options, (p) => p.devices.get(id));
      if (options.json) printJson(d);
      else printTable([deviceRow(d)], ['id', 'group', 'status', 'enrolled', 'created']);
    },
  );

  common(
    device
      .command('revoke <id>')
      .description('revoke the device and all its certificates (live sessions are dropped within 1 s)'),
  )
    .option('--reason <reason>', `one of ${revocationReasons.join(', ')}`, 'cessationOfOperation')
    .action(async (id: string, options: CommonOptions & { reason: string }) => {
      const serials = await withPlatform(options, async (p) =>
        (await p.pki()).revokeDevice(id, ACTOR, options.reason as RevocationReason),
      );
      if (options.json) printJson({ deviceId: id, revokedCertificates: serials });
      else
        process.stdout.write(
          `device ${id} revoked (${serials.length} certificate${serials.length === 1 ? '' : 's'})\n`,
        );
    });

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    common(
      device
        .command(`${name} <id>`)
        .description(
          disabled ? 'refuse the device until enabled again' : 'let a disabled device connect again',
        ),
    )
      .option('--reason <text>', 'why (recorded in the audit log)')
      .action(async (id: string, options: CommonOptions & { reason?: string }) => {
        const d = await withPlatform(options, (p) =>
          p.devices.setDisabled(id, disabled, ACTOR, options.reason),
        );
        if (options.json) printJson(d);
        else process.stdout.write(`device ${id} is ${d.status}\n`);
      });
  }
  for (const [name, quarantined] of [
    ['quarantine', true],
    ['release', false],
  ] as const) {
    common(
      device
        .command(`${name} <id>`)
        .description(
          quarantined
            ? 'quarantine: the device keeps only devices/ID/quarantine/# and its command topic (within 1 s)'
            : 'end quarantine',
        ),
    )
      .option('--reason <text>', 'why (recorded in the audit log)')
      .action(async (id: string, options: CommonOptions & { reason?: string }) => {
        await withPlatform(options, (p) => p.access.setQuarantine(id, quarantined, ACTOR, options.reason));
        process.stdout.write(`device ${id} ${quarantined ? 'quarantined' : 'released from quarantine'}\n`);
      });
  }
  return device;
}
