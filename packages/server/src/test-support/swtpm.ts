import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { testTmpDir } from './tmp.ts';
import { sleep } from './wait.ts';

export interface RunOptions {
  /** Working directory for the tool (default: the TPM's directory, so relative file names land there). */
  cwd?: string;
  /** Bytes written to the tool's stdin. */
  input?: Buffer | string;
}

export interface Swtpm {
  /** TCTI string for tpm2-tools (`TPM2TOOLS_TCTI`) and the device agent's `--tcti`. */
  tcti: string;
  /** A fresh temporary directory: the TPM's state lives in `dir/state`; tools run here by default. */
  dir: string;
  /** Runs a tpm2-tools binary (`tpm2_quote`, …) against this TPM; rejects with its stderr on failure. */
  run(tool: string, args: string[], opts?: RunOptions): Promise<{ stdout: Buffer; stderr: string }>;
  /** Power-cycles the TPM: PCRs start over, persistent objects (an AK at 0x81…) and the EK seed stay. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** The TCTI string for a swtpm listening on `port` (its control channel is `port + 1`). */
export function swtpmTcti(port: number): string {
  return `swtpm:host=127.0.0.1,port=${port}`;
}

function listenOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const got = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() => resolve(got));
    });
  });
}

/** Two consecutive free ports: the swtpm TCTI always expects the control channel on the next port. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (port === undefined || port >= 65535) continue;
    if ((await listenOnce(port + 1)) !== undefined) return port;
  }
  throw new Error('no two consecutive free ports for swtpm');
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`swtpm exited (${child.exitCode}): ${stderr()}`);
    if (await accepts(port)) return;
    await sleep(20);
  }
  throw new Error(`swtpm did not listen on ${port}: ${stderr()}`);
}

function runTool(
  tcti: string,
  dir: string,
): (tool: string, args: string[], opts?: RunOptions) => Promise<{ stdout: Buffer; stderr: string }> {
  return (tool, args, opts = {}) =>
    new Promise((resolve, reject) => {
      const child = execFile(
        tool,
        args,
        {
          cwd: opts.cwd ?? dir,
          encoding: 'buffer',
          env: { ...process.env, TPM2TOOLS_TCTI: tcti },
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) => {
          const errText = stderr.toString('utf8');
          if (err) reject(new Error(`${tool} ${args.join(' ')} failed: ${errText || err.message}`));
          else resolve({ stdout, stderr: errText });
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
}

/** One swtpm process on `port` (control on `port + 1`) over the state directory, listening when it resolves. */
async function launch(port: number, state: string): Promise<{ stop(): Promise<void> }> {
  let errText = '';
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
      `dir=${state}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (chunk: Buffer) => {
    errText += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000)]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  };
  try {
    await waitForPort(port, child, () => errText);
    await waitForPort(port + 1, child, () => errText);
    return { stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Starts a software TPM 2.0 (swtpm, TCP) in a temporary directory and runs `tpm2_startup -c` on it. One per
 * test file (beforeAll/afterAll): a start costs a few hundred milliseconds.
 */
export async function startSwtpm(): Promise<Swtpm> {
  const dir = mkdtempSync(join(testTmpDir(), 'bulwark-swtpm-'));
  const state = join(dir, 'state');
  mkdirSync(state);
  const port = await freePortPair();
  const tcti = swtpmTcti(port);
  const run = runTool(tcti, dir);
  let current: { stop(): Promise<void> } | undefined;
  const stop = async (): Promise<void> => {
    await current?.stop();
    current = undefined;
    rmSync(dir, { recursive: true, force: true });
  };
  const boot = async (): Promise<void> => {
    current = await launch(port, state);
    await run('tpm2_startup', ['-c']);
  };
  try {
    await boot();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    tcti,
    dir,
    run,
    stop,
    // A reboot: the process ends, a new one starts over the same state; PCRs are reset, persistent keys stay.
    async restart() {
      await current?.stop();
      await boot();
    },
  };
}
