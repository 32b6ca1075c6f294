import { Command, CommanderError } from 'commander';
import { vi } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { runCli } from '../cli/index.ts';
import type { CliResult } from './cli.ts';

/** Runs `work` with stdout and stderr captured; `work` answers the exit code. */
async function captured(work: (stderr: (line: string) => void) => Promise<number>): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await work((line) => (stderr += line));
    return { stdout, stderr, code };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/**
 * Runs `bulwark …` in this process (fast; for a command's output and exit code): what it wrote to stdout and
 * stderr, and its exit code. `bulwarkCli` (cli.ts) runs the real binary in a child process instead.
 */
export async function bulwarkInProcess(...args: string[]): Promise<CliResult> {
  return captured(async () => {
    try {
      process.exitCode = undefined;
      await runCli(['node', 'bulwark', ...args]);
      return Number(process.exitCode ?? 0);
    } finally {
      process.exitCode = undefined;
    }
  });
}

/**
 * Runs one command group (built with the test's own services, e.g. `riskCommands(open)`) as `bulwark <args>`
 * would: a refusal is one line `bulwark: reason` and exit 1, commander's own errors keep their exit code.
 */
export async function commandInProcess(command: Command, args: readonly string[]): Promise<CliResult> {
  return captured(async (stderr) => {
    const program = new Command('bulwark').addCommand(command);
    const override = (cmd: Command): void => {
      cmd.exitOverride();
      cmd.commands.forEach(override);
    };
    override(program);
    try {
      await program.parseAsync(['node', 'bulwark', ...args]);
      return 0;
    } catch (e) {
      if (e instanceof CommanderError) return e.exitCode;
      const b = BulwarkError.from(e);
      stderr(`bulwark: ${b.code === 'internal' ? (e as Error).message : b.message}\n`);
      return b.code === 'audit_chain_broken' ? 2 : 1;
    }
  });
}
