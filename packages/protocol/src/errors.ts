/**
 * The closed list of error codes every Bulwark interface speaks (HTTP problem+json `code`,
 * CLI one-line reasons, MQTT refusals). Adding a code does not compile until it is mapped
 * in {@link httpStatusOf} and {@link mqttConnackOf}. Every code is documented in `docs/errors.md`.
 *
 * @example
 * ```ts
 * import { BulwarkError } from '@bulwark/protocol';
 * throw new BulwarkError('token_expired', 'enrollment token has expired');
 * ```
 */
export const errorCodes = [
  'bad_request',
  'validation_failed',
  'unsupported_media_type',
  'payload_too_large',
  'unauthenticated',
  'invalid_credentials',
  'second_factor_required',
  'factor_enrolment_required',
  'step_up_required',
  'csrf_failed',
  'token_invalid',
  'token_expired',
  'token_used',
  'forbidden',
  'not_found',
  'conflict',
  'device_revoked',
  'device_disabled',
  'csr_invalid',
  'csr_signature_invalid',
  'key_unsupported',
  'hash_mismatch',
  'upload_incomplete',
  'sbom_invalid',
  'signature_invalid',
  'rate_limited',
  'unavailable',
  'config_invalid',
  'audit_chain_broken',
  'internal',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

const httpStatus = {
  bad_request: 400,
  validation_failed: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  unauthenticated: 401,
  invalid_credentials: 401,
  second_factor_required: 401,
  factor_enrolment_required: 403,
  step_up_required: 403,
  csrf_failed: 403,
  token_invalid: 401,
  token_expired: 401,
  token_used: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  device_revoked: 403,
  device_disabled: 403,
  csr_invalid: 400,
  csr_signature_invalid: 400,
  key_unsupported: 400,
  hash_mismatch: 422,
  upload_incomplete: 400,
  sbom_invalid: 422,
  signature_invalid: 422,
  rate_limited: 429,
  unavailable: 503,
  config_invalid: 500,
  audit_chain_broken: 500,
  internal: 500,
} as const satisfies Record<ErrorCode, number>;

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const connackCodes = {
  accepted: 0,
  unacceptableProtocolVersion: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUsernameOrPassword: 4,
  notAuthorized: 5,
} as const;
export type ConnackCode = (typeof connackCodes)[keyof typeof connackCodes];

const mqttConnack = {
  bad_request: connackCodes.notAuthorized,
  validation_failed: connackCodes.identifierRejected,
  unsupported_media_type: connackCodes.notAuthorized,
  payload_too_large: connackCodes.notAuthorized,
  unauthenticated: connackCodes.notAuthorized,
  invalid_credentials: connackCodes.badUsernameOrPassword,
  second_factor_required: connackCodes.notAuthorized,
  factor_enrolment_required: connackCodes.notAuthorized,
  step_up_required: connackCodes.notAuthorized,
  csrf_failed: connackCodes.notAuthorized,
  token_invalid: connackCodes.notAuthorized,
  token_expired: connackCodes.notAuthorized,
  token_used: connackCodes.notAuthorized,
  forbidden: connackCodes.notAuthorized,
  not_found: connackCodes.notAuthorized,
  conflict: connackCodes.identifierRejected,
  device_revoked: connackCodes.notAuthorized,
  device_disabled: connackCodes.notAuthorized,
  csr_invalid: connackCodes.notAuthorized,
  csr_signature_invalid: connackCodes.notAuthorized,
  key_unsupported: connackCodes.notAuthorized,
  hash_mismatch: connackCodes.notAuthorized,
  upload_incomplete: connackCodes.notAuthorized,
  sbom_invalid: connackCodes.notAuthorized,
  signature_invalid: connackCodes.notAuthorized,
  rate_limited: connackCodes.serverUnavailable,
  unavailable: connackCodes.serverUnavailable,
  config_invalid: connackCodes.serverUnavailable,
  audit_chain_broken: connackCodes.serverUnavailable,
  internal: connackCodes.serverUnavailable,
} as const satisfies Record<ErrorCode, ConnackCode>;

export function httpStatusOf(code: ErrorCode): number {
  return httpStatus[code];
}

export function mqttConnackOf(code: ErrorCode): ConnackCode {
  return mqttConnack[code];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (errorCodes as readonly string[]).includes(value);
}

/** The one error class. `message` is safe to show to clients; `cause` stays server-side. */
export class BulwarkError extends Error {
  override readonly name = 'BulwarkError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.details = options?.details;
  }
  readonly details: Record<string, unknown> | undefined;

  /** Wraps anything thrown into a BulwarkError; unknown throws become `internal` with the cause kept. */
  static from(err: unknown): BulwarkError {
    if (err instanceof BulwarkError) return err;
    return new BulwarkError('internal', 'internal error', { cause: err });
  }
}
