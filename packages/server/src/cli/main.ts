import { Command, CommanderError } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { VERSION } from '../version.ts';
import { policyCommands, segmentationCommands } from './access.commands.ts';
import { adminCommands } from './admin.commands.ts';
import { banCommands } from './ban.commands.ts';
import { auditCommands } from './audit.commands.ts';
import { deviceCommands } from './device.commands.ts';
import { firmwareCommands } from './firmware.commands.ts';
import { initCommand } from './init.command.ts';
import { alertCommands, securityProfileCommands } from './monitor.commands.ts';
import { notifyCommands } from './notify.commands.ts';
import { pkiCommands } from './pki.commands.ts';
import { serveCommand } from './serve.command.ts';
import { tokenCommands } from './token.commands.ts';

export function buildCli(): Command {
  const program = new Command('bulwark')
    .description('Bulwark: security platform for IoT fleets')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.addCommand(serveCommand());
  program.addCommand(initCommand());
  program.addCommand(adminCommands());
  program.addCommand(deviceCommands());
  program.addCommand(firmwareCommands());
  program.addCommand(policyCommands());
  program.addCommand(banCommands());
  program.addCommand(notifyCommands());
  for (const cmd of segmentationCommands()) program.addCommand(cmd);
  program.addCommand(pkiCommands());
  program.addCommand(auditCommands());
  program.addCommand(alertCommands());
  program.addCommand(securityProfileCommands());
  program.addCommand(tokenCommands());
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  return program;
}

/** Runs the CLI; errors end with one line on stderr and a non-zero exit code. */
export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(commonOptionsLast(argv));
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
  while (rest[0] !== undefined && /^--(data|config)(=|$)/.test(rest[0])) {
    const option = rest.shift()!;
    moved.push(option);
    if (!option.includes('=') && rest[0] !== undefined) moved.push(rest.shift()!);
  }
  return [...argv.slice(0, 2), ...rest, ...moved];
}
