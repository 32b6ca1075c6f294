import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import type { SecretBox } from '../secrets/index.ts';
import { formatCef } from './cef.ts';
import type { ChannelRow } from './channel.store.ts';
import type { ChannelSettings, NotificationEntry } from './channel.types.ts';
import { DEFAULT_FACILITY } from './channel.validate.ts';
import { formatRfc5424, frameOctetCounted } from './rfc5424.ts';
import { createSyslogSender, parseHostPort } from './syslog.ts';
import { postWebhook, webhookBody, webhookId } from './webhook.ts';

/** One channel's way out: a webhook endpoint or a syslog connection. */
export interface Transport {
  deliver(entry: NotificationEntry): Promise<void>;
  close(): void;
}

export interface TransportDeps {
  box: Pick<SecretBox, 'seal' | 'open'>;
  now: () => number;
  /** One delivery attempt (ms). */
  timeoutMs: number;
  /** HOSTNAME in syslog headers and dvchost in CEF. */
  host: string;
}

/** The label a channel's webhook secret is sealed under. */
export const secretLabel = (id: string) => `notification-channel:${id}`;

/** An error as one short line for the channel's status and events. */
export function errorText(err: unknown): string {
  const e = err as { message?: string; code?: string } | null | undefined;
  const text = e?.message || e?.code || String(err);
  return text.replace(/\s+/g, ' ').slice(0, 300);
}

function webhookTransport(row: ChannelRow, settings: ChannelSettings, deps: TransportDeps): Transport {
  if (!row.secret_sealed) throw new BulwarkError('internal', `channel ${row.name} has no signing secret`);
  const secret = deps.box.open(row.secret_sealed, secretLabel(row.id)).toString('utf8');
  return {
    async deliver(entry) {
      const id = entry.seq > 0 ? webhookId(entry) : `bulwark_test_${randomUUID()}`;
      await postWebhook(
        { url: row.target, secret, ca: settings.ca, timeoutMs: deps.timeoutMs, id, now: deps.now },
        webhookBody(entry),
      );
    },
    close() {},
  };
}

function syslogTransport(row: ChannelRow, settings: ChannelSettings, deps: TransportDeps): Transport {
  const hp = parseHostPort(row.target);
  if (!hp) throw new BulwarkError('internal', `channel ${row.name} has an invalid target`);
  const sender = createSyslogSender({
    ...hp,
    transport: settings.transport ?? 'tls',
    ca: settings.ca,
    timeoutMs: deps.timeoutMs,
  });
  const origin = {
    facility: settings.facility ?? DEFAULT_FACILITY,
    hostname: deps.host,
    procId: String(process.pid),
  };
  return {
    deliver: (entry) =>
      sender.send(
        frameOctetCounted(
          formatRfc5424(
            entry,
            row.format === 'cef' ? formatCef(entry, deps.host) : JSON.stringify(entry.data),
            origin,
          ),
        ),
      ),
    close: () => sender.close(),
  };
}

/** The transport a channel's row describes. */
export function makeTransport(row: ChannelRow, deps: TransportDeps): Transport {
  const settings = JSON.parse(row.settings) as ChannelSettings;
  return row.kind === 'webhook'
    ? webhookTransport(row, settings, deps)
    : syslogTransport(row, settings, deps);
}
