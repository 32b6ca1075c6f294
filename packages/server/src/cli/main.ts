import { Command, CommanderError } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { VERSION } from '../version.ts';

/**
 * Every top-level command and the module that defines it. A module is loaded only when one of its commands
 * runs (or for the full help), so a command does not pay for initialising every other one: start-up time is
 * the CLI's latency (issue 12, docs/performance.md). Add a command here, in help order.
 */
const commandModules: { names: string[]; load: () => Promise<Command[]> }[] = [
  { names: ['serve'], load: async () => [(await import('./serve.command.ts')).serveCommand()] },
  { names: ['init'], load: async () => [(await import('./init.command.ts')).initCommand()] },
  { names: ['admin'], load: async () => [(await import('./admin.commands.ts')).adminCommands()] },
  {
    // `bulwark devices bulk …` reads as well as `bulwark device bulk …`.
    names: ['device', 'devices'],
    load: async () => {
      const [devices, operations] = await Promise.all([
        import('./device.commands.ts'),
        import('./operations.commands.ts'),
      ]);
      return [devices.deviceCommands().addCommand(operations.bulkCommand()).alias('devices')];
    },
  },
  { names: ['app'], load: async () => [(await import('./app.commands.ts')).appCommands()] },
  { names: ['firmware'], load: async () => [(await import('./firmware.commands.ts')).firmwareCommands()] },
  {
    names: ['policy', 'zone', 'conduit', 'segmentation'],
    load: async () => {
      const m = await import('./access.commands.ts');
      return [m.policyCommands(), ...m.segmentationCommands()];
    },
  },
  {
    names: ['operations'],
    load: async () => [(await import('./operations.commands.ts')).operationsCommands()],
  },
  { names: ['ban'], load: async () => [(await import('./ban.commands.ts')).banCommands()] },
  { names: ['notify'], load: async () => [(await import('./notify.commands.ts')).notifyCommands()] },
  { names: ['pki'], load: async () => [(await import('./pki.commands.ts')).pkiCommands()] },
  { names: ['audit-log'], load: async () => [(await import('./audit.commands.ts')).auditCommands()] },
  {
    names: ['alerts', 'security-profile'],
    load: async () => {
      const m = await import('./monitor.commands.ts');
      return [m.alertCommands(), m.securityProfileCommands()];
    },
  },
  { names: ['token'], load: async () => [(await import('./token.commands.ts')).tokenCommands()] },
  {
    names: ['telemetry'],
    load: async () => [(await import('./telemetry.commands.ts')).telemetryCommands()],
  },
  {
    names: ['data-schema'],
    load: async () => [(await import('./data-schema.commands.ts')).dataSchemaCommands()],
  },
  { names: ['privacy'], load: async () => [(await import('./privacy.commands.ts')).privacyCommands()] },
  { names: ['baseline'], load: async () => [(await import('./baseline.commands.ts')).baselineCommands()] },
  {
    names: ['compliance'],
    load: async () => [(await import('./compliance.commands.ts')).complianceCommands()],
  },
  { names: ['site'], load: async () => [(await import('./site.commands.ts')).siteCommands()] },
  { names: ['risk'], load: async () => [(await import('./risk.commands.ts')).riskCommands()] },
  { names: ['simulate'], load: async () => [(await import('./simulate.command.ts')).simulateCommand()] },
];

/** The program with the commands `argv` names, or all of them (help, an unknown command, no command). */
export async function buildCli(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('bulwark')
    .description('Bulwark: security platform for IoT fleets')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const named = argv.slice(2).find((a) => !a.startsWith('-'));
  const only = commandModules.find((m) => named !== undefined && m.names.includes(named));
  const wanted = only
    ? [only]
    : argv.some((a) => a === '--version' || a === '-V') && !named
      ? []
      : commandModules;
  for (const module of wanted) for (const cmd of await module.load()) program.addCommand(cmd);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  return program;
}

/** A reader that stops early (`bulwark … | head`) closes the pipe: the rest of the output is not wanted. */
function onStdoutError(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
}

/** Runs the CLI; errors end with one line on stderr and a non-zero exit code. */
export async function runCli(argv: string[]): Promise<void> {
  // Once per process: tests run the CLI many times in one process, and a listener per run would pile up.
  if (!process.stdout.listeners('error').includes(onStdoutError)) process.stdout.on('error', onStdoutError);
  try {
    const args = commonOptionsLast(argv);
    await (await buildCli(args)).parseAsync(args);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return; // commander already printed its message (or the help/version)
    }
    const e = BulwarkError.from(err);
    const message = e.code === 'internal' ? `${(err as Error).message ?? 'internal error'}` : e.message;
    process.stderr.write(`bulwark: ${message}\n`);
    process.exitCode = e.code === 'audit_chain_broken' ? 2 : 1;
  }
}

/**
 * `bulwark --data DIR device list` as well as `bulwark device list --data DIR`: the options every command
 * takes (--data, --config) may also come before the command; they are handed to it.
 */
function commonOptionsLast(argv: string[]): string[] {
  const rest = argv.slice(2);
  const moved: string[] = [];
  for (let option = rest[0]; option !== undefined && /^--(data|config)(=|$)/.test(option); option = rest[0]) {
    rest.shift();
    moved.push(option);
    const value = option.includes('=') ? undefined : rest.shift();
    if (value !== undefined) moved.push(value);
  }
  return [...argv.slice(0, 2), ...rest, ...moved];
}
