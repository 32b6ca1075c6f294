import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** Serial (upper-case hex, like every serial in test-support) of the TLS client certificate, when one was presented and verified. */
  readonly clientCertSerial: string | undefined;
}

export type Handler = (request: RecordedRequest, response: ServerResponse) => void | Promise<void>;

export interface HttpsTestServer {
  /** `https://127.0.0.1:PORT` */
  readonly url: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

/** An HTTPS server on an ephemeral loopback port that records every request. */
export async function startHttpsServer(options: {
  keyPem: string;
  certPem: string;
  /** Ask for a client certificate verified against this CA (optional: requests without one pass). */
  clientCa?: string;
  handler: Handler;
}): Promise<HttpsTestServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer(
    {
      key: options.keyPem,
      cert: options.certPem,
      ...(options.clientCa === undefined
        ? {}
        : { ca: options.clientCa, requestCert: true, rejectUnauthorized: false }),
    },
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const socket = req.socket as TLSSocket;
        const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
        const recorded: RecordedRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          clientCertSerial: peer?.serialNumber.toUpperCase(),
        };
        requests.push(recorded);
        Promise.resolve(options.handler(recorded, res)).catch((err: unknown) => {
          res.statusCode = 500;
          res.end(String(err));
        });
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes an RFC 9457 problem+json answer, the way the Bulwark server reports errors. */
export function sendProblem(res: ServerResponse, status: number, code: string, detail: string): void {
  res.writeHead(status, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: code, status, detail, code }));
}
