import {
  COMMAND_MAX_BYTES,
  commandNameProblem,
  commandRequestSchema,
  commandResultSchema,
  commandTopics,
  type CommandRequest,
  type CommandResult,
  type CommandStatus,
} from '@bulwark/protocol';
import { asError } from './emitter.ts';

/** What a handler gets besides the request. */
export interface CommandContext {
  readonly deviceId: string;
  /** The command name (the last topic level). */
  readonly name: string;
  /** When the device received the command, epoch ms. */
  readonly receivedAt: number;
  /** Aborted when the router closes (the agent stops): a long handler should give up. */
  readonly signal: AbortSignal;
  /**
   * Runs `action` once the result has been published (and acknowledged, QoS 1): what must happen after the
   * answer, such as a reboot. Its failure is reported through `onError`, never as the command's result.
   */
  afterResult(action: () => void | Promise<void>): void;
}

/**
 * Runs one command. Resolve: `ok`, with the value as `result` (JSON; `undefined` sends none). Throw: `failed`
 * with the error's message; throw a {@link CommandRefusal} to answer `refused` (the command was not run).
 */
export type CommandHandler = (request: CommandRequest, context: CommandContext) => unknown;

/** Thrown by a handler that declines to run a command: the result is `refused` with this message. */
export class CommandRefusal extends Error {
  override readonly name = 'CommandRefusal';
}

/** One handled command, as reported to `onResult`. */
export interface CommandOutcome {
  readonly id: string;
  readonly name: string;
  readonly status: CommandStatus;
  readonly message?: string | undefined;
  /** True when this was a redelivery of a command already answered: the earlier result was sent again. */
  readonly repeated: boolean;
}

export interface CommandRouterOptions {
  /** This device's id, or a function returning it. */
  readonly deviceId: string | (() => string);
  /** Handlers by command name. */
  readonly handlers?: Readonly<Record<string, CommandHandler>> | undefined;
  /** Publishes a result (QoS 1); resolves when it is acknowledged or queued. */
  readonly publish: (topic: string, payload: string) => Promise<void>;
  /** Epoch ms; default `Date.now`. */
  readonly now?: (() => number) | undefined;
  /** How long a command id is remembered, so a redelivered command is not run twice. Default 10 min. */
  readonly rememberMs?: number | undefined;
  /** Commands running at once; more are refused (`busy`). Default 8. */
  readonly maxRunning?: number | undefined;
  /** After each command (for logs and events). */
  readonly onResult?: ((outcome: CommandOutcome) => void) | undefined;
  /** A message ignored (no id to answer to), a publish or an `afterResult` action that failed. */
  readonly onError?: ((err: Error) => void) | undefined;
}

/** Dispatches command requests to handlers and publishes their results. */
export interface CommandRouter {
  /**
   * Handles a message if `topic` is one of this device's command topics (`devices/{id}/commands/{name}`):
   * validates it, runs the handler and publishes the result. Resolves with the result sent, or undefined
   * when the message is not a command of this device or was ignored. A message with the retain flag
   * (`packet.retain`) is never run: a retained command is stale by nature and would run again at every
   * (re)subscribe; it is ignored with a line to `onError`.
   */
  handle(
    topic: string,
    payload: Buffer | string,
    packet?: { readonly retain?: boolean | undefined },
  ): Promise<CommandResult | undefined>;
  /** Adds or replaces the handler of `name`; returns a function that removes it. */
  register: (name: string, handler: CommandHandler) => () => void;
  /** The command names with a handler, sorted. */
  names(): string[];
  /** Resolves when no command is running. */
  idle(): Promise<void>;
  /** Aborts the handlers' `signal`; later commands are ignored. */
  close(): void;
}

const DEFAULT_REMEMBER_MS = 10 * 60_000;
const DEFAULT_MAX_RUNNING = 8;
/** Command ids remembered at most, whatever their age: bounded memory under a flood. */
const MAX_REMEMBERED = 1000;
/** `message` in a result is at most this long (commandResultSchema). */
const MAX_MESSAGE = 1024;

interface Remembered {
  readonly at: number;
  /** The result once known; undefined while the command runs. */
  result: CommandResult | undefined;
}

interface RouterState {
  readonly options: CommandRouterOptions;
  readonly handlers: Map<string, CommandHandler>;
  readonly seen: Map<string, Remembered>;
  readonly running: Set<Promise<unknown>>;
  readonly abort: AbortController;
  readonly now: () => number;
  readonly rememberMs: number;
  readonly maxRunning: number;
  /** Handlers running now. */
  executing: number;
}

