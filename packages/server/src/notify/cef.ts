import { isIP } from 'node:net';
import { VERSION } from '../version.ts';
import { subjectIdOf } from '../events/index.ts';
import type { NotificationEntry } from './channel.types.ts';
import { cefSeverity } from './event-severity.ts';

/** Header fields: `\` and `|` are escaped; a header cannot span lines. */
export function escapeCefHeader(value: string): string {
  return value.replace(/[\\|]/g, (c) => `\\${c}`).replace(/\r\n|\r|\n/g, ' ');
}

/** Extension values: `\` and `=` are escaped, line breaks written as `\n` / `\r`. */
export function escapeCefValue(value: string): string {
  return value
    .replace(/[\\=]/g, (c) => `\\${c}`)
    .replace(/\r\n|\n/g, '\\n')
    .replace(/\r/g, '\\r');
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** CEF caps the custom string fields cs1-cs6 at 4000 characters. */
const CS_MAX = 4000;

/** A readable name for the header: the alert's title, or the event type in words ("mqtt publish denied"). */
function eventName(entry: NotificationEntry): string {
  return str(entry.data.title) ?? entry.type.replace(/[._]/g, ' ');
}

/**
 * An ArcSight Common Event Format line:
 * `CEF:0|Bulwark|Bulwark|<version>|<event type>|<name>|<severity 0-10>|<extension>`. Extension keys come
 * from the CEF dictionary where one fits (see docs/notifications.md for the table); the rest of the event's
 * data travels as JSON in cs4.
 */
export function formatCef(entry: NotificationEntry, deviceHost: string): string {
  const ext: [string, string][] = [
    ['rt', String(entry.ts)],
    ['externalId', String(entry.seq)],
    ['cat', entry.type],
    ['suser', entry.actor],
    ['dvchost', deviceHost],
  ];
  const user = subjectIdOf(entry.subject, 'user');
  if (user !== undefined) ext.push(['duser', user]);
  const address = str(entry.data.remoteAddress) ?? str(entry.data.address);
  if (address && isIP(address)) ext.push(['src', address]);
  const action = str(entry.data.action);
  if (action) ext.push(['act', action]);
  const msg =
    str(entry.data.reason) ?? str(entry.data.title) ?? str(entry.data.detail) ?? str(entry.data.error);
  if (msg) ext.push(['msg', msg.slice(0, 1023)]);
  if (entry.subject !== null) ext.push(['cs1Label', 'subject'], ['cs1', entry.subject]);
  const alertId = str(entry.data.alertId);
  if (alertId) ext.push(['cs2Label', 'alertId'], ['cs2', alertId]);
  const detector = str(entry.data.detector);
  if (detector) ext.push(['cs3Label', 'detector'], ['cs3', detector]);
  ext.push(['cs4Label', 'data'], ['cs4', JSON.stringify(entry.data).slice(0, CS_MAX)]);
  if (entry.hash) ext.push(['cs5Label', 'hash'], ['cs5', entry.hash]);
  const header = [
    'CEF:0',
    'Bulwark',
    'Bulwark',
    VERSION,
    entry.type,
    eventName(entry),
    String(cefSeverity(entry)),
  ].map((field, i) => (i === 0 ? field : escapeCefHeader(field)));
  return `${header.join('|')}|${ext.map(([k, v]) => `${k}=${escapeCefValue(v)}`).join(' ')}`;
}
