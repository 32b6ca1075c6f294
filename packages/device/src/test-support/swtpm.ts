import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A software TPM 2.0 (Debian `swtpm`) on two loopback ports, started with `tpm2_startup -c`. */
export interface Swtpm {
  /** The TCTI for tpm2-tools (`swtpm:host=127.0.0.1,port=P`). */
  readonly tcti: string;
  /** The TPM state directory (removed by `stop`). */
  readonly dir: string;
  /** Runs a tpm2 tool against this TPM; rejects with its stderr on failure. */
  run(tool: string, args: readonly string[], opts?: { cwd?: string }): Promise<{ stdout: Buffer }>;
  stop(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Two consecutive free ports P (server) and P+1 (control). */
async function portPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await ephemeralPort();
    if (port < 65535 && (await portFree(port + 1))) return port;
  }
  throw new Error('no two consecutive free ports for swtpm');
}

function runTool(
  tcti: string,
  tool: string,
  args: readonly string[],
  opts: { cwd?: string } = {},
): Promise<{ stdout: Buffer }> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      [...args],
      { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, encoding: 'buffer', cwd: opts.cwd, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`${tool} ${args.join(' ')}: ${stderr.toString('utf8').trim() || err.message}`));
        else resolve({ stdout });
      },
    );
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts `swtpm socket --tpm2` with a fresh state directory and sends TPM2_Startup(CLEAR), retrying while
 * swtpm is still binding its ports.
 *
 * @example
 * ```ts
 * const tpm = await startSwtpm();
 * await tpm.run('tpm2_pcrextend', ['7:sha256=' + '00'.repeat(32)]);
 * await tpm.stop();
 * ```
 */
export async function startSwtpm(): Promise<Swtpm> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-swtpm-'));
  const port = await portPair();
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  const child = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init',
      '--tpmstate',
      `dir=${dir}`,
    ],
    { stdio: 'ignore' },
  );
  const stop = async () => {
    child.kill('SIGTERM');
    await exited(child);
    await rm(dir, { recursive: true, force: true });
  };
  let lastError: unknown;
  for (let attempt = 0; attempt < 50; attempt++) {
    if (child.exitCode !== null) break;
    try {
      await runTool(tcti, 'tpm2_startup', ['-c']);
      return { tcti, dir, run: (tool, args, opts) => runTool(tcti, tool, args, opts), stop };
    } catch (err) {
      lastError = err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  await stop();
  throw new Error(
    `swtpm did not start: ${lastError instanceof Error ? lastError.message : String(lastError)}`,
  );
}
