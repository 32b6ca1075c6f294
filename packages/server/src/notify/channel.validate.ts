import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { BulwarkError } from '@bulwark/protocol';
import {
  channelFormats,
  syslogTransports,
  type ChannelFormat,
  type ChannelKind,
  type ChannelSettings,
  type SyslogTransport,
} from './channel.types.ts';
import { parseHostPort } from './syslog.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** RFC 5424 §6.2.1: security/authorization messages (private). See docs/notifications.md for why. */
export const DEFAULT_FACILITY = 10;

export function validateName(name: string): string {
  if (!NAME.test(name))
    throw new BulwarkError(
      'validation_failed',
      'name must be 1-64 characters: letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
  return name;
}

const isLoopback = (host: string) => {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  return net.isIPv6(h) && (h === '::1' || /^::ffff:127\./.test(h));
};

/** Webhooks go over HTTPS; plain HTTP only to this machine (a local relay, or a test receiver). */
export function validateWebhookUrl(target: string): string {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new BulwarkError('validation_failed', `webhook URL "${target.slice(0, 200)}" is not a valid URL`);
  }
  if (target.length > 2048) throw new BulwarkError('validation_failed', 'webhook URL is longer than 2048');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname)))
    throw new BulwarkError(
      'validation_failed',
      'webhook URL must use https:// (http:// is allowed only to localhost / 127.0.0.1 / [::1])',
    );
  if (url.username || url.password)
    throw new BulwarkError(
      'validation_failed',
      'webhook URL must not carry a user name or password: receivers authenticate the signature',
    );
  if (url.hash) throw new BulwarkError('validation_failed', 'webhook URL must not have a #fragment');
  return url.toString();
}

export function validateSyslogTarget(target: string): string {
  const parsed = parseHostPort(target);
  if (!parsed)
    throw new BulwarkError(
      'validation_failed',
      `syslog target "${target.slice(0, 200)}" must be host:port, e.g. siem.example.com:6514 or [2001:db8::1]:6514`,
    );
  return target;
}

/** A PEM bundle of one or more certificates, each of which must parse. */
export function validateCa(pem: string): string {
  if (pem.length > 64 * 1024) throw new BulwarkError('validation_failed', 'ca must be at most 64 KiB of PEM');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0)
    throw new BulwarkError(
      'validation_failed',
      'ca must hold PEM certificates (-----BEGIN CERTIFICATE-----)',
    );
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      throw new BulwarkError('validation_failed', 'ca holds a certificate that does not parse');
    }
  }
  return blocks.join('\n') + '\n';
}

export interface TransportInput {
  target: string;
  format?: string | undefined;
  transport?: string | undefined;
  facility?: number | undefined;
  ca?: string | null | undefined;
}

/** Checks that target, format and settings fit the kind; returns them normalised. */
export function validateTransport(
  kind: ChannelKind,
  input: TransportInput,
): { target: string; format: ChannelFormat; settings: ChannelSettings } {
  if (input.format !== undefined && !(channelFormats as readonly string[]).includes(input.format))
    throw new BulwarkError('validation_failed', `format must be one of ${channelFormats.join(', ')}`);
  const ca = input.ca ? validateCa(input.ca) : undefined;
  if (kind === 'webhook') {
    if (input.format !== undefined && input.format !== 'json')
      throw new BulwarkError('validation_failed', 'webhooks send JSON: format must be json');
    if (input.transport !== undefined || input.facility !== undefined)
      throw new BulwarkError('validation_failed', 'transport and facility apply to syslog channels only');
    const target = validateWebhookUrl(input.target);
    return { target, format: 'json', settings: ca ? { ca } : {} };
  }
  const format = (input.format ?? 'rfc5424') as ChannelFormat;
  if (format === 'json')
    throw new BulwarkError('validation_failed', 'syslog channels send rfc5424 or cef, not json');
  if (input.transport !== undefined && !(syslogTransports as readonly string[]).includes(input.transport))
    throw new BulwarkError('validation_failed', 'transport must be tls or tcp');
  const transport = (input.transport ?? 'tls') as SyslogTransport;
  const facility = input.facility ?? DEFAULT_FACILITY;
  if (!Number.isInteger(facility) || facility < 0 || facility > 23)
    throw new BulwarkError('validation_failed', 'facility must be a whole number from 0 to 23 (RFC 5424)');
  if (ca && transport !== 'tls')
    throw new BulwarkError('validation_failed', 'ca applies to the tls transport only');
  const target = validateSyslogTarget(input.target);
  return { target, format, settings: { transport, facility, ...(ca ? { ca } : {}) } };
}
