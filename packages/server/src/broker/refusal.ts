import { mqttConnackOf, type ConnackCode, type ErrorCode } from '@bulwark/protocol';

/**
 * An error that only carries a reason to the MQTT engine: no stack trace is captured (formatting one, with
 * source maps on, stalled the event loop for tens of milliseconds when a flooding device was refused).
 */
export function refusal(reason: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(reason);
  Error.stackTraceLimit = limit;
  return err;
}

/** The CONNACK return code for a refusal's error code: protocol's one code-to-MQTT table. */
export const connackOf = (code: ErrorCode): ConnackCode => mqttConnackOf(code);

/** MQTT 5 CONNACK reason codes (§3.2.2.2) Bulwark refuses with. */
const V5 = {
  unspecified: 0x80,
  clientIdNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  banned: 0x8a,
} as const;

/**
 * The MQTT 5 CONNACK reason code of each error code (exhaustive: a new code does not compile until it is
 * mapped). Its 3.1.1 return code (connackOf) is the same refusal in five codes.
 */
const mqtt5Connack = {
  bad_request: V5.notAuthorized,
  validation_failed: V5.clientIdNotValid,
  unsupported_media_type: V5.notAuthorized,
  payload_too_large: V5.notAuthorized,
  unauthenticated: V5.notAuthorized,
  invalid_credentials: V5.badUserNameOrPassword,
  second_factor_required: V5.notAuthorized,
  factor_enrolment_required: V5.notAuthorized,
  step_up_required: V5.notAuthorized,
  csrf_failed: V5.notAuthorized,
  token_invalid: V5.notAuthorized,
  token_expired: V5.notAuthorized,
  token_used: V5.notAuthorized,
  forbidden: V5.notAuthorized,
  not_found: V5.notAuthorized,
  conflict: V5.clientIdNotValid,
  device_revoked: V5.notAuthorized,
  device_disabled: V5.notAuthorized,
  csr_invalid: V5.notAuthorized,
  csr_signature_invalid: V5.notAuthorized,
  key_unsupported: V5.notAuthorized,
  hash_mismatch: V5.notAuthorized,
  upload_incomplete: V5.notAuthorized,
  sbom_invalid: V5.notAuthorized,
  signature_invalid: V5.notAuthorized,
  rate_limited: V5.serverUnavailable,
  unavailable: V5.serverUnavailable,
  config_invalid: V5.serverUnavailable,
  audit_chain_broken: V5.serverUnavailable,
  internal: V5.serverUnavailable,
} as const satisfies Record<ErrorCode, number>;

/** The MQTT 5 CONNACK reason code of a refusal: 0x8A Banned for a ban, otherwise by its error code. */
export const connackV5Of = (code: ErrorCode, banned = false): number =>
  banned ? V5.banned : mqtt5Connack[code];

/** A refused CONNECT. */
export type ConnackError = Error & {
  /** The MQTT 5 reason code; a 3.1.1 client gets its return code (core's v3ConnackOf) [MQTT-3.2.2-5]. */
  reasonCode: number;
};

export function connackError(
  reason: string,
  code: ErrorCode,
  options: { banned?: boolean } = {},
): ConnackError {
  return Object.assign(refusal(reason), { reasonCode: connackV5Of(code, options.banned) });
}
