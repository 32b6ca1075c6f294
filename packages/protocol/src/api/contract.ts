/**
 * One contract per operation: the HTTP route, the CLI, the OpenAPI document and the console are checked
 * against the same input and output schemas. A contract is data (no I/O): the server registers a route
 * from it, tests parse CLI output with its response schema.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const page = api.devices.list.response[200].parse(await res.json()); // { devices: [...], next }
 * ```
 */
import { z } from 'zod';

export const httpMethods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof httpMethods)[number];

/** A body that is not JSON (a file, a certificate, a stream): its content type, described in the contract. */
export interface RawReply {
  readonly contentType: string;
  readonly description: string;
  /** What the body is, for the OpenAPI document (text, or binary when `format: binary`). */
  readonly binary?: boolean;
}

/** An answer without a body (204 No Content, 308 redirects). */
export interface EmptyReply {
  readonly empty: true;
  readonly description: string;
}

/** What a status answers: a JSON body (zod schema; unknown fields are stripped), a raw body, or nothing. */
export type Reply = z.ZodType | RawReply | EmptyReply;

export interface Contract {
  readonly method: HttpMethod;
  /** Fastify path syntax: `/api/v1/devices/:id`. */
  readonly path: string;
  readonly summary: string;
  readonly tags: readonly string[];
  /**
   * Who may call it: `public`, `device-credentials`, a sign-in state (`signed-in`, `session`, …) or a
   * permission (`devices:read`). The server checks the string against its access levels at compile time.
   */
  readonly access: string;
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  /** Every success status with its body. Errors are RFC 9457 problem+json (see errors.ts), not listed here. */
  readonly response: Readonly<Record<number, Reply>>;
}

/** Declares a contract, keeping its literal types (method, path, access, schemas). */
export function contract<const C extends Contract>(definition: C): C {
  return definition;
}

/** `204 No Content`. */
export const noContent: EmptyReply = { empty: true, description: 'No content' };

/** A raw (non-JSON) body of this content type. */
export function raw(contentType: string, description: string, binary = false): RawReply {
  return { contentType, description, ...(binary ? { binary } : {}) };
}

export function isRawReply(reply: Reply): reply is RawReply {
  return typeof reply === 'object' && 'contentType' in reply && !(reply instanceof z.ZodType);
}

export function isEmptyReply(reply: Reply): reply is EmptyReply {
  return typeof reply === 'object' && 'empty' in reply && !(reply instanceof z.ZodType);
}

/** Success statuses of a contract, lowest first. */
export function successStatuses(c: Contract): number[] {
  return Object.keys(c.response)
    .map(Number)
    .filter((s) => s >= 200 && s < 400)
    .sort((a, b) => a - b);
}

/** The JSON body schema of a contract's status, if that status answers JSON. */
export function jsonReply(c: Contract, status: number): z.ZodType | undefined {
  const reply = c.response[status];
  return reply instanceof z.ZodType ? reply : undefined;
}

type PageShape<K extends string, T extends z.ZodType> = { [P in K]: z.ZodArray<T> } & {
  next: z.ZodNullable<z.ZodString>;
};

/**
 * The one page shape as a list answer names it: `pageOf('devices', device)` is `{ devices: [...], next }`,
 * `next` the cursor of the next page (null on the last). `Page<T>` (common.ts) is the same with `items`.
 */
export function pageOf<K extends string, T extends z.ZodType>(key: K, item: T): z.ZodObject<PageShape<K, T>> {
  const shape = { [key]: z.array(item), next: z.string().nullable() };
  // A computed key widens to `string`: the shape is exactly PageShape<K, T> by construction.
  return z.object(shape) as unknown as z.ZodObject<PageShape<K, T>>;
}

/** Keyset page input shared by list operations: `after` (the last id seen) and `limit`. */
export function pageQuery(options: { max?: number; default?: number } = {}) {
  return {
    after: z.string().max(64).optional(),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(options.max ?? 1000)
      .default(options.default ?? 100),
  };
}
