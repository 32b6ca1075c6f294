/**
 * Receivers for the notification tests, written from the RFCs rather than from the sender's code: a strict
 * RFC 5424 parser (its ABNF, §6), an octet-counting deframer (RFC 6587 §3.4.1), a CEF parser, and real
 * TCP/TLS/HTTP(S) servers on 127.0.0.1.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

export interface Rfc5424Message {
  pri: number;
  facility: number;
  severity: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  structuredData: { id: string; params: Record<string, string> }[];
  msg: string;
}

const PRINTUSASCII = /^[\x21-\x7e]+$/;
const SD_NAME = /^[\x21-\x7e]{1,32}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

/** Parses one SYSLOG-MSG by the ABNF of RFC 5424 §6; throws on anything the grammar does not allow. */
export function parseRfc5424(text: string): Rfc5424Message {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not RFC 5424 at ${i}: ${why} in ${JSON.stringify(text.slice(0, 200))}`);
  };
  const token = (name: string, max: number): string => {
    const end = text.indexOf(' ', i);
    if (end < 0) fail(`${name} not followed by SP`);
    const value = text.slice(i, end);
    if (value !== '-' && (!PRINTUSASCII.test(value) || value.length > max))
      fail(`${name} "${value}" is not 1*${max}PRINTUSASCII`);
    i = end + 1;
    return value;
  };
  const pri = /^<(\d{1,3})>([1-9]\d{0,2}) /.exec(text);
  if (!pri) fail('PRI VERSION');
  const prival = Number(pri![1]);
  if (prival > 191 || (pri![1]!.length > 1 && pri![1]!.startsWith('0'))) fail('PRIVAL out of range');
  i = pri![0].length;
  const timestamp = token('TIMESTAMP', 64);
  if (timestamp !== '-' && !TIMESTAMP.test(timestamp)) fail('TIMESTAMP');
  if (timestamp !== '-' && Number.isNaN(Date.parse(timestamp))) fail('TIMESTAMP is no date');
  const hostname = token('HOSTNAME', 255);
  const appName = token('APP-NAME', 48);
  const procId = token('PROCID', 128);
  const msgId = token('MSGID', 32);
  const structuredData: Rfc5424Message['structuredData'] = [];
  if (text[i] === '-') i += 1;
  else {
    if (text[i] !== '[') fail('STRUCTURED-DATA');
    while (text[i] === '[') {
      i += 1;
      const idEnd = text.slice(i).search(/[ \]]/);
      if (idEnd < 0) fail('SD-ID');
      const id = text.slice(i, i + idEnd);
      if (!SD_NAME.test(id) || /[=\]"]/.test(id)) fail(`SD-ID "${id}"`);
      i += idEnd;
      const params: Record<string, string> = {};
      while (text[i] === ' ') {
        i += 1;
        const eq = text.indexOf('=', i);
        if (eq < 0) fail('SD-PARAM');
        const name = text.slice(i, eq);
        if (!SD_NAME.test(name) || /[ \]"]/.test(name)) fail(`PARAM-NAME "${name}"`);
        i = eq + 1;
        if (text[i] !== '"') fail('PARAM-VALUE must open with "');
        i += 1;
        let value = '';
        for (;;) {
          const c = text[i];
          if (c === undefined) fail('unterminated PARAM-VALUE');
          if (c === '"') break;
          if (c === ']') fail('unescaped ] in PARAM-VALUE');
          if (c === '\\') {
            const n = text[i + 1];
            // §6.3.3: only ", \ and ] are escapes; a backslash before anything else is itself.
            if (n === '"' || n === '\\' || n === ']') {
              value += n;
              i += 2;
              continue;
            }
          }
          value += c;
          i += 1;
        }
        i += 1;
        params[name] = value;
      }
      if (text[i] !== ']') fail('SD-ELEMENT must close with ]');
      i += 1;
      structuredData.push({ id, params });
    }
  }
  let msg = '';
  if (i < text.length) {
    if (text[i] !== ' ') fail('SP before MSG');
    msg = text.slice(i + 1);
    if (msg.startsWith('\ufeff')) msg = msg.slice(1);
  }
  return {
    pri: prival,
    facility: prival >> 3,
    severity: prival & 7,
    version: Number(pri![2]),
    timestamp,
    hostname,
    appName,
    procId,
    msgId,
    structuredData,
    msg,
  };
}

/** RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, MSG-LEN in octets, no leading zero. */
export function octetDeframer(onMessage: (message: string) => void, onError: (err: Error) => void) {
  let buffer = Buffer.alloc(0);
  return (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const sp = buffer.indexOf(0x20);
      if (sp < 0) {
        if (buffer.length > 10) onError(new Error('MSG-LEN too long'));
        return;
      }
      const len = buffer.subarray(0, sp).toString('ascii');
      if (!/^[1-9]\d*$/.test(len)) {
        onError(new Error(`bad MSG-LEN "${len}"`));
        buffer = Buffer.alloc(0);
        return;
      }
      const n = Number(len);
      if (buffer.length < sp + 1 + n) return;
      onMessage(buffer.subarray(sp + 1, sp + 1 + n).toString('utf8'));
      buffer = buffer.subarray(sp + 1 + n);
    }
  };
}

export interface Cef {
  version: number;
  vendor: string;
  product: string;
  deviceVersion: string;
  signatureId: string;
  name: string;
  severity: number;
  extension: Record<string, string>;
}

/** Parses a CEF line: seven `|`-separated header fields (`\|`, `\\` escaped), then `key=value` pairs. */
export function parseCef(line: string): Cef {
  if (!line.startsWith('CEF:')) throw new Error(`not CEF: ${line.slice(0, 80)}`);
  const fields: string[] = [];
  let cur = '';
  let i = 4;
  while (fields.length < 7) {
    const c = line[i];
    if (c === undefined) throw new Error('CEF header has fewer than 8 fields');
    if (c === '\\') {
      const n = line[i + 1];
      if (n !== '|' && n !== '\\') throw new Error(`bad header escape \\${n}`);
      cur += n;
      i += 2;
      continue;
    }
    if (c === '\n' || c === '\r') throw new Error('line break in CEF header');
    if (c === '|') {
      fields.push(cur);
      cur = '';
    } else cur += c;
    i += 1;
  }
  const ext = line.slice(i);
  const extension: Record<string, string> = {};
  // Keys start where an unescaped `key=` follows a space (or the start); values run up to the next key.
  const keyAt = /(?:^| )([A-Za-z0-9_]+)=/g;
  const starts: { key: string; at: number; valueAt: number }[] = [];
  // An escaped `\=` never matches: the key characters cannot include the backslash before it.
  for (let m; (m = keyAt.exec(ext));)
    starts.push({ key: m[1]!, at: m.index, valueAt: m.index + m[0].length });
  starts.forEach((s, k) => {
    const raw = ext.slice(s.valueAt, k + 1 < starts.length ? starts[k + 1]!.at : ext.length);
    let value = '';
    for (let j = 0; j < raw.length; j++) {
      const c = raw[j];
      if (c === '=') throw new Error(`unescaped = in value of ${s.key}`);
      if (c === '\n' || c === '\r') throw new Error(`raw line break in value of ${s.key}`);
      if (c === '\\') {
        const n = raw[j + 1];
        if (n === '=' || n === '\\') value += n;
        else if (n === 'n') value += '\n';
        else if (n === 'r') value += '\r';
        else throw new Error(`bad extension escape \\${n} in ${s.key}`);
        j++;
      } else value += c;
    }
    extension[s.key] = value;
  });
  const [version, vendor, product, deviceVersion, signatureId, name, severity] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  return {
    version: Number(version),
    vendor,
    product,
    deviceVersion,
    signatureId,
    name,
    severity: Number(severity),
    extension,
  };
}

/** A self-signed certificate for localhost / 127.0.0.1, made by `openssl req`. */
export async function testCertificate(): Promise<{ key: string; cert: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-notify-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

/** A port nothing listens on (yet). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface SyslogReceiver {
  port: number;
  /** Every frame received, parsed (a frame that does not parse lands in `errors`). */
  messages: Rfc5424Message[];
  errors: Error[];
  connections: number;
  close(): Promise<void>;
}

/** A syslog collector over TCP, or TLS when given a key and certificate (RFC 5425). */
export async function startSyslogReceiver(
  options: { port?: number; tls?: { key: string; cert: string } } = {},
): Promise<SyslogReceiver> {
  const sockets = new Set<net.Socket>();
  const receiver: SyslogReceiver = {
    port: 0,
    messages: [],
    errors: [],
    connections: 0,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  const onSocket = (socket: net.Socket) => {
    receiver.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on(
      'data',
      octetDeframer(
        (m) => {
          try {
            receiver.messages.push(parseRfc5424(m));
          } catch (err) {
            receiver.errors.push(err as Error);
          }
        },
        (err) => receiver.errors.push(err),
      ),
    );
  };
  const server = options.tls
    ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onSocket)
    : net.createServer(onSocket);
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  receiver.port = (server.address() as net.AddressInfo).port;
  return receiver;
}

export interface WebhookRequest {
  headers: Record<string, string>;
  body: string;
  status: number;
}

export interface WebhookReceiver {
  port: number;
  url: string;
  requests: WebhookRequest[];
  close(): Promise<void>;
}

/**
 * An HTTP(S) webhook endpoint. `answer` decides the status of each request (it sees the request first);
 * by default every request gets 204.
 */
export async function startWebhookReceiver(
  options: {
    port?: number;
    tls?: { key: string; cert: string };
    answer?: (req: Omit<WebhookRequest, 'status'>) => number;
  } = {},
): Promise<WebhookReceiver> {
  const handler: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]),
      );
      const body = Buffer.concat(chunks).toString('utf8');
      const status = options.answer?.({ headers, body }) ?? 204;
      receiver.requests.push({ headers, body, status });
      res.writeHead(status).end(status >= 400 ? 'not today' : undefined);
    });
  };
  const server = options.tls
    ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : http.createServer(handler);
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const receiver: WebhookReceiver = {
    port,
    url: `${options.tls ? 'https' : 'http'}://${options.tls ? 'localhost' : '127.0.0.1'}:${port}/hook`,
    requests: [],
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return receiver;
}
