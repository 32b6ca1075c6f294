import type { NotificationEntry } from './channel.types.ts';
import { syslogSeverity } from './event-severity.ts';

/**
 * The SD-ID of Bulwark's structured data, in the private `name@<enterprise number>` form (RFC 5424 §6.3.2).
 * 32473 is the number IANA reserves for documentation (RFC 5612): Bulwark has no enterprise number of its
 * own, and this one can never clash with a real vendor's.
 */
export const SD_ID = 'bulwark@32473';
export const APP_NAME = 'bulwark';
/** RFC 5425 §4.3.1: receivers SHOULD accept 8192 octets; longer messages are cut (in MSG only). */
export const MAX_MESSAGE_OCTETS = 8192;

export interface SyslogOrigin {
  /** 0-23 (RFC 5424 §6.2.1 Table 1). */
  facility: number;
  hostname: string;
  procId: string;
}

/** PRINTUSASCII (%d33-126) only, at most `max` characters; "-" (the NILVALUE) when nothing is left. */
export function printable(value: string, max: number): string {
  const cleaned = value.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return cleaned || '-';
}

/** PARAM-VALUE escaping, RFC 5424 §6.3.3: `"`, `\` and `]` are preceded by a backslash. */
export function escapeParamValue(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** Cuts a string to at most `max` UTF-8 octets without splitting a character. */
export function cutUtf8(value: string, max: number): string {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length <= max) return value;
  let end = max;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--; // do not end inside a multi-byte sequence
  return bytes.subarray(0, end).toString('utf8');
}

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`. MSGID is the event
 * type; the structured data carries the audit seq (stable, so collectors can de-duplicate a message sent
 * twice after a crash), the actor, the subject and the entry's hash. No BOM before MSG (MSG-ANY): several
 * SIEMs show it as garbage in front of a CEF line.
 */
export function formatRfc5424(entry: NotificationEntry, msg: string, origin: SyslogOrigin): string {
  const pri = origin.facility * 8 + syslogSeverity(entry);
  const params: [string, string][] = [
    ['seq', String(entry.seq)],
    ['actor', entry.actor],
  ];
  if (entry.subject !== null) params.push(['subject', entry.subject]);
  if (entry.hash) params.push(['hash', entry.hash]);
  const sd = `[${SD_ID}${params.map(([k, v]) => ` ${k}="${escapeParamValue(v)}"`).join('')}]`;
  const header = [
    `<${pri}>1`,
    new Date(entry.ts).toISOString(),
    printable(origin.hostname, 255),
    APP_NAME,
    printable(origin.procId, 128),
    printable(entry.type, 32),
    sd,
  ].join(' ');
  const room = MAX_MESSAGE_OCTETS - Buffer.byteLength(header) - 1;
  return `${header} ${cutUtf8(msg, Math.max(0, room))}`;
}

/** Octet-counting framing, RFC 6587 §3.4.1 (and RFC 5425 §4.3): `MSG-LEN SP SYSLOG-MSG`. */
export function frameOctetCounted(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}
