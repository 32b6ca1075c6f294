import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';

export interface HttpsRequest {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** PEM trust anchors; the platform store when absent. */
  readonly ca?: string | undefined;
  /** TLS client key and certificate (PEM), for mutual TLS. */
  readonly key?: string | undefined;
  readonly cert?: string | undefined;
  /** Only for the trust-on-first-use fetch of the CA chain; everything else verifies. */
  readonly insecureSkipVerify?: boolean | undefined;
  readonly timeoutMs: number;
  /** Responses larger than this are refused, so a hostile server cannot exhaust device memory. */
  readonly maxBodyBytes: number;
}

export interface HttpsResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One HTTPS exchange with node:https, body buffered. */
export function httpsRequest(options: HttpsRequest): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(options.url, {
      method: options.method,
      headers: { connection: 'close', ...options.headers },
      // No connection pooling: a socket opened without verification (trust on first use) or with
      // one client certificate must never be reused for another request.
      agent: false,
      ca: options.ca,
      key: options.key,
      cert: options.cert,
      rejectUnauthorized: options.insecureSkipVerify !== true,
      timeout: options.timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${options.timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBodyBytes) {
          req.destroy(new Error(`response larger than ${options.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.end(options.body);
  });
}

/**
 * Bulwark serves what needs the device certificate (EST `simplereenroll`, the TUF repository) on a
 * mutual-TLS listener of its own, so that its main listener never asks browsers for a certificate; the main
 * URL answers 307/308 there. A device follows such a redirect once, and only to the same host (any port) and
 * the same path over HTTPS, where the server is verified against the same trust anchors (RFC 7030 §3.2.1
 * lets an EST client follow a redirect within its configured server). Returns the target, or undefined
 * when the redirect may not be followed.
 */
export function deviceListenerRedirect(
  from: URL,
  status: number,
  location: string | undefined,
): URL | undefined {
  if (status !== 307 && status !== 308) return undefined;
  let to: URL;
  try {
    to = new URL(location ?? '', from);
  } catch {
    return undefined;
  }
  if (location === undefined || to.protocol !== 'https:' || to.hostname !== from.hostname) return undefined;
  if (to.pathname !== from.pathname || to.search !== from.search) return undefined;
  return to;
}
