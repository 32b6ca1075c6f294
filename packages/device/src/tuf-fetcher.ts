import { request } from 'node:https';
import { Readable } from 'node:stream';
import { BaseFetcher } from 'tuf-js';
// tuf-js stops walking root versions only on its own DownloadHTTPError (404/403 = no newer root).
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { deviceListenerRedirect } from './https-request.ts';

export interface MtlsFetcherOptions {
  /** PEM CA chain the server certificate must chain to (the one from enrollment). */
  readonly ca: string;
  /** The device key and certificate: the repository serves enrolled devices only. */
  readonly key: string;
  readonly cert: string;
  readonly timeoutMs?: number | undefined;
}

/**
 * A tuf-js fetcher over HTTPS with the device certificate (mutual TLS). tuf-js's default fetcher uses the
 * global fetch, which can present no client certificate; the checks on length and hashes stay tuf-js's own.
 *
 * @example
 * ```ts
 * const updater = new Updater({ metadataDir, metadataBaseUrl, fetcher: new MtlsFetcher({ ca, key, cert }) });
 * ```
 */
export class MtlsFetcher extends BaseFetcher {
  constructor(private readonly options: MtlsFetcherOptions) {
    super();
  }

  override fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    return this.get(new URL(url), true);
  }

  /** One GET; the main URL's redirect to the device listener is followed once (see deviceListenerRedirect). */
  private get(url: URL, mayFollow: boolean): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const timeoutMs = this.options.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'GET',
        ca: this.options.ca,
        key: this.options.key,
        cert: this.options.cert,
        rejectUnauthorized: true,
        agent: false,
        timeout: timeoutMs,
        headers: { connection: 'close' },
      });
      req.on('timeout', () => req.destroy(new Error(`no response from ${url.href} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          res.resume();
          const to = mayFollow ? deviceListenerRedirect(url, status, res.headers.location) : undefined;
          if (to) resolve(this.get(to, false));
          else reject(new DownloadHTTPError(`GET ${url.href}: HTTP ${status}`, status));
          return;
        }
        // node:stream/web's ReadableStream and the DOM one tuf-js names are the same object at run time.
        resolve(Readable.toWeb(res) as unknown as ReadableStream<Uint8Array<ArrayBuffer>>);
      });
      req.end();
    });
  }
}
