import { fork } from 'node:child_process';

/**
 * Request/response over a child process's IPC channel (structured clone, so typed arrays travel as
 * they are). The harness drives every child (brokers, load generators, micro-benchmarks) through this.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a method map is any function of one argument; callers get the precise types back through Api<M>
export type Methods = Record<string, (params: any) => Promise<unknown>>;

interface CallMessage {
  rpc: 'call';
  id: number;
  method: string;
  params: unknown;
}

interface ReplyMessage {
  rpc: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

const isCall = (m: unknown): m is CallMessage =>
  typeof m === 'object' && m !== null && (m as { rpc?: unknown }).rpc === 'call';
const isReply = (m: unknown): m is ReplyMessage =>
  typeof m === 'object' && m !== null && (m as { rpc?: unknown }).rpc === 'reply';

/** Child side: answers calls until the parent goes away (then exits: no orphan keeps load running). */
export function serve(methods: Methods): void {
  if (!process.send) throw new Error('this module runs as a child of the bench harness (npm run bench)');
  const send = (reply: ReplyMessage) => process.send?.(reply);
  process.on('message', (message: unknown) => {
    if (!isCall(message)) return;
    const method = methods[message.method];
    if (!method) {
      send({ rpc: 'reply', id: message.id, ok: false, error: `unknown method ${message.method}` });
      return;
    }
    method(message.params).then(
      (value) => send({ rpc: 'reply', id: message.id, ok: true, value }),
      (err: unknown) =>
        send({
          rpc: 'reply',
          id: message.id,
          ok: false,
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

export interface ChildHandle<M extends Methods> {
  readonly pid: number;
  readonly name: string;
  call<K extends keyof M & string>(
    method: K,
    params: Parameters<M[K]>[0],
    timeoutMs: number,
  ): Promise<Awaited<ReturnType<M[K]>>>;
  /** undefined while running; the exit code or signal once it has exited. */
  exitStatus(): string | undefined;
  stderrTail(): string;
  /** Ends the child (SIGTERM, then SIGKILL after `graceMs`); resolves once it has exited. */
  kill(graceMs?: number): Promise<void>;
}

const TAIL = 4000;

/** Forks a TypeScript module as a child (through tsx), with `--expose-gc` and any extra Node flags. */
export function spawnChild<M extends Methods>(
  name: string,
  module: URL,
  options: { nodeFlags?: string[]; args?: string[] } = {},
): ChildHandle<M> {
  const child = fork(module, options.args ?? [], {
    execArgv: ['--import', import.meta.resolve('tsx'), '--expose-gc', ...(options.nodeFlags ?? [])],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  if (child.pid === undefined) throw new Error(`cannot start ${name}`);
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL);
  });
  let status: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      status = signal ? `killed by ${signal}` : `exit code ${code ?? '?'}`;
      for (const [, pending] of calls) pending.reject(new Error(`${name} ended (${status}) during a call`));
      calls.clear();
      resolve();
    });
  });
  let nextId = 0;
  const calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on('message', (message: unknown) => {
    if (!isReply(message)) return;
    const pending = calls.get(message.id);
    if (!pending) return;
    calls.delete(message.id);
    if (message.ok) pending.resolve(message.value);
    else pending.reject(new Error(`${name}: ${message.error ?? 'failed'}`));
  });
  child.on('error', () => undefined); // reported through exit

  return {
    pid: child.pid,
    name,
    call(method, params, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (status) {
          reject(new Error(`${name} is not running (${status})`));
          return;
        }
        const id = ++nextId;
        const timer = setTimeout(() => {
          calls.delete(id);
          reject(new Error(`${name}: ${method} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        calls.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as Awaited<ReturnType<M[typeof method]>>);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ rpc: 'call', id, method, params } satisfies CallMessage);
      });
    },
    exitStatus: () => status,
    stderrTail: () => tail,
    async kill(graceMs = 5000) {
      if (status) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
