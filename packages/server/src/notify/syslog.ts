import net from 'node:net';
import tls from 'node:tls';
import type { SyslogTransport } from './channel.types.ts';

export interface SyslogTarget {
  host: string;
  port: number;
  transport: SyslogTransport;
  /** PEM the collector's certificate must chain to (instead of the system's trust store). */
  ca?: string | undefined;
  timeoutMs: number;
}

export interface SyslogSender {
  /** Writes one framed message; connects (again) first when there is no open connection. */
  send(frame: Buffer): Promise<void>;
  close(): void;
}

/** Splits `host:port` (`[v6]:port` for IPv6). */
export function parseHostPort(target: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(target);
  if (!m) return undefined;
  const port = Number(m[3]);
  const host = m[1] ?? m[2];
  if (!host || port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined && net.isIPv6(m[1]) === false) return undefined;
  return { host, port };
}

/**
 * One persistent connection per channel (RFC 6587 over TCP, RFC 5425 over TLS 1.2+), opened on first
 * use and again after any error or close. The receiver never answers (syslog has no acknowledgement), so
 * anything it sends is read and dropped.
 *
 * A message counts as sent once the kernel accepted it. RFC 6587 has no acknowledgement, so a message
 * written just before the collector dies can be lost without an error; docs/notifications.md says so.
 */
export function createSyslogSender(target: SyslogTarget): SyslogSender {
  let socket: net.Socket | undefined;
  let open = false;

  const connect = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const s =
        target.transport === 'tls'
          ? tls.connect({
              host: target.host,
              port: target.port,
              ...(net.isIP(target.host) ? {} : { servername: target.host }),
              ...(target.ca ? { ca: target.ca } : {}),
              minVersion: 'TLSv1.2', // RFC 5425 §4.2 (as updated by RFC 9662)
            })
          : net.connect({ host: target.host, port: target.port });
      const timer = setTimeout(
        () => s.destroy(new Error(`no connection within ${target.timeoutMs} ms`)),
        target.timeoutMs,
      );
      const fail = (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(err);
      };
      s.once('error', fail);
      s.once(target.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.off('error', fail);
        // From now on any error or close just retires the connection; the next message opens a new one.
        s.on('error', () => drop(s));
        s.on('end', () => drop(s));
        s.on('close', () => drop(s));
        s.on('data', () => undefined);
        s.setNoDelay(true);
        resolve(s);
      });
    });

  function drop(s: net.Socket) {
    if (socket === s) {
      socket = undefined;
      open = false;
    }
    s.destroy();
  }

  return {
    async send(frame) {
      // Let pending socket events run first: a close the collector already sent is seen before writing
      // into a dead connection (where the message would vanish without an error).
      await new Promise((resolve) => setImmediate(resolve));
      if (!socket || !open || socket.destroyed || !socket.writable) {
        if (socket) drop(socket);
        const s = await connect();
        if (s.destroyed) throw new Error('connection closed at once');
        socket = s;
        open = true;
      }
      const s = socket;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          drop(s);
          reject(new Error(`write not accepted within ${target.timeoutMs} ms`));
        }, target.timeoutMs);
        s.write(frame, (err) => {
          clearTimeout(timer);
          if (err) {
            drop(s);
            reject(err);
          } else resolve();
        });
      });
    },
    close() {
      if (socket) drop(socket);
    },
  };
}
