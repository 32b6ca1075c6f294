import { BulwarkError } from '@bulwark/protocol';

/** IANA-registered port for MQTT over TLS. */
export const MQTTS_DEFAULT_PORT = 8883;

/**
 * Validates the EST server URL and returns its origin (`https://host[:port]`). Only `https:` is
 * accepted: the enrollment token and CSR must never travel in clear text (RFC 7030 §3.3).
 *
 * @example
 * ```ts
 * parseServerUrl('https://bulwark.example:8443/'); // 'https://bulwark.example:8443'
 * ```
 */
export function parseServerUrl(text: string): string {
  const url = parseUrl(text, 'server');
  if (url.protocol !== 'https:') invalid('server', text, 'must start with https://');
  rejectExtras(url, 'server', text);
  return url.origin;
}

/**
 * Validates an MQTT broker URL and returns it normalised (`mqtts://host:port`). Only `mqtts:` is
 * accepted: the device authenticates with its TLS client certificate.
 *
 * @example
 * ```ts
 * parseMqttUrl('mqtts://localhost:18883'); // 'mqtts://localhost:18883'
 * ```
 */
export function parseMqttUrl(text: string): string {
  const url = parseUrl(text, 'mqtt');
  if (url.protocol !== 'mqtts:') invalid('mqtt', text, 'must start with mqtts://');
  rejectExtras(url, 'mqtt', text);
  return `mqtts://${url.hostname}:${url.port === '' ? MQTTS_DEFAULT_PORT : url.port}`;
}

/**
 * The broker URL a device uses when none is configured: the EST server's host on port 8883.
 *
 * @example
 * ```ts
 * defaultMqttUrl('https://bulwark.example:8443'); // 'mqtts://bulwark.example:8883'
 * ```
 */
export function defaultMqttUrl(serverUrl: string): string {
  return `mqtts://${new URL(serverUrl).hostname}:${MQTTS_DEFAULT_PORT}`;
}

function parseUrl(text: string, what: string): URL {
  try {
    return new URL(text);
  } catch {
    return invalid(what, text, 'is not a URL');
  }
}

function rejectExtras(url: URL, what: string, text: string): void {
  if (url.hostname === '') invalid(what, text, 'has no host');
  if (url.username !== '' || url.password !== '') invalid(what, text, 'must not contain credentials');
  if (url.search !== '' || url.hash !== '') invalid(what, text, 'must not have a query or fragment');
  if (url.pathname !== '' && url.pathname !== '/') invalid(what, text, 'must not have a path');
}

function invalid(what: string, text: string, problem: string): never {
  throw new BulwarkError('validation_failed', `invalid ${what} URL "${text}": ${problem}`);
}
