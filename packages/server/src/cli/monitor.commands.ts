import { Command } from 'commander';
import { BulwarkError, severities } from '@bulwark/protocol';
import { alertStatuses, responseActions, type Alert } from '../monitor/index.ts';
import {
  common,
  intOption,
  severityOption,
  iso,
  printJson,
  printTable,
  readDocument,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';

function oneOf<T extends string>(name: string, allowed: readonly T[]) {
  return (value: string): T => {
    if (!(allowed as readonly string[]).includes(value))
      throw new BulwarkError(
        'validation_failed',
        `${name} must be one of ${allowed.join(', ')}, not "${value}"`,
      );
    return value as T;
  };
}

function printAlert(a: Alert) {
  const lines = [
    `${a.id}  ${a.severity.toUpperCase()}  ${a.status}`,
    a.title,
    `detector   ${a.detector}`,
    `subject    ${a.subject}`,
    `seen       ${iso(a.firstSeen)} .. ${iso(a.lastSeen)} (${a.occurrences}×)`,
    ...(a.assignee ? [`assignee   ${a.assignee}`] : []),
    ...(a.acknowledgedBy ? [`acked      ${iso(a.acknowledgedAt)} by ${a.acknowledgedBy}`] : []),
    ...(a.resolvedBy ? [`resolved   ${iso(a.resolvedAt)} by ${a.resolvedBy}: ${a.resolution ?? ''}`] : []),
    'evidence',
    ...Object.entries(a.evidence).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    ...(a.status !== 'resolved' && a.deviceId && a.responsesRun.some((r) => r.action === 'quarantine' && r.ok)
      ? [`held       open while ${a.deviceId} is quarantined: resolve it, or release the device`]
      : []),
    a.responsesRun.length ? 'responses run' : 'responses run: none',
    ...a.responsesRun.map(
      (r) =>
        `  ${iso(r.at)}  ${r.action}  ${r.automatic ? 'automatic' : `by ${r.actor}`}  ${r.ok ? 'done' : 'FAILED'}${r.detail ? `: ${r.detail}` : ''}`,
    ),
    ...a.notes.map((n) => `note ${iso(n.at)} ${n.by}: ${n.text}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

/** `bulwark alerts …`: list, inspect and handle alerts. */
export function alertCommands(): Command {
  const alerts = new Command('alerts').description(
    'alerts raised by the detectors: list, show, acknowledge, resolve, respond',
  );

  common(alerts.command('list').description('alerts, newest first (default: open and acknowledged)'))
    .option('--status <list>', 'comma-separated: open, acknowledged, resolved', 'open,acknowledged')
    .option(
      '--severity <level>',
      `at least this severity (${severities.join(', ')})`,
      severityOption('--severity'),
    )
    .option('--device <id>', 'only this device')
    .option('--detector <name>', 'only this detector or behaviour')
    .option('--limit <n>', 'at most this many', intOption('--limit', 1, 1000), 100)
    .action(
      async (
        options: CommonOptions & {
          status: string;
          severity?: Alert['severity'];
          device?: string;
          detector?: string;
          limit: number;
        },
      ) => {
        const status = options.status.split(',').map((x) => oneOf('--status', alertStatuses)(x.trim()));
        const list = await withPlatform(options, (p) =>
          p.monitor.alerts.list({
            status,
            minSeverity: options.severity,
            deviceId: options.device,
            detector: options.detector,
            limit: options.limit,
          }),
        );
        if (options.json) return printJson(list);
        printTable(
          list.map((a) => ({
            id: a.id,
            severity: a.severity,
            status: a.status,
            detector: a.detector,
            subject: a.subject,
            last: iso(a.lastSeen),
            n: String(a.occurrences),
            title: a.title.length > 60 ? `${a.title.slice(0, 57)}...` : a.title,
          })),
          ['id', 'severity', 'status', 'detector', 'subject', 'last', 'n', 'title'],
        );
      },
    );

  common(alerts.command('show <id>').description('one alert with its evidence and notes')).action(
    async (id: string, options: CommonOptions) => {
      const alert = await withPlatform(options, (p) => p.monitor.alerts.get(id));
      if (options.json) return printJson(alert);
      printAlert(alert);
    },
  );

  common(alerts.command('ack <id>').description('acknowledge: someone is looking at it')).action(
    async (id: string, options: CommonOptions) => {
      const alert = await withPlatform(options, (p) => p.monitor.alerts.acknowledge(id, ACTOR));
      if (options.json) return printJson(alert);
      process.stdout.write(`alert ${id} acknowledged\n`);
    },
  );

  common(alerts.command('resolve <id>').description('resolve with a note on what was done'))
    .requiredOption('--resolution <text>', 'what was found and done')
    .action(async (id: string, options: CommonOptions & { resolution: string }) => {
      const alert = await withPlatform(options, (p) =>
        p.monitor.alerts.resolve(id, ACTOR, options.resolution),
      );
      if (options.json) return printJson(alert);
      process.stdout.write(`alert ${id} resolved\n`);
    });

  common(alerts.command('assign <id> <assignee>').description('assign to someone ("-" to unassign)')).action(
    async (id: string, assignee: string, options: CommonOptions) => {
      const alert = await withPlatform(options, (p) =>
        p.monitor.alerts.assign(id, assignee === '-' ? null : assignee, ACTOR),
      );
      if (options.json) return printJson(alert);
      process.stdout.write(
        assignee === '-' ? `alert ${id} unassigned\n` : `alert ${id} assigned to ${assignee}\n`,
      );
    },
  );

  common(alerts.command('note <id> <text>').description('add a note')).action(
    async (id: string, text: string, options: CommonOptions) => {
      if (text.length === 0 || text.length > 2000)
        throw new BulwarkError('validation_failed', 'a note is 1 to 2000 characters');
      const alert = await withPlatform(options, (p) => p.monitor.alerts.note(id, text, ACTOR));
      if (options.json) return printJson(alert);
      process.stdout.write(`note added to alert ${id}\n`);
    },
  );

  common(
    alerts.command('respond <id> <action>').description(`run a response: ${responseActions.join(', ')}`),
  ).action(async (id: string, action: string, options: CommonOptions) => {
    const chosen = oneOf('action', responseActions)(action);
    const alert = await withPlatform(options, (p) => p.monitor.respond(id, chosen, ACTOR));
    if (options.json) return printJson(alert);
    process.stdout.write(`${chosen} done for alert ${id}\n`);
  });
  return alerts;
}

/** `bulwark security-profile …`: behaviours, built-in detector settings and responses, and where they apply. */
export function securityProfileCommands(): Command {
  const profile = new Command('security-profile').description(
    'security profiles: detection behaviours, built-in detectors and responses, attached to groups, zones or devices',
  );

  common(
    profile
      .command('put <name> [file]')
      .description(
        'create or replace a profile from a YAML or JSON file (--file, or the file after the name)',
      ),
  )
    // `--file` as `policy put`, `zone put` and `conduit put` take it; the positional form stays for scripts.
    .option('--file <file>', 'the profile document')
    .action(
      async (name: string, positional: string | undefined, options: CommonOptions & { file?: string }) => {
        if (positional !== undefined && options.file !== undefined && positional !== options.file)
          throw new BulwarkError(
            'validation_failed',
            'give the file once: either --file FILE or after the name',
          );
        const file = options.file ?? positional;
        if (file === undefined)
          throw new BulwarkError(
            'validation_failed',
            'which file? bulwark security-profile put NAME --file FILE',
          );
        const document = readDocument(file);
        const saved = await withPlatform(options, (p) => p.monitor.profiles.put(name, document, ACTOR));
        if (options.json) return printJson(saved);
        process.stdout.write(
          `security profile ${name} saved (version ${saved.version}, ${saved.document.behaviours.length} behaviours)\n`,
        );
      },
    );

  common(profile.command('list').description('profiles and where they are attached')).action(
    async (options: CommonOptions) => {
      const list = await withPlatform(options, (p) => p.monitor.profiles.list());
      if (options.json) return printJson(list);
      printTable(
        list.map((x) => ({
          name: x.name,
          version: String(x.version),
          behaviours: x.document.behaviours.map((b) => b.name).join(' '),
          responses: x.document.responses.map((r) => `${r.action}(${r.mode})`).join(' '),
          attached: x.attachments.map((a) => `${a.kind}:${a.target}`).join(' '),
        })),
        ['name', 'version', 'behaviours', 'responses', 'attached'],
      );
    },
  );

  common(profile.command('show <name>').description('one profile, with every default filled in')).action(
    async (name: string, options: CommonOptions) => {
      printJson(await withPlatform(options, (p) => p.monitor.profiles.get(name)));
    },
  );

  common(profile.command('delete <name>').description('delete a profile and its attachments'), false).action(
    async (name: string, options: CommonOptions) => {
      await withPlatform(options, (p) => p.monitor.profiles.remove(name, ACTOR));
      process.stdout.write(`security profile ${name} deleted\n`);
    },
  );

  for (const [verb, detach] of [
    ['attach', false],
    ['detach', true],
  ] as const)
    common(
      profile
        .command(`${verb} <name>`)
        .description(`${verb} a profile to all devices, a group, a zone or a device`),
    )
      .option('--all', 'every device (and non-device subjects such as addresses)')
      .option('--group <group>', 'a device group')
      .option('--zone <zone>', 'a zone')
      .option('--device <id>', 'one device')
      .action(
        async (
          name: string,
          options: CommonOptions & { all?: boolean; group?: string; zone?: string; device?: string },
        ) => {
          const given = (['all', 'group', 'zone', 'device'] as const).filter((k) => options[k] !== undefined);
          const kind = given[0];
          if (given.length !== 1 || kind === undefined)
            throw new BulwarkError(
              'validation_failed',
              'give exactly one of --all, --group, --zone or --device',
            );
          const target = kind === 'all' ? '*' : String(options[kind]);
          const saved = await withPlatform(options, (p) =>
            p.monitor.profiles.attach(name, { kind, target, detach }, ACTOR),
          );
          if (options.json) return printJson(saved);
          process.stdout.write(
            `security profile ${name} ${verb}ed ${detach ? 'from' : 'to'} ${kind}${kind === 'all' ? '' : ` ${target}`}\n`,
          );
        },
      );
  return profile;
}
