import { mqttConnackOf, type ConnackCode, type ErrorCode } from '@bulwark/protocol';

/**
 * An error that only carries a reason to aedes: no stack trace is captured (formatting one, with source
 * maps on, stalled the event loop for tens of milliseconds when a flooding device was refused).
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

/** aedes reads `returnCode` (2-5) off the error for the CONNACK it sends [MQTT-3.2.2-5]. */
export function connackError(reason: string, code: ErrorCode): Error & { returnCode: ConnackCode } {
  return Object.assign(refusal(reason), { returnCode: connackOf(code) });
}
