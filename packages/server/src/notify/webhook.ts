import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import { VERSION } from '../version.ts';
import type { NotificationEntry } from './channel.types.ts';

/** A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * The `webhook-id` of an audit entry: the same for every attempt and every restart, so a receiver can
 * drop a message it already has (delivery is at-least-once). The hash prefix keeps ids from two Bulwark
 * installations apart.
 */
export function webhookId(entry: Pick<NotificationEntry, 'seq' | 'hash'>): string {
  return `bulwark_${entry.seq}_${entry.hash.slice(0, 16)}`;
}

/** The request body: the audit entry as it is stored (minus the link to its predecessor). */
export function webhookBody(entry: NotificationEntry): string {
  const { seq, ts, type, actor, subject, data, hash } = entry;
  return JSON.stringify({ seq, ts, type, actor, subject, data, hash });
}

export interface WebhookTarget {
  url: string;
  secret: string;
  /** PEM: the receiver's certificate must chain to it (instead of the system's trust store). */
  ca?: string | undefined;
  timeoutMs: number;
  /** The message id (`webhook-id`), the same on every retry of one entry. */
  id: string;
  now: () => number;
}

/**
 * POSTs one signed message; resolves on a 2xx answer, rejects otherwise (the caller retries). Signed the
 * Standard Webhooks way: HMAC-SHA256 over `id.timestamp.body`, timestamp in seconds, so a receiver can
 * refuse a replayed old message. Redirects are not followed. A fresh connection per message: a kept-alive
 * socket the receiver closed while idle would turn into a spurious failure.
 */
export function postWebhook(target: WebhookTarget, body: string): Promise<{ status: number }> {
  const { id, now } = target;
  const url = new URL(target.url);
  const timestamp = new Date(now());
  const signature = new Webhook(target.secret).sign(id, timestamp, body);
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'user-agent': `Bulwark/${VERSION}`,
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': signature,
  };
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = { method: 'POST', headers, agent: false };
    if (url.protocol === 'https:' && target.ca) options.ca = target.ca;
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      const status = res.statusCode ?? 0;
      let snippet = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (snippet.length < 200) snippet += chunk;
      });
      res.on('end', () => {
        clearTimeout(deadline);
        if (status >= 200 && status < 300) resolve({ status });
        else {
          const text = snippet.replace(/\s+/g, ' ').trim().slice(0, 120);
          reject(
            new Error(
              `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}${text ? `: ${text}` : ''}`,
            ),
          );
        }
      });
      res.on('error', (err) => {
        clearTimeout(deadline);
        reject(err);
      });
      res.on('close', () => {
        clearTimeout(deadline);
        if (!res.complete) reject(new Error('the answer was cut off'));
      });
    });
    const deadline = setTimeout(
      () => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)),
      target.timeoutMs,
    );
    req.on('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    req.end(body);
  });
}
