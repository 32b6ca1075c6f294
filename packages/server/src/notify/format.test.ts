import { describe, expect, it } from 'vitest';
import { formatCef } from './cef.ts';
import type { NotificationEntry } from './channel.types.ts';
import { cefSeverity, syslogSeverity } from './event-severity.ts';
import { escapeParamValue, formatRfc5424, frameOctetCounted, MAX_MESSAGE_OCTETS, SD_ID } from './rfc5424.ts';
import { octetDeframer, parseCef, parseRfc5424 } from '../test-support/notify-receivers.ts';

const entry = (over: Partial<NotificationEntry> = {}): NotificationEntry => ({
  seq: 42,
  ts: Date.UTC(2026, 10, 25, 2, 46, 23, 123),
  type: 'alert.raised',
  actor: 'system',
  subject: 'device:pump-1',
  data: {
    alertId: 'a1',
    detector: 'flood',
    severity: 'high',
    title: 'Payload flood',
    evidence: { rate: 900 },
  },
  hash: 'ab'.repeat(32),
  ...over,
});
const origin = { facility: 10, hostname: 'bulwark-1.example', procId: '4242' };

describe('RFC 5424 messages', () => {
  it('parse under the RFC 5424 grammar with the fields a collector needs', () => {
    const m = parseRfc5424(formatRfc5424(entry(), JSON.stringify(entry().data), origin));
    expect(m).toMatchObject({
      version: 1,
      facility: 10,
      severity: 3, // high → Error
      timestamp: '2026-11-25T02:46:23.123Z',
      hostname: 'bulwark-1.example',
      appName: 'bulwark',
      procId: '4242',
      msgId: 'alert.raised',
      structuredData: [
        {
          id: SD_ID,
          params: { seq: '42', actor: 'system', subject: 'device:pump-1', hash: 'ab'.repeat(32) },
        },
      ],
    });
    expect(JSON.parse(m.msg)).toEqual(entry().data);
  });

  it('escapes ", \\ and ] in SD parameter values, and they come back intact', () => {
    expect(escapeParamValue('a"b\\c]d')).toBe('a\\"b\\\\c\\]d');
    const nasty = 'user:"evil"] [x@1 y="z"] \\ end';
    const m = parseRfc5424(
      formatRfc5424(entry({ actor: nasty, subject: 'device:a]b' }), 'msg with ] and "', origin),
    );
    expect(m.structuredData).toHaveLength(1);
    expect(m.structuredData[0]!.params).toMatchObject({ actor: nasty, subject: 'device:a]b' });
    expect(m.msg).toBe('msg with ] and "');
  });

  it('keeps header fields to PRINTUSASCII and their lengths, and leaves subject out when there is none', () => {
    const m = parseRfc5424(
      formatRfc5424(entry({ subject: null, type: 'notification.channel_recovered', data: {} }), '{}', {
        facility: 16,
        hostname: 'host with spaces\u00e9',
        procId: '1',
      }),
    );
    expect(m.hostname).toBe('hostwithspaces');
    expect(m.pri).toBe(16 * 8 + 6);
    expect(m.structuredData[0]!.params).not.toHaveProperty('subject');
  });

  it('maps severities: critical 2, high 3, medium 4, low 5, refusals 4, the rest 6', () => {
    const sev = (type: string, severity?: string) =>
      syslogSeverity({ type, data: severity ? { severity } : {} });
    expect([
      sev('alert.raised', 'critical'),
      sev('alert.raised', 'high'),
      sev('response.executed', 'medium'),
    ]).toEqual([2, 3, 4]);
    expect(sev('alert.raised', 'low')).toBe(5);
    expect([sev('mqtt.publish_denied'), sev('enrollment.refused'), sev('auth.sign_in_failed')]).toEqual([
      4, 4, 4,
    ]);
    expect([sev('device.added'), sev('alert.acknowledged')]).toEqual([6, 6]);
    expect(cefSeverity({ type: 'alert.raised', data: { severity: 'critical' } })).toBe(10);
    expect(cefSeverity({ type: 'mqtt.connect_refused', data: {} })).toBe(4);
  });

  it('cuts an oversized MSG to 8192 octets without splitting a UTF-8 character', () => {
    const text = formatRfc5424(entry(), '€'.repeat(5000), origin);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_MESSAGE_OCTETS);
    expect(Buffer.byteLength(text)).toBeGreaterThan(MAX_MESSAGE_OCTETS - 3);
    expect(parseRfc5424(text).msg).toMatch(/^€+$/);
  });

  it('frames by octet count (multi-byte characters counted in bytes), and a split stream deframes', () => {
    const a = formatRfc5424(entry({ actor: 'user:zoë' }), '{"x":"ü"}', origin);
    const b = formatRfc5424(entry({ seq: 43 }), '{}', origin);
    const frames = Buffer.concat([frameOctetCounted(a), frameOctetCounted(b)]);
    expect(frames.subarray(0, frames.indexOf(0x20)).toString()).toBe(String(Buffer.byteLength(a)));
    const got: string[] = [];
    const feed = octetDeframer(
      (m) => got.push(m),
      (e) => {
        throw e;
      },
    );
    for (let i = 0; i < frames.length; i += 7) feed(frames.subarray(i, i + 7));
    expect(got).toEqual([a, b]);
  });
});

describe('CEF', () => {
  it('writes the header and dictionary fields, parsed back by a CEF parser', () => {
    const cef = parseCef(
      formatCef(
        entry({
          type: 'response.executed',
          actor: 'system',
          data: {
            alertId: 'a1',
            action: 'quarantine',
            detector: 'flood',
            severity: 'critical',
            title: 'Flood',
          },
        }),
        'bulwark-1',
      ),
    );
    expect(cef).toMatchObject({
      version: 0,
      vendor: 'Bulwark',
      product: 'Bulwark',
      signatureId: 'response.executed',
      name: 'Flood',
      severity: 10,
    });
    expect(cef.extension).toMatchObject({
      rt: String(entry().ts),
      externalId: '42',
      cat: 'response.executed',
      suser: 'system',
      dvchost: 'bulwark-1',
      act: 'quarantine',
      msg: 'Flood',
      cs1Label: 'subject',
      cs1: 'device:pump-1',
      cs2: 'a1',
      cs3: 'flood',
    });
    expect(JSON.parse(cef.extension.cs4!)).toMatchObject({ action: 'quarantine' });
  });

  it('escapes | and \\ in the header, = \\ and line breaks in extension values', () => {
    const line = formatCef(
      entry({
        type: 'auth.sign_in_failed',
        actor: 'anonymous@203.0.113.9',
        subject: 'user:a=b|c',
        data: {
          title: 'pipe | back\\slash\nnew',
          reason: 'k=v\\ line1\nline2\r\nend',
          address: '203.0.113.9',
        },
      }),
      'h',
    );
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain('pipe \\| back\\\\slash new');
    const cef = parseCef(line);
    expect(cef.name).toBe('pipe | back\\slash new');
    expect(cef.extension.msg).toBe('k=v\\ line1\nline2\nend');
    expect(cef.extension.duser).toBe('a=b|c');
    expect(cef.extension.src).toBe('203.0.113.9');
    expect(cef.extension.cs1).toBe('user:a=b|c');
  });

  it('travels as the MSG of an RFC 5424 message', () => {
    const e = entry();
    const m = parseRfc5424(formatRfc5424(e, formatCef(e, 'h'), origin));
    expect(parseCef(m.msg).extension.externalId).toBe('42');
  });
});
