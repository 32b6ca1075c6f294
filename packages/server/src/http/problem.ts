import { BulwarkError, httpStatusOf, type ErrorCode } from '@bulwark/protocol';

/** RFC 9457 problem details with Bulwark's stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
}

const titles: Partial<Record<ErrorCode, string>> = {
  unauthenticated: 'Authentication required',
  token_invalid: 'Invalid enrollment token',
  token_expired: 'Enrollment token expired',
  token_used: 'Enrollment token already used',
  not_found: 'Not found',
  unavailable: 'Service unavailable',
  internal: 'Internal error',
};

export function toProblem(err: BulwarkError, instance?: string): Problem {
  const status = httpStatusOf(err.code);
  return {
    type: `urn:bulwark:problem:${err.code}`,
    title: titles[err.code] ?? err.code.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()),
    status,
    // Never leak internals: an internal error's cause stays in the server log.
    detail: err.code === 'internal' ? 'internal error; see the server log' : err.message,
    code: err.code,
    ...(instance ? { instance } : {}),
  };
}

/** Maps Fastify's own errors (body parsing, limits) to Bulwark codes. */
export function fromFrameworkError(err: unknown): BulwarkError {
  if (err instanceof BulwarkError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: unknown };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new BulwarkError(
        'unsupported_media_type',
        `unsupported Content-Type: ${e.message ?? ''}`.trim(),
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BulwarkError('payload_too_large', 'request body is too large');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BulwarkError('bad_request', e.message ?? 'bad request');
  }
  if (e.validation)
    return new BulwarkError('validation_failed', e.message ?? 'request does not match the schema');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new BulwarkError('bad_request', e.message ?? 'bad request');
  }
  return BulwarkError.from(err);
}
