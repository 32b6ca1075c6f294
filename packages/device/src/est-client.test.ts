import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BulwarkError, est } from '@bulwark/protocol';
import { getCaCerts, simpleEnroll, simpleReenroll } from './est-client.ts';
import { createCsr, generateDeviceKey } from './keys.ts';
import {
  createTestCa,
  issueLocalhostCert,
  sendProblem,
  startFakeEstServer,
  startHttpsServer,
  type Handler,
  type HttpsTestServer,
  type TestCa,
} from './test-support/index.ts';
import { x509 } from './x509.ts';

let ca: TestCa;
let tls: { keyPem: string; certPem: string };
let server: HttpsTestServer | undefined;

beforeAll(async () => {
  ca = await createTestCa();
  tls = await issueLocalhostCert(ca);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(handler: Handler): Promise<HttpsTestServer> {
  server = await startHttpsServer({ ...tls, clientCa: ca.certPem, handler });
  return server;
}

function sendPkcs7(res: ServerResponse, certs: x509.X509Certificate[]): void {
  res.writeHead(200, { 'content-type': est.certsContentType });
  res.end(new x509.X509Certificates(certs).export('base64'));
}

describe('simpleEnroll', () => {
  it('POSTs the base64 CSR with Basic device-id:token and returns the issued certificate', async () => {
    const key = await generateDeviceKey();
    const csr = await createCsr('pump-17', key);
    const { url, requests } = await serve(async (request, res) => {
      const received = new x509.Pkcs10CertificateRequest(request.body);
      sendPkcs7(res, [await ca.issue({ subject: received.subject, publicKey: received.publicKey })]);
    });

    const certPem = await simpleEnroll({
      serverUrl: url,
      deviceId: 'pump-17',
      token: 's3cret',
      csrDer: csr.der,
      ca: ca.certPem,
    });

    const [request] = requests;
    expect(request).toMatchObject({ method: 'POST', path: '/.well-known/est/simpleenroll' });
    expect(request?.headers['content-type']).toBe('application/pkcs10');
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from('pump-17:s3cret').toString('base64')}`);
    expect(request?.body).toBe(Buffer.from(csr.der).toString('base64'));
    const issued = new x509.X509Certificate(certPem);
    expect(issued.subject).toBe('CN=pump-17');
    expect(await issued.verify({ publicKey: ca.cert.publicKey, signatureOnly: true })).toBe(true);
  });

  it('picks the certificate for its own key when the server appends the chain', async () => {
    const key = await generateDeviceKey();
    const csr = await createCsr('pump-17', key);
    const { url } = await serve(async (_request, res) => {
      const received = new x509.Pkcs10CertificateRequest(new Uint8Array(csr.der));
      const leaf = await ca.issue({ subject: 'CN=pump-17', publicKey: received.publicKey });
      sendPkcs7(res, [ca.cert, leaf]);
    });
    const certPem = await simpleEnroll({
      serverUrl: url,
      deviceId: 'pump-17',
      token: 't',
      csrDer: csr.der,
      ca: ca.certPem,
    });
    expect(new x509.X509Certificate(certPem).subject).toBe('CN=pump-17');
  });

  it('refuses a response that does not certify its key', async () => {
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const { url } = await serve((_request, res) => sendPkcs7(res, [ca.cert]));
    await expect(
      simpleEnroll({ serverUrl: url, deviceId: 'pump-17', token: 't', csrDer: csr.der, ca: ca.certPem }),
    ).rejects.toThrow(/no certificate in the response matches the requested key/);
  });

  it('turns a problem+json 401 into a BulwarkError with status, code and detail', async () => {
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const { url } = await serve((_request, res) =>
      sendProblem(res, 401, 'token_expired', 'enrollment token expired at 2025-01-01T00:00:00Z'),
    );
    const error: unknown = await simpleEnroll({
      serverUrl: url,
      deviceId: 'pump-17',
      token: 'old',
      csrDer: csr.der,
      ca: ca.certPem,
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BulwarkError);
    expect(error).toMatchObject({ code: 'token_expired', details: { status: 401 } });
    expect((error as Error).message).toBe(
      'EST simpleenroll failed: HTTP 401 token_expired: enrollment token expired at 2025-01-01T00:00:00Z',
    );
  });

  it('reports a non-Bulwark error page by its status', async () => {
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const { url } = await serve((_request, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<h1>Bad Gateway</h1>');
    });
    await expect(
      simpleEnroll({ serverUrl: url, deviceId: 'pump-17', token: 't', csrDer: csr.der, ca: ca.certPem }),
    ).rejects.toThrow('EST simpleenroll failed: HTTP 502 internal: <h1>Bad Gateway</h1>');
  });

  it('does not send anything to a server it does not trust', async () => {
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const { url, requests } = await serve((_request, res) => sendPkcs7(res, [ca.cert]));
    const stranger = await createTestCa('Someone Else');
    await expect(
      simpleEnroll({
        serverUrl: url,
        deviceId: 'pump-17',
        token: 't',
        csrDer: csr.der,
        ca: stranger.certPem,
      }),
    ).rejects.toThrow(/EST simpleenroll to https:\/\/127\.0\.0\.1:\d+ failed: .*certificate/);
    expect(requests).toEqual([]);
  });

  it('refuses a device id that HTTP Basic cannot carry, before connecting', async () => {
    const csr = await createCsr('line:4', await generateDeviceKey());
    await expect(
      simpleEnroll({ serverUrl: 'https://127.0.0.1:1', deviceId: 'line:4', token: 't', csrDer: csr.der }),
    ).rejects.toThrow(/RFC 7617/);
  });
});

describe('getCaCerts', () => {
  it('reads the base64 PKCS#7 chain and identifies the self-signed root', async () => {
    const { url, requests } = await serve((_request, res) => {
      res.writeHead(200, { 'content-type': est.cacertsContentType });
      // Line-wrapped base64, as RFC 7030 servers commonly send it.
      res.end(new x509.X509Certificates([ca.cert]).export('base64').replace(/.{1,64}/g, '$&\r\n'));
    });
    const chain = await getCaCerts(url, ca.certPem);
    expect(requests[0]).toMatchObject({ method: 'GET', path: '/.well-known/est/cacerts' });
    expect(chain.root.fingerprint).toBe(ca.fingerprint);
    expect(chain.root.subject).toBe('CN=Bulwark Test Root');
    expect(new x509.X509Certificate(chain.pem).subject).toBe('CN=Bulwark Test Root');
  });

  it('verifies the server unless told to skip it (trust on first use)', async () => {
    const { url } = await serve((_request, res) => sendPkcs7(res, [ca.cert]));
    await expect(getCaCerts(url)).rejects.toThrow(/EST cacerts to .* failed/);
    await expect(getCaCerts(url, undefined, { insecureSkipVerify: true })).resolves.toMatchObject({
      root: { fingerprint: ca.fingerprint },
    });
  });
});

describe('simpleReenroll', () => {
  let estServer: Awaited<ReturnType<typeof startFakeEstServer>>;
  beforeAll(async () => {
    estServer = await startFakeEstServer({ ca });
  });
  afterAll(() => estServer.close());

  it('authenticates with the current certificate over mutual TLS', async () => {
    const current = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const certPem = await simpleReenroll({
      serverUrl: estServer.url,
      csrDer: csr.der,
      ca: ca.certPem,
      key: current.keyPem,
      cert: current.certPem,
    });
    const request = estServer.requests.at(-1);
    expect(request).toMatchObject({
      path: '/.well-known/est/simplereenroll',
      clientCertSerial: current.serialNumber,
    });
    expect(new x509.X509Certificate(certPem).serialNumber).not.toBe(current.serialNumber);
  });

  it("follows the server's redirect to its mutual-TLS device listener on the same host, once", async () => {
    const current = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    const csr = await createCsr('pump-17', await generateDeviceKey());
    // The main listener asks for no client certificate and redirects, as the Bulwark server does.
    const main = await serve((_request, res) => {
      res.writeHead(308, { location: `${estServer.url}${est.simplereenroll}` });
      res.end();
    });
    const certPem = await simpleReenroll({
      serverUrl: main.url,
      csrDer: csr.der,
      ca: ca.certPem,
      key: current.keyPem,
      cert: current.certPem,
    });
    expect(main.requests).toHaveLength(1);
    expect(estServer.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: est.simplereenroll,
      clientCertSerial: current.serialNumber,
      body: Buffer.from(csr.der).toString('base64'),
    });
    expect(new x509.X509Certificate(certPem).publicKey.rawData).toEqual(
      new x509.Pkcs10CertificateRequest(new Uint8Array(csr.der)).publicKey.rawData,
    );
  });

  it('refuses a redirect to another host, another path or plain HTTP, sending nothing there', async () => {
    const current = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const port = new URL(estServer.url).port;
    const before = estServer.requests.length;
    for (const location of [
      `https://localhost:${port}${est.simplereenroll}`, // another host name than the configured 127.0.0.1
      `https://127.0.0.1:${port}/elsewhere`,
      `http://127.0.0.1:${port}${est.simplereenroll}`,
    ]) {
      const main = await serve((_request, res) => {
        res.writeHead(308, { location });
        res.end();
      });
      await expect(
        simpleReenroll({
          serverUrl: main.url,
          csrDer: csr.der,
          ca: ca.certPem,
          key: current.keyPem,
          cert: current.certPem,
        }),
      ).rejects.toThrow(`redirect to ${location} refused`);
      await main.close();
      server = undefined;
    }
    expect(estServer.requests.length).toBe(before);
  });

  it('fails clearly when the server refuses the client certificate', async () => {
    const csr = await createCsr('pump-17', await generateDeviceKey());
    const stranger = await (await createTestCa('Someone Else')).issueKeyAndCert({ subject: 'CN=pump-17' });
    await expect(
      simpleReenroll({
        serverUrl: estServer.url,
        csrDer: csr.der,
        ca: ca.certPem,
        ...{ key: stranger.keyPem, cert: stranger.certPem },
      }),
    ).rejects.toThrow(
      'EST simplereenroll failed: HTTP 401 unauthenticated: re-enrollment requires a client certificate',
    );
  });
});
