import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../packages/server/src/main.ts', import.meta.url));

/**
 * The real `bulwark` CLI against a data directory, beside the server that runs on it (as an operator on the
 * host runs it). From the sources, as the bench runs the server, so both read the store alike; `--json`
 * output parsed. Throws with the CLI's one-line reason when it exits non-zero.
 */
export async function bulwarkJson<T>(dataDir: string, args: string[], timeoutMs = 120_000): Promise<T> {
  try {
    const { stdout } = await run(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), MAIN, ...args, '--json', '--data', dataDir],
      { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, BULWARK_LOG_LEVEL: 'error' } },
    );
    return JSON.parse(stdout) as T;
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(`bulwark ${args.slice(0, 2).join(' ')}: ${(e.stderr || e.message || '').trim()}`);
  }
}
