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