/**
 * A command handler registry for device code: give it the messages of `commandTopics.all(deviceId)` and
 * it answers each command once on `devices/{id}/commands/{name}/result`. Refuses (`status: refused`) a
 * malformed request, an expired one and an unknown name; a handler that throws gives `failed`. A command
 * id seen in the last `rememberMs` is not run again (QoS 1 redelivery): its earlier result is re-sent.
 *
 * @example
 * ```ts
 * import { commandTopics } from '@bulwark/protocol';
 * import { createCommandRouter } from '@bulwark/device';
 *
 * const router = createCommandRouter({
 *   deviceId: 'pump-17',
 *   handlers: { 'set-speed': async (request) => ({ rpm: await pump.setSpeed(Number(request.data)) }) },
 *   publish: (topic, payload) => client.publishAsync(topic, payload, { qos: 1 }).then(() => undefined),
 * });
 * client.subscribe(commandTopics.all('pump-17'), { qos: 1 });
 * client.on('message', (topic, payload, packet) => void router.handle(topic, payload, packet));
 * ```
 */
export function createCommandRouter(options: CommandRouterOptions): CommandRouter {
  const s: RouterState = {
    options,
    handlers: new Map(),
    seen: new Map(),
    running: new Set(),
    abort: new AbortController(),
    now: options.now ?? Date.now,
    rememberMs: options.rememberMs ?? DEFAULT_REMEMBER_MS,
    maxRunning: options.maxRunning ?? DEFAULT_MAX_RUNNING,
    executing: 0,
  };
  for (const [name, handler] of Object.entries(options.handlers ?? {})) register(s, name, handler);
  return {
    handle: (topic, payload, packet) =>
      packet?.retain === true ? ignoreRetained(s, topic) : handle(s, topic, payload),
    register: (name, handler) => register(s, name, handler),
    names: () => [...s.handlers.keys()].sort(),
    async idle() {
      while (s.running.size > 0) await Promise.allSettled([...s.running]);
    },
    close: () => s.abort.abort(),
  };
}

function register(s: RouterState, name: string, handler: CommandHandler): () => void {
  const problem = commandNameProblem(name);
  if (problem !== undefined) throw new Error(`command ${JSON.stringify(name)}: ${problem}`);
  s.handlers.set(name, handler);
  return () => {
    if (s.handlers.get(name) === handler) s.handlers.delete(name);
  };
}

const deviceIdOf = (s: RouterState) =>
  typeof s.options.deviceId === 'string' ? s.options.deviceId : s.options.deviceId();

/** A retained message on a command topic: never run, never answered (a log line through `onError`). */
function ignoreRetained(s: RouterState, topic: string): Promise<undefined> {
  if (commandTopics.nameOf(deviceIdOf(s), topic) !== undefined)
    s.options.onError?.(
      new Error(`ignored a retained message on ${topic}: commands are never run from retained messages`),
    );
  return Promise.resolve(undefined);
}

function handle(s: RouterState, topic: string, payload: Buffer | string): Promise<CommandResult | undefined> {
  if (s.abort.signal.aborted) return Promise.resolve(undefined);
  const deviceId = deviceIdOf(s);
  const name = commandTopics.nameOf(deviceId, topic);
  if (name === undefined) return Promise.resolve(undefined);
  const work = run(s, { deviceId, name, payload });
  s.running.add(work);
  return work.finally(() => s.running.delete(work));
}

interface Incoming {
  readonly deviceId: string;
  readonly name: string;
  readonly payload: Buffer | string;
}

async function run(s: RouterState, incoming: Incoming): Promise<CommandResult | undefined> {
  const parsed = parseRequest(incoming.payload);
  if (parsed.kind === 'ignored') {
    s.options.onError?.(new Error(`ignored a command on ${incoming.name}: ${parsed.reason}`));
    return undefined;
  }
  if (parsed.kind === 'malformed') {
    const result = {
      id: parsed.id,
      status: 'refused',
      message: truncate(`malformed request: ${parsed.reason}`),
    } as const;
    return answer(s, { incoming, result, repeated: false });
  }
  const request = parsed.request;
  forget(s);
  const earlier = s.seen.get(request.id);
  if (earlier !== undefined) {
    // Still running: its result goes out when it is done. Done: the broker redelivered it; answer again.
    if (earlier.result === undefined) return undefined;
    return answer(s, { incoming, result: earlier.result, repeated: true });
  }
  const remembered: Remembered = { at: s.now(), result: undefined };
  s.seen.set(request.id, remembered);
  const after: (() => void | Promise<void>)[] = [];
  remembered.result = await decide(s, { incoming, request, after });
  const sent = await answer(s, { incoming, result: remembered.result, repeated: false });
  for (const action of after) {
    try {
      await action();
    } catch (err) {
      s.options.onError?.(
        new Error(`after command ${incoming.name}: ${asError(err).message}`, { cause: err }),
      );
    }
  }
  return sent;
}

