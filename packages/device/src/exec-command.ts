import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { commandNameProblem } from '@bulwark/protocol';
import type { CommandHandler } from './commands.ts';

/** Longest an `--exec` program may run, whatever the command's expiry. */
export const EXEC_MAX_RUNTIME_MS = 5 * 60_000;
/** stdout kept as the result, and stderr kept for the failure message. */
export const EXEC_OUTPUT_MAX_BYTES = 8 * 1024;
/** After the program exits, how long to wait for its pipes to close (a child it left running may hold them). */
const PIPE_GRACE_MS = 1_000;

export interface ExecHandlerOptions {
  /** Epoch ms; default `Date.now`. */
  readonly now?: (() => number) | undefined;
  /** Default {@link EXEC_MAX_RUNTIME_MS}. */
  readonly maxRuntimeMs?: number | undefined;
  /** Environment of the program, before the `BULWARK_COMMAND_*` variables. Default: the agent's. */
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** What the program did. */
export interface ExecOutcome {
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * A handler that runs a program per command, without a shell: the command's `data` as JSON on stdin
 * (`null` when absent), `BULWARK_COMMAND_ID` and `BULWARK_COMMAND_NAME` in its environment. Exit 0: `ok`
 * with stdout as the result (parsed when it is JSON, else the text; at most 8 KiB). Another exit code:
 * `failed` with the last line of stderr. Still running at the command's expiry (at most 5 min): killed,
 * `failed` "timed out".
 *
 * @example
 * ```ts
 * const agent = await startAgent({ dir, commands: { 'restart-pump': execCommandHandler('/usr/local/bin/restart-pump') } });
 * ```
 */
export function execCommandHandler(path: string, options: ExecHandlerOptions = {}): CommandHandler {
  const now = options.now ?? Date.now;
  const maxRuntimeMs = options.maxRuntimeMs ?? EXEC_MAX_RUNTIME_MS;
  return async (request, context) => {
    const untilExpiry = request.expiresAt === null ? maxRuntimeMs : request.expiresAt - now();
    const outcome = await runProgram({
      path,
      stdin: JSON.stringify(request.data ?? null),
      env: {
        ...(options.env ?? process.env),
        BULWARK_COMMAND_ID: request.id,
        BULWARK_COMMAND_NAME: context.name,
      },
      timeoutMs: Math.max(0, Math.min(untilExpiry, maxRuntimeMs)),
      signal: context.signal,
    });
    return resultOf(outcome);
  };
}

/** The command result of a program's run: its stdout, or an error for `failed`. */
export function resultOf(outcome: ExecOutcome): unknown {
  if (outcome.timedOut) throw new Error('timed out');
  if (outcome.code !== 0) {
    const lastLine = outcome.stderr.trimEnd().split('\n').at(-1)?.trim();
    throw new Error(lastLine || `exited with ${outcome.code === null ? 'a signal' : `code ${outcome.code}`}`);
  }
  const text = outcome.stdout.trim();
  if (text === '') return undefined;
  try {
    const json: unknown = JSON.parse(text);
    return json;
  } catch {
    return text;
  }
}

interface Run {
  readonly path: string;
  readonly stdin: string;
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

/** Runs `path` in its own process group, so a timeout kills whatever it started too. */
function runProgram(run: Run): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(run.path, [], { env: run.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const stdout = capped(EXEC_OUTPUT_MAX_BYTES, 'head');
    const stderr = capped(EXEC_OUTPUT_MAX_BYTES, 'tail');
    child.stdout.on('data', stdout.add);
    child.stderr.on('data', stderr.add);
    // A program that does not read its stdin closes the pipe: not an error of the command.
    child.stdin.on('error', () => undefined);
    child.stdin.end(run.stdin);
    let timedOut = false;
    const kill = () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, run.timeoutMs);
    run.signal.addEventListener('abort', kill, { once: true });
    let exitCode: number | null = null;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      run.signal.removeEventListener('abort', kill);
      resolve({ code: exitCode, timedOut, stdout: stdout.text(), stderr: stderr.text() });
    };
    child.on('error', (err) => {
      clearTimeout(timer);
      run.signal.removeEventListener('abort', kill);
      reject(new Error(`cannot run ${run.path}: ${err.message}`, { cause: err }));
    });
    child.on('exit', (code) => {
      exitCode = code;
      graceTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, PIPE_GRACE_MS);
    });
    child.on('close', finish);
  });
}

/** Keeps the first (`head`) or last (`tail`) `max` bytes of a stream. */
function capped(max: number, keep: 'head' | 'tail') {
  let chunks: Buffer[] = [];
  let size = 0;
  return {
    add: (chunk: Buffer) => {
      if (keep === 'head' && size >= max) return;
      chunks.push(chunk);
      size += chunk.length;
      if (keep === 'tail' && size > 2 * max) {
        const joined = Buffer.concat(chunks).subarray(-max);
        chunks = [joined];
        size = joined.length;
      }
    },
    text: (): string => {
      const all = Buffer.concat(chunks);
      return (keep === 'head' ? all.subarray(0, max) : all.subarray(-max)).toString('utf8');
    },
  };
}

/** Parses an `--exec NAME=PATH` mapping. */
export function parseExecMapping(text: string): { name: string; path: string } {
  const equals = text.indexOf('=');
  if (equals <= 0 || equals === text.length - 1)
    throw new Error(`expected NAME=PATH, got ${JSON.stringify(text)}`);
  const name = text.slice(0, equals);
  const path = text.slice(equals + 1);
  const problem = commandNameProblem(name);
  if (problem !== undefined) throw new Error(`${JSON.stringify(name)}: ${problem}`);
  return { name, path };
}

/** Fails unless `path` is an executable file; a bare name (no `/`) is looked up in PATH when it runs. */
export async function checkExecutable(path: string): Promise<void> {
  if (!path.includes('/')) return;
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is not an executable file`);
  }
}

/**
 * Runs the `--reboot-command` (program and arguments split on spaces, no shell); fails when it cannot start
 * or exits with another code than 0. A reboot that takes the device down never returns, which is fine.
 */
export function runRebootCommand(command: string): Promise<void> {
  const [program, ...args] = command.trim().split(/\s+/);
  return new Promise((resolve, reject) => {
    if (program === undefined || program === '') {
      reject(new Error('empty reboot command'));
      return;
    }
    const child = spawn(program, args, { stdio: 'ignore' });
    child.on('error', (err) => reject(new Error(`cannot run ${program}: ${err.message}`, { cause: err })));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(new Error(`reboot command ${program} exited with ${code === null ? signal : `code ${code}`}`));
    });
  });
}
