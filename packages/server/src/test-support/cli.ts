import { execFile, type ExecFileOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const BULWARK_BIN = fileURLToPath(new URL('../../bin/bulwark.js', import.meta.url));
export const AGENT_BIN = fileURLToPath(new URL('../../../device/bin/bulwark-agent.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a Node program in a child process; a non-zero exit is a result, not a rejection. */
async function runProgram(bin: string, args: string[], options: ExecFileOptions = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { ...options, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; signal?: string; message?: string; stdout?: string; stderr?: string };
    // Killed (the timeout) or never started: say so, since the program itself printed nothing about it.
    const why =
      typeof e.code === 'number' ? '' : `${e.signal ? `killed by ${e.signal}: ` : ''}${e.message ?? ''}\n`;
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: `${e.stderr ?? ''}${why}`,
    };
  }
}

/** Runs the real `bulwark` CLI in a child process against `dataDir`. */
export function bulwarkCli(
  dataDir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return runProgram(BULWARK_BIN, [...args, '--data', dataDir], {
    env: { ...process.env, BULWARK_LOG_LEVEL: 'error', ...env },
  });
}

/** Runs the real `bulwark-agent` CLI in a child process (at most two minutes). */
export function agentCli(args: string[]): Promise<CliResult> {
  return runProgram(AGENT_BIN, args, { timeout: 120_000 });
}