/** Drops command ids older than `rememberMs`, and the oldest beyond {@link MAX_REMEMBERED}. */
function forget(s: RouterState): void {
  const oldest = s.now() - s.rememberMs;
  for (const [id, entry] of s.seen) {
    // Insertion order is arrival order: stop at the first entry young enough and not over the cap.
    if (entry.at >= oldest && s.seen.size < MAX_REMEMBERED) break;
    s.seen.delete(id);
  }
}

interface Decision {
  readonly incoming: Incoming;
  readonly request: CommandRequest;
  readonly after: (() => void | Promise<void>)[];
}

async function decide(s: RouterState, { incoming, request, after }: Decision): Promise<CommandResult> {
  const refused = (message: string): CommandResult => ({
    id: request.id,
    status: 'refused',
    message: truncate(message),
  });
  const receivedAt = s.now();
  if (request.expiresAt !== null && request.expiresAt < receivedAt) return refused('expired');
  const handler = s.handlers.get(incoming.name);
  if (handler === undefined) {
    const known = [...s.handlers.keys()].sort().join(', ');
    return refused(`unknown command ${incoming.name} (known: ${known === '' ? 'none' : known})`);
  }
  if (s.executing >= s.maxRunning) return refused(`busy: ${s.maxRunning} commands running`);
  const context: CommandContext = {
    deviceId: incoming.deviceId,
    name: incoming.name,
    receivedAt,
    signal: s.abort.signal,
    afterResult: (action) => void after.push(action),
  };
  s.executing++;
  try {
    const value: unknown = await handler(request, context);
    return okResult(request.id, value);
  } catch (err) {
    after.length = 0; // a failed command does not run what it meant to do afterwards
    const message = truncate(asError(err).message);
    return { id: request.id, status: err instanceof CommandRefusal ? 'refused' : 'failed', message };
  } finally {
    s.executing--;
  }
}

/** `ok` with the handler's value, or `failed` when the value cannot be sent (not JSON, too large). */
function okResult(id: string, value: unknown): CommandResult {
  if (value === undefined) return { id, status: 'ok' };
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    return { id, status: 'failed', message: truncate(`result is not JSON: ${asError(err).message}`) };
  }
  if (json === undefined) return { id, status: 'failed', message: 'result is not JSON' };
  // Room for the id and status around the result.
  const limit = COMMAND_MAX_BYTES - 200;
  const size = Buffer.byteLength(json);
  if (size > limit)
    return { id, status: 'failed', message: `result too large (${size} bytes, max ${limit})` };
  // What the server will see: the JSON form (no undefined fields, no class instances).
  const result: unknown = JSON.parse(json);
  return { id, status: 'ok', result };
}

interface Answer {
  readonly incoming: Incoming;
  readonly result: CommandResult;
  readonly repeated: boolean;
}

async function answer(s: RouterState, { incoming, result, repeated }: Answer): Promise<CommandResult> {
  const checked = commandResultSchema.parse(result);
  try {
    await s.options.publish(commandTopics.result(incoming.deviceId, incoming.name), JSON.stringify(checked));
  } catch (err) {
    s.options.onError?.(
      new Error(`could not publish the result of command ${incoming.name}: ${asError(err).message}`, {
        cause: err,
      }),
    );
  }
  s.options.onResult?.({
    id: checked.id,
    name: incoming.name,
    status: checked.status,
    message: checked.message,
    repeated,
  });
  return checked;
}

type Parsed =
  | { readonly kind: 'request'; readonly request: CommandRequest }
  | { readonly kind: 'malformed'; readonly id: string; readonly reason: string }
  | { readonly kind: 'ignored'; readonly reason: string };

/** A request, or why not: `malformed` when an id can be recovered to answer to, `ignored` otherwise. */
function parseRequest(payload: Buffer | string): Parsed {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > COMMAND_MAX_BYTES)
    return { kind: 'ignored', reason: `request too large (${size} bytes, max ${COMMAND_MAX_BYTES})` };
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    return { kind: 'ignored', reason: 'not JSON' };
  }
  const parsed = commandRequestSchema.safeParse(json);
  if (parsed.success) return { kind: 'request', request: parsed.data };
  const issue = parsed.error.issues[0];
  const reason = issue === undefined ? 'invalid' : `${issue.path.join('.') || 'request'}: ${issue.message}`;
  const id = recoverId(json);
  return id === undefined
    ? { kind: 'ignored', reason: `no command id (${reason})` }
    : { kind: 'malformed', id, reason };
}

function recoverId(json: unknown): string | undefined {
  if (typeof json !== 'object' || json === null || !('id' in json)) return undefined;
  const { id } = json;
  return typeof id === 'string' && id.length >= 1 && id.length <= 64 ? id : undefined;
}

function truncate(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE - 1)}…`;
}
