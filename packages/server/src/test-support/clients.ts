import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';

export const exec = promisify(execFile);

export const workDir = () => mkdtempSync(path.join(tmpdir(), 'bulwark-client-'));

export type KeySpec = 'ec-p256' | 'ec-p384' | 'rsa-1024' | 'rsa-2048' | 'ed25519';

/** A key and a base64 DER PKCS#10 request made by `openssl req`, as a device maker would. */
export async function opensslCsr(dir: string, name: string, spec: KeySpec = 'ec-p256', cn = name) {
  const keyFile = path.join(dir, `${name}.key`);
  const csrFile = path.join(dir, `${name}.csr.der`);
  const newkey: Record<KeySpec, string[]> = {
    'ec-p256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    'ec-p384': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    'rsa-1024': ['-newkey', 'rsa:1024'],
    'rsa-2048': ['-newkey', 'rsa:2048'],
    ed25519: ['-newkey', 'ed25519'],
  };
  await exec('openssl', [
    'req',
    '-new',
    ...newkey[spec],
    '-nodes',
    '-keyout',
    keyFile,
    '-subj',
    `/CN=${cn}`,
    '-outform',
    'DER',
    '-out',
    csrFile,
  ]);
  const der = readFileSync(csrFile);
  return { keyFile, keyPem: readFileSync(keyFile, 'utf8'), der, base64: der.toString('base64') };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpsRequest(
  url: string,
  options: {
    method?: string;
    ca: string;
    headers?: Record<string, string>;
    body?: string;
    key?: string;
    cert?: string;
    /** The source address (a 127.x.y.z loopback address acts as another client). */
    localAddress?: string;
  },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: options.method ?? 'GET',
        ca: options.ca,
        headers: options.headers,
        key: options.key,
        cert: options.cert,
        localAddress: options.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export const basic = (user: string, pass: string) =>
  `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** The certificate PEM inside a base64 certs-only PKCS#7, extracted by `openssl pkcs7`. */
export async function pkcs7ToPem(dir: string, base64: string): Promise<string> {
  const p7 = path.join(dir, `resp-${Math.random().toString(36).slice(2)}.p7`);
  writeFileSync(p7, Buffer.from(base64, 'base64'));
  const { stdout } = await exec('openssl', ['pkcs7', '-inform', 'DER', '-in', p7, '-print_certs']);
  return stdout;
}

export interface DeviceCreds {
  id: string;
  key: string;
  cert: string;
  keyFile: string;
  certFile: string;
}

export function connectMqtt(
  url: string,
  ca: string,
  creds: { id: string; key: string; cert: string },
  extra: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      ca,
      key: creds.key,
      cert: creds.cert,
      clientId: creds.id,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...extra,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

/**
 * A raw MQTT 3.1.1 exchange over TLS with mqtt-packet, for conformance checks a well-behaved client
 * library would never send (empty client id with clean session 0, and so on). Returns the packets received.
 */
export async function rawMqtt(
  port: number,
  tlsOptions: { ca: string; key: string; cert: string },
  packets: (object | Buffer)[],
  waitMs = 500,
): Promise<{ packets: mqttPacket.Packet[]; closed: boolean }> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...tlsOptions });
  await once(socket, 'secureConnect');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const received: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => received.push(p));
  socket.on('data', (d: Buffer) => parser.parse(d));
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => (closed = true));
  for (const p of packets)
    socket.write(
      Buffer.isBuffer(p) ? p : mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: 4 }),
    );
  await new Promise((r) => setTimeout(r, waitMs));
  socket.destroy();
  return { packets: received, closed };
}
