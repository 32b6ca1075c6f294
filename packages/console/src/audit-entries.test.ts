import { describe, expect, it } from 'vitest';
import {
  dataSummary,
  MAX_SHOWN,
  matches,
  withLive,
  withOlder,
  type AuditEntry,
  type AuditList,
} from './audit-entries.ts';

const entry = (seq: number, type = 'device.added', subject: string | null = 'device:pump-1'): AuditEntry => ({
  seq,
  ts: seq,
  type,
  actor: 'system',
  subject,
  data: {},
  prevHash: '',
  hash: '',
});
const all = { typePrefix: '', subject: '' };

describe('the audit list', () => {
  it('matches live entries against the filter: type prefix and exact subject', () => {
    expect(matches(entry(1), { typePrefix: 'device.', subject: '' })).toBe(true);
    expect(matches(entry(1), { typePrefix: 'auth.', subject: '' })).toBe(false);
    expect(matches(entry(1), { typePrefix: '', subject: 'device:pump-1' })).toBe(true);
    expect(matches(entry(1), { typePrefix: '', subject: 'device:pump-10' })).toBe(false);
    expect(matches(entry(1, 'device.added', null), { typePrefix: '', subject: 'device:pump-1' })).toBe(false);
  });

  it('puts live entries on top once, appends older pages once, keeps at most MAX_SHOWN', () => {
    let list: AuditList = { entries: [entry(5), entry(4)], next: 4 };
    list = withLive(list, entry(6), all);
    list = withLive(list, entry(6), all); // replayed after a reconnect
    list = withLive(list, entry(7, 'auth.signed_out'), { typePrefix: 'device.', subject: '' });
    expect(list.entries.map((e) => e.seq)).toEqual([6, 5, 4]);
    list = withOlder(list, { entries: [entry(4), entry(3)], next: null });
    expect(list).toMatchObject({ next: null });
    expect(list.entries.map((e) => e.seq)).toEqual([6, 5, 4, 3]);

    let full: AuditList = {
      entries: Array.from({ length: MAX_SHOWN }, (_, i) => entry(MAX_SHOWN - i)),
      next: null,
    };
    full = withLive(full, entry(MAX_SHOWN + 1), all);
    expect(full.entries).toHaveLength(MAX_SHOWN);
    expect(full.entries[0]?.seq).toBe(MAX_SHOWN + 1);
    expect(full.next).toBe(2); // "Older entries" reads on before the oldest kept
  });

  it('summarises data on one line', () => {
    expect(dataSummary({ reason: 'keyCompromise', serials: ['01', '02'], at: 5, extra: { a: 1 } })).toBe(
      'reason=keyCompromise · serials=2 items · at=5 · +1',
    );
    expect(dataSummary({ long: 'x'.repeat(60) })).toBe(`long=${'x'.repeat(39)}…`);
  });
});
