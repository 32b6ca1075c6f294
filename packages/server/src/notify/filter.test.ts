import { describe, expect, it } from 'vitest';
import type { NotificationEntry } from './channel.types.ts';
import { validateTransport, validateWebhookUrl } from './channel.validate.ts';
import { compileFilter, validateFilter } from './filter.ts';
import { retryDelay } from './notify.service.ts';

const e = (type: string, data: Record<string, unknown> = {}): NotificationEntry => ({
  seq: 1,
  ts: 0,
  type,
  actor: 'system',
  subject: null,
  data,
  hash: '',
});

describe('channel filters', () => {
  it('match event types by glob, with alert.* and response.* by default', () => {
    const match = compileFilter(validateFilter({}));
    expect(
      ['alert.raised', 'alert.resolved', 'response.executed', 'response.failed'].map((t) => match(e(t))),
    ).toEqual([true, true, true, true]);
    expect(match(e('device.added'))).toBe(false);
    expect(match(e('alertx.raised'))).toBe(false);
    const all = compileFilter(validateFilter({ types: ['*'] }));
    expect(all(e('mqtt.connected'))).toBe(true);
    const some = compileFilter(validateFilter({ types: ['device.*', 'mqtt.*_denied'] }));
    expect([some(e('device.added')), some(e('mqtt.publish_denied')), some(e('mqtt.connected'))]).toEqual([
      true,
      true,
      false,
    ]);
  });

  it('drop rated events below minSeverity, and let unrated or unknown ratings through', () => {
    const match = compileFilter(validateFilter({ minSeverity: 'high' }));
    expect(match(e('alert.raised', { severity: 'medium' }))).toBe(false);
    expect(match(e('alert.raised', { severity: 'high' }))).toBe(true);
    expect(match(e('alert.raised', { severity: 'critical' }))).toBe(true);
    expect(match(e('alert.acknowledged', {}))).toBe(true);
    expect(match(e('alert.raised', { severity: 'weird' }))).toBe(true);
  });

  it('refuse malformed globs, globs that match no event type, and unknown severities', () => {
    expect(() => validateFilter({ types: ['alerts.*'] })).toThrow(/matches no event type/);
    expect(() => validateFilter({ types: ['Alert.*'] })).toThrow(/must be an event type or a glob/);
    expect(() => validateFilter({ types: [] })).toThrow(/1-50/);
    expect(() => validateFilter({ minSeverity: 'urgent' })).toThrow(/minSeverity/);
  });
});

describe('retry back-off', () => {
  it('doubles from retryBase and stays at retryMax', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => retryDelay(n, 1000, 300_000))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000,
    ]);
    expect(retryDelay(10_000, 1000, 300_000)).toBe(300_000);
  });
});

describe('targets', () => {
  it('take https webhooks anywhere and http only to loopback', () => {
    expect(validateWebhookUrl('https://siem.example.com/hooks/bulwark')).toBe(
      'https://siem.example.com/hooks/bulwark',
    );
    for (const ok of ['http://127.0.0.1:9000/x', 'http://localhost:9000/x', 'http://[::1]:9000/x'])
      expect(() => validateWebhookUrl(ok)).not.toThrow();
    expect(() => validateWebhookUrl('http://siem.example.com/x')).toThrow(/must use https/);
    expect(() => validateWebhookUrl('http://127.0.0.1.nip.io/x')).toThrow(/must use https/);
    expect(() => validateWebhookUrl('ftp://x')).toThrow(/must use https/);
    expect(() => validateWebhookUrl('https://u:p@x.example/')).toThrow(/user name or password/);
    expect(() => validateWebhookUrl('not a url')).toThrow(/not a valid URL/);
  });

  it('take syslog as host:port, defaulting to TLS, rfc5424 and facility 10', () => {
    expect(validateTransport('syslog', { target: 'siem.example.com:6514' })).toEqual({
      target: 'siem.example.com:6514',
      format: 'rfc5424',
      settings: { transport: 'tls', facility: 10 },
    });
    expect(
      validateTransport('syslog', { target: '[2001:db8::1]:514', transport: 'tcp', format: 'cef' }).format,
    ).toBe('cef');
    expect(() => validateTransport('syslog', { target: 'siem.example.com' })).toThrow(/host:port/);
    expect(() => validateTransport('syslog', { target: 'h:70000' })).toThrow(/host:port/);
    expect(() => validateTransport('syslog', { target: 'h:514', format: 'json' })).toThrow(/rfc5424 or cef/);
    expect(() => validateTransport('syslog', { target: 'h:514', facility: 24 })).toThrow(/0 to 23/);
    expect(() => validateTransport('webhook', { target: 'https://x.example/', facility: 3 })).toThrow(
      /syslog/,
    );
    expect(() => validateTransport('webhook', { target: 'https://x.example/', ca: 'nope' })).toThrow(/PEM/);
  });
});
