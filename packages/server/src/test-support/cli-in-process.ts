import { vi } from 'vitest';
import { runCli } from '../cli/index.ts';
import type { CliResult } from './cli.ts';

/**
 * Runs `bulwark …` in this process (fast; for a command's output and exit code): what it wrote to stdout and
 * stderr, and its exit code. `bulwarkCli` (cli.ts) runs the real binary in a child process instead.
 */
export async function bulwarkInProcess(...args: string[]): Promise<CliResult> {
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
    process.exitCode = undefined;
    await runCli(['node', 'bulwark', ...args]);
    return { stdout, stderr, code: Number(process.exitCode ?? 0) };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}
