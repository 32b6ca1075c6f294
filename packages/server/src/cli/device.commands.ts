import { readFileSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import { BulwarkError, durationMs } from '@bulwark/protocol';
import { formatWait, type CommandOutcome } from '../commands/index.ts';
import { parseDuration } from '../config/index.ts';
import {
  deviceStates,
  importRows,
  parseCsv,
  IMPORT_MAX_BYTES,
  type DeviceView,
  type ImportResult,
} from '../devices/index.ts';
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

/** "3m ago", "in 41d": times an operator reads at a glance (the JSON keeps epoch ms). */
function relative(ms: number | null, now = Date.now()): string {
  if (ms === null) return '-';
  const d = Math.abs(ms - now);
  const text =
    d < 60_000
      ? `${Math.round(d / 1000)}s`
      : d < 3_600_000
        ? `${Math.round(d / 60_000)}m`
        : d < 172_800_000
          ? `${Math.round(d / 3_600_000)}h`
          : `${Math.round(d / 86_400_000)}d`;
  return ms <= now ? `${text} ago` : `in ${text}`;
}

function deviceRow(d: DeviceView): Record<string, string> {
  return {
    id: d.id,
    group: d.group ?? '',
    status: d.state,
    online: d.online ? 'yes' : 'no',
    'last seen': d.online ? 'now' : relative(d.lastSeenAt),
    'cert expires': d.certificateExpiresAt === null ? '-' : relative(d.certificateExpiresAt),
    firmware: d.firmwareVersion ?? '-',
    zone: d.zone ?? '-',
  };
}
const deviceColumns = ['id', 'group', 'status', 'online', 'last seen', 'cert expires', 'firmware', 'zone'];

/** `--attr k=v` (repeatable): `k=` removes k. */
function collectAttr(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0)
    throw new BulwarkError('validation_failed', `--attr "${value}" must be NAME=VALUE (NAME= removes it)`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}
const collect = (value: string, previous: string[] = []) => [...previous, value];

function ttlOption(ttl: string | undefined): number | undefined {
  if (ttl === undefined) return undefined;
  const ms = parseDuration(ttl);
  if (ms === undefined)
    throw new BulwarkError('validation_failed', `--ttl "${ttl}" is not a duration such as 30m, 24h or 7d`);
  return ms;
}

/** Reads a CSV file given on the command line, bounded before it is read. */
function readCsv(file: string) {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${file}: ${(err as Error).message}`);
  }
  if (size > IMPORT_MAX_BYTES)
    throw new BulwarkError('validation_failed', `${file} is larger than ${IMPORT_MAX_BYTES} bytes: split it`);
  const text = readFileSync(file, 'utf8');
  return importRows(parseCsv(text));
}

/** `bulwark device` add, token: register a device and give it an enrollment token. */
function registerCommands(device: Command): void {
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
      const ttl = ttlOption(options.ttl);
      const issued = await withPlatform(options, (p) => p.devices.issueToken(id, ACTOR, ttl));
      if (options.json)
        printJson({ token: issued.token, deviceId: id, expiresAt: new Date(issued.expiresAt).toISOString() });
      else process.stdout.write(`${issued.token}\n`);
    });
}

/** `bulwark device` list, show: what the operator reads. */
function readCommands(device: Command): void {
  common(
    device
      .command('list')
      .description('list devices: state, online, last seen, certificate expiry, firmware, zone'),
  )
    .option('--group <group>', 'only this group')
    .option('--status <state>', `only this state: ${deviceStates.join(', ')}`)
    .option('--limit <n>', 'at most this many', intOption('--limit', 1, 10_000), 1000)
    .option('--after <id>', 'start after this device id (pagination)')
    .action(
      async (options: CommonOptions & { group?: string; status?: string; limit: number; after?: string }) => {
        const devices = await withPlatform(options, async (p) =>
          p.devices.views(
            await p.devices.list({
              group: options.group,
              state: options.status,
              limit: options.limit,
              after: options.after,
            }),
          ),
        );
        if (options.json) printJson(devices);
        else printTable(devices.map(deviceRow), deviceColumns);
      },
    );

  common(
    device
      .command('show <id>')
      .description('one device: state, attributes, certificate, firmware, and its latest refusals'),
  )
    .option('--denials <n>', 'how many recent refusals to show', intOption('--denials', 0, 100), 10)
    .action(async (id: string, options: CommonOptions & { denials: number }) => {
      const d = await withPlatform(options, (p) => p.devices.show(id, options.denials));
      if (options.json) return printJson(d);
      const attrs = Object.entries(d.attributes).map(([k, v]) => `${k}=${v}`);
      const lines = [
        `device        ${d.id}`,
        `state         ${d.state}${d.state !== d.status ? ` (status ${d.status})` : ''}${d.quarantinedAt !== null ? `, quarantined since ${iso(d.quarantinedAt)}` : ''}`,
        `group         ${d.group ?? '-'}`,
        `zone          ${d.zone ?? '-'}`,
        `attributes    ${attrs.length ? attrs.join(' ') : '-'}`,
        `online        ${d.online ? `yes, since ${iso(d.connectedSince)}` : 'no'}`,
        `last seen     ${d.lastSeenAt === null ? 'never' : `${iso(d.lastSeenAt)} (${relative(d.lastSeenAt)})`}`,
        `certificate   ${d.certificateExpiresAt === null ? 'none' : `expires ${iso(d.certificateExpiresAt)} (${relative(d.certificateExpiresAt)})`}`,
        `firmware      ${d.firmwareVersion ?? 'not reported'}`,
        `enrolled      ${iso(d.enrolledAt) || 'no'}`,
        `created       ${iso(d.createdAt)}`,
        '',
        // MQTT 3.1.1 cannot refuse a QoS 0/1 PUBLISH [MQTT-3.3.5-2]: the broker drops it and closes the
        // connection, so `mosquitto_pub` reports success. The audit log has the reason.
        d.recentDenials.length
          ? 'recent refusals (a publish the broker refused was dropped; the client is not told why):'
          : 'recent refusals: none in the last 7 days',
        ...d.recentDenials.map(
          (x) =>
            `  ${iso(x.at)}  ${x.type.replace('mqtt.', '').replace('_', ' ')}${x.topic ? `  ${x.topic}` : ''}  ${x.reason}`,
        ),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}

/** `bulwark device` update, import: change devices, add many from a file. */
function changeCommands(device: Command): void {
  common(
    device
      .command('update <id>')
      .description('change group and attributes (attributes drive policies and rollouts)'),
  )
    .option('--group <group>', 'move to this group ("" for none)')
    .option('--attr <name=value>', 'set an attribute (repeatable); NAME= removes it', collectAttr)
    .option('--unset-attr <name>', 'remove an attribute (repeatable)', collect)
    .action(
      async (
        id: string,
        options: CommonOptions & { group?: string; attr?: Record<string, string>; unsetAttr?: string[] },
      ) => {
        if (options.group === undefined && !options.attr && !options.unsetAttr)
          throw new BulwarkError(
            'validation_failed',
            'nothing to change: give --group, --attr or --unset-attr',
          );
        const d = await withPlatform(options, (p) =>
          p.devices.update(
            id,
            { group: options.group, setAttributes: options.attr, unsetAttributes: options.unsetAttr },
            ACTOR,
          ),
        );
        if (options.json) return printJson(d);
        const attrs = Object.entries(d.attributes).map(([k, v]) => `${k}=${v}`);
        process.stdout.write(
          `device ${d.id} updated: group ${d.group ?? '-'}, attributes ${attrs.length ? attrs.join(' ') : '-'}\n`,
        );
      },
    );

  common(
    device
      .command('import <file>')
      .description(
        'add devices from a CSV file (header: id,group,attr.NAME,…) and print one enrollment token per device',
      ),
  )
    .option(
      '--ttl <duration>',
      'how long the tokens are valid, e.g. 24h, 7d (default: pki.enrollmentTokenTtl)',
    )
    .action(async (file: string, options: CommonOptions & { ttl?: string }) => {
      const ttl = ttlOption(options.ttl);
      const rows = readCsv(file);
      const progress = process.stderr.isTTY === true;
      const results: ImportResult[] = await withPlatform(options, async (p) => {
        const out: ImportResult[] = [];
        for (const row of rows) {
          if ('error' in row) out.push({ line: row.line, id: row.id, ok: false, error: row.error });
          else
            try {
              const added = await p.devices.addWithToken(row, ACTOR, ttl);
              out.push({
                line: row.line,
                id: row.id,
                ok: true,
                token: added.token,
                expiresAt: added.expiresAt,
              });
            } catch (err) {
              out.push({ line: row.line, id: row.id, ok: false, error: BulwarkError.from(err).message });
            }
          if (progress) process.stderr.write(`\rimporting ${out.length}/${rows.length}`);
        }
        return out;
      });
      if (progress) process.stderr.write('\r\x1b[K');
      const failed = results.filter((r) => !r.ok);
      if (options.json) printJson(results);
      else
        printTable(
          results.map((r) => ({
            line: String(r.line),
            id: r.id,
            result: r.ok ? 'added' : `FAILED: ${r.error}`,
            token: r.ok ? r.token : '',
            expires: r.ok ? iso(r.expiresAt) : '',
          })),
          ['line', 'id', 'result', 'token', 'expires'],
        );
      if (failed.length)
        throw new BulwarkError(
          'validation_failed',
          `${failed.length} of ${results.length} rows not imported (line ${failed.map((f) => f.line).join(', ')}); the other rows were added`,
        );
    });
}

/** `bulwark device` revoke, disable/enable, quarantine/release. */
function lifecycleCommands(device: Command): void {
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
          p.devices.setDisabled(id, { disabled, reason: options.reason }, ACTOR),
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
        const resolved = await withPlatform(options, async (p) => {
          // The held alerts are read before the release: a running server resolves them too when it
          // sees the release (possibly first); resolving is idempotent, and this way the alerts close
          // even when no server is running, and the operator is told which ones either way.
          const held = quarantined ? [] : await p.monitor.alerts.heldAlerts(id);
          await p.access.setQuarantine(id, { quarantined, reason: options.reason }, ACTOR);
          return quarantined ? [] : p.monitor.alerts.releaseHeld(id, ACTOR, held);
        });
        process.stdout.write(`device ${id} ${quarantined ? 'quarantined' : 'released from quarantine'}\n`);
        for (const a of resolved)
          process.stdout.write(`alert ${a.id} (${a.detector}) resolved: ${a.resolution}\n`);
      });
  }
}

/** On a terminal, asks before something that cannot be undone; a script (no TTY) states it with --yes or not. */
async function confirmed(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return true;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `bulwark device` lost, found, decommission: a device leaving service (issue 17). */
function retirementCommands(device: Command): void {
  common(
    device
      .command('lost <id>')
      .description(
        'report the device lost or stolen: revoke its certificates, quarantine it, alert when it is seen again',
      ),
  )
    .option('--stolen', 'it was stolen (recorded with the event)', false)
    .option('--reason <text>', 'why (recorded in the audit log)')
    .action(async (id: string, options: CommonOptions & { stolen: boolean; reason?: string }) => {
      const lost = await withPlatform(options, (p) =>
        p.devices.markLost(id, { reason: options.reason, stolen: options.stolen }, ACTOR),
      );
      if (options.json) printJson(lost);
      else
        process.stdout.write(
          `device ${id} reported ${options.stolen ? 'stolen' : 'lost'} (${plural(lost.revokedCertificates.length, 'certificate')} revoked); quarantined until released\n`,
        );
    });

  common(
    device.command('found <id>').description('a lost device is back: registered again, still quarantined'),
  )
    .option('--reason <text>', 'why (recorded in the audit log)')
    .action(async (id: string, options: CommonOptions & { reason?: string }) => {
      const d = await withPlatform(options, (p) =>
        p.devices.markFound(id, { reason: options.reason }, ACTOR),
      );
      if (options.json) printJson(d);
      else
        process.stdout.write(
          `device ${id} found: ${d.status}, quarantined; next: bulwark device token ${id}, then bulwark device release ${id}\n`,
        );
    });

  common(
    device
      .command('decommission <id>')
      .description(
        'retire the device: revoke its certificates, erase its data, keep a proof; its id is never reused',
      ),
  )
    .option('--reason <text>', 'why (recorded in the audit log)')
    .option('--yes', 'do not ask for confirmation', false)
    .action(async (id: string, options: CommonOptions & { reason?: string; yes: boolean }) => {
      if (!options.yes && !(await confirmed(`decommission ${id}: revoke it and erase its data for good?`)))
        throw new BulwarkError('validation_failed', 'not confirmed: nothing changed');
      const done = await withPlatform(options, (p) =>
        p.devices.decommission(id, { reason: options.reason }, ACTOR),
      );
      if (options.json) return printJson(done);
      const erased = Object.entries(done.erased).map(([module, n]) => `${module} ${n}`);
      process.stdout.write(
        [
          `device ${id} decommissioned: ${plural(done.revokedCertificates.length, 'certificate')} revoked`,
          `erased: ${erased.length ? erased.join(', ') : 'nothing'}`,
          done.proof
            ? `proof: audit entry ${done.proof.seq} (hash ${done.proof.hash})`
            : 'proof: the audit entry is not in the log yet (bulwark audit-log list --type device.decommissioned)',
        ].join('\n') + '\n',
      );
    });
}

/** `--args JSON` (the command's data; `--data` names the data directory): parsed before anything is sent. */
function dataOption(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BulwarkError('validation_failed', `--args is not JSON: ${(err as Error).message}`);
  }
}

/** The one line a command that did not succeed ends with (exit 1). */
function outcomeLine(
  outcome: CommandOutcome,
  device: { id: string; timeoutMs: number; lastSeenAt: number | null },
): string {
  if (outcome.status !== 'timeout')
    return `${outcome.status}: device ${device.id}: ${outcome.message ?? 'no reason given'}`;
  const wait = formatWait(device.timeoutMs);
  if (outcome.online) return `timeout: device ${device.id} is online but did not answer within ${wait}`;
  const seen = device.lastSeenAt === null ? 'never connected' : `last seen ${relative(device.lastSeenAt)}`;
  return `timeout: device ${device.id} is offline (${seen}); no answer within ${wait}`;
}

/** `bulwark device command`: through the audit log to the running server, and the answer back. */
function commandCommand(device: Command): void {
  common(
    device
      .command('command <id> <name>')
      .description('send the device a command (through the running server) and print its answer'),
  )
    .option('--args <json>', "JSON the device receives as the command's data")
    .option('--timeout <duration>', 'how long to wait for the answer, 1s to 10m', '30s')
    .action(async (id: string, name: string, options: CommonOptions & { args?: string; timeout: string }) => {
      if (options.data !== undefined && /^\s*[[{]/.test(options.data))
        throw new BulwarkError(
          'validation_failed',
          "--data names the data directory: give the command's JSON data as --args",
        );
      const data = dataOption(options.args);
      const timeoutMs = durationMs(options.timeout);
      if (timeoutMs === undefined)
        throw new BulwarkError(
          'validation_failed',
          `--timeout "${options.timeout}" is not a duration such as 30s or 2m`,
        );
      const { outcome, lastSeenAt } = await withPlatform(options, async (p) => {
        const sent = await p.commands.send({ deviceId: id, name, data, timeoutMs, actor: ACTOR });
        return { outcome: sent, lastSeenAt: (await p.devices.find(id))?.lastSeenAt ?? null };
      });
      if (options.json) printJson(outcome);
      else if (outcome.status === 'ok')
        process.stdout.write(
          `ok${outcome.message ? `: ${outcome.message}` : ''}\n` +
            (outcome.result === undefined ? '' : `${JSON.stringify(outcome.result, null, 2)}\n`),
        );
      if (outcome.status === 'ok') return;
      process.stderr.write(`${outcomeLine(outcome, { id, timeoutMs, lastSeenAt })}\n`);
      process.exitCode = 1;
    });
}

export function deviceCommands(): Command {
  const device = new Command('device').description(
    'manage devices: add, import, enrollment tokens, list, show, update, quarantine, revoke, lost, found, decommission, command',
  );

  registerCommands(device);
  readCommands(device);
  changeCommands(device);
  lifecycleCommands(device);
  retirementCommands(device);
  commandCommand(device);
  return device;
}
