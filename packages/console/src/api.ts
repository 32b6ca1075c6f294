import type { z } from 'zod';
import type { Contract } from '@bulwark/protocol';

/** An operation whose 200 answer is JSON described by a zod schema (what the console calls). */
export type JsonContract = Contract & { readonly response: { readonly 200: z.ZodType } };
type In<S> = S extends z.ZodType ? z.input<S> : never;

export interface CallInput<C extends Contract> {
  params?: In<C['params']>;
  query?: In<C['query']>;
  body?: In<C['body']>;
}

/** An RFC 9457 problem answered by the API, with its stable code (docs/errors.md). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Retry-After, in seconds (a lockout, a rate limit). */
  readonly retryAfterS: number | undefined;

  constructor(problem: { status: number; code: string; detail: string; retryAfterS?: number }) {
    super(problem.detail);
    this.status = problem.status;
    this.code = problem.code;
    this.retryAfterS = problem.retryAfterS;
  }
}

let csrfToken: string | undefined;
const sessionEndedListeners = new Set<() => void>();
const sessionCallListeners = new Set<(startedAt: number) => void>();

/** Cookie-authenticated writes carry the session's CSRF token (X-CSRF-Token); set at every sign-in step. */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/**
 * Called with the time a call as the session started, whenever the server answered it as that session (anything
 * but 401): each such call restarts the session's idle time on the server.
 */
export function onSessionCall(listener: (startedAt: number) => void): () => void {
  sessionCallListeners.add(listener);
  return () => sessionCallListeners.delete(listener);
}

/** Called when a call made while signed in is refused as not signed in (the session expired or was ended). */
export function onSessionEnded(listener: () => void): () => void {
  sessionEndedListeners.add(listener);
  return () => sessionEndedListeners.delete(listener);
}

/** A path parameter or query value as text (the contracts' inputs are strings, numbers and booleans). */
function text(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : undefined;
}

function urlOf(c: Contract, input: CallInput<Contract>): string {
  const params = (input.params ?? {}) as Record<string, unknown>;
  const path = c.path.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) =>
    encodeURIComponent(text(params[name]) ?? ''),
  );
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries((input.query ?? {}) as Record<string, unknown>)) {
    const v = text(value);
    if (v !== undefined) query.set(key, v);
  }
  const search = query.toString();
  return search ? `${path}?${search}` : path;
}

async function problemOf(res: Response): Promise<ApiError> {
  const retry = Number(res.headers.get('retry-after'));
  const retryAfterS = Number.isFinite(retry) && retry > 0 ? retry : undefined;
  try {
    const problem = (await res.json()) as { code?: unknown; detail?: unknown };
    const code = typeof problem.code === 'string' ? problem.code : 'internal';
    const detail = typeof problem.detail === 'string' ? problem.detail : res.statusText;
    return new ApiError({ status: res.status, code, detail, retryAfterS });
  } catch {
    return new ApiError({
      status: res.status,
      code: 'internal',
      detail: `the server answered ${res.status}`,
      retryAfterS,
    });
  }
}

/** A call as a signed-in user: a 401 there means the session is gone (sign-in steps answer 401 for wrong input). */
const signedInAccess = (c: Contract) => c.access !== 'public' && c.access !== 'second-factor';

/**
 * The address of an operation with its inputs, for what the browser fetches itself: a download link (a report),
 * built from the contract like every call.
 *
 * @example
 * hrefOf(api.compliance.getReport, { params: { standard: 'gdpr' }, query: { format: 'oscal' } });
 * // '/api/v1/compliance/reports/gdpr?format=oscal'
 */
export function hrefOf<C extends Contract>(c: C, input: CallInput<C> = {}): string {
  return urlOf(c, input);
}

/**
 * Sends one operation's request and answers its response when it succeeded; a problem becomes an ApiError, and
 * a 401 while signed in tells the console that the session ended.
 */
export async function send<C extends Contract>(
  c: C,
  input: CallInput<C> & { accept?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers: Record<string, string> = { accept: input.accept ?? 'application/json', ...input.headers };
  let body: string | undefined;
  if (c.method !== 'GET') {
    headers['content-type'] = 'application/json';
    if (csrfToken) headers['x-csrf-token'] = csrfToken;
    body = JSON.stringify(input.body ?? {});
  }
  const startedAt = Date.now();
  const res = await fetch(urlOf(c, input), {
    method: c.method,
    headers,
    body,
    credentials: 'same-origin',
    cache: 'no-store',
    signal: input.signal,
  });
  if (c.access !== 'public' && res.status !== 401)
    for (const listener of sessionCallListeners) listener(startedAt);
  if (!res.ok) {
    const error = await problemOf(res);
    if (res.status === 401 && signedInAccess(c)) for (const listener of sessionEndedListeners) listener();
    throw error;
  }
  return res;
}

/**
 * Calls one operation of the API by its contract (`api.<area>.<op>`) and reads the answer with the contract's
 * own 200 schema: the console sees exactly what the contract promises, or an error.
 *
 * @example
 * const { devices } = await call(api.devices.list, { query: { limit: 100 } });
 */
export async function call<C extends JsonContract>(
  c: C,
  input: CallInput<C> = {},
): Promise<z.output<C['response'][200]>> {
  const res = await send(c, input);
  return c.response[200].parse(await res.json()) as z.output<C['response'][200]>;
}

/** A short sentence for an error shown to a person. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return `Unexpected answer: ${error.message}`;
  return 'Something went wrong.';
}

/** An operation whose 201 answer is JSON (a created API token): its secret is shown once, so it is parsed too. */
export type CreatedContract = Contract & { readonly response: { readonly 201: z.ZodType } };

/** As `call`, for an operation that answers 201 Created with JSON. */
export async function callCreated<C extends CreatedContract>(
  c: C,
  input: CallInput<C> = {},
): Promise<z.output<C['response'][201]>> {
  const res = await send(c, input);
  return c.response[201].parse(await res.json()) as z.output<C['response'][201]>;
}
