import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSecretBox, type SecretBox } from '../secrets/index.ts';
import type { Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import {
  canonicalJson,
  createPrivacyKeys,
  decryptValue,
  encryptValue,
  keyIdOf,
  pseudonymise,
  type DataKey,
  type PrivacyKeys,
} from './keys.ts';

const HOUR = 3_600_000;

describe('values', () => {
  const key: DataKey = { id: 'k1', key: randomBytes(32) };
  const keyOf = (id: string) => (id === key.id ? key : undefined);
  const hr = { schema: 'wearable', path: 'hr' };

  it('encrypts and decrypts any JSON value, never the same token twice', () => {
    for (const value of ['u-17', 48.137154, true, null, { b: [1, 'x'], a: { c: null } }]) {
      const token = encryptValue(key, value, hr);
      expect(token).toMatch(/^bwenc1\.k1\.[A-Za-z0-9_-]+$/);
      expect(keyIdOf(token)).toBe('k1');
      expect(decryptValue(token, keyOf, hr)).toEqual({ ok: true, value });
    }
    expect(encryptValue(key, 'u-17', hr)).not.toBe(encryptValue(key, 'u-17', hr));
  });

  it('refuses an altered token, another key, or something that is not a token', () => {
    const token = encryptValue(key, 'u-17', hr);
    const body = token.slice('bwenc1.k1.'.length);
    const altered = `bwenc1.k1.${body.slice(0, -2)}${body.endsWith('AA') ? 'BB' : 'AA'}`;
    expect(decryptValue(altered, keyOf, hr)).toMatchObject({ ok: false });
    // the key id is bound (AAD): the same bytes under another id do not decrypt
    const moved: DataKey = { id: 'k2', key: key.key };
    expect(decryptValue(`bwenc1.k2.${body}`, (id) => (id === 'k2' ? moved : undefined), hr)).toMatchObject({
      ok: false,
    });
    expect(decryptValue(token, () => undefined, hr)).toEqual({
      ok: false,
      reason: 'the key is gone (erased) or unknown',
    });
    expect(decryptValue('u-17', keyOf, hr)).toEqual({ ok: false, reason: 'not an encrypted value' });
    expect(decryptValue('bwenc1.k1.', keyOf, hr)).toEqual({ ok: false, reason: 'not an encrypted value' });
    expect(decryptValue('bwenc1.k1.AAAA', keyOf, hr)).toEqual({
      ok: false,
      reason: 'not an encrypted value',
    });
    expect(keyIdOf('ps1.3.abc')).toBeUndefined();
  });

  it('binds a token to its schema and field: named as another field or schema it does not decrypt', () => {
    const token = encryptValue(key, 71, hr);
    expect(decryptValue(token, keyOf, hr)).toEqual({ ok: true, value: 71 });
    for (const other of [
      { schema: 'wearable', path: 'note' },
      { schema: 'room', path: 'hr' },
      { schema: 'wearable', path: 'hr.x' },
    ])
      expect(decryptValue(token, keyOf, other)).toEqual({
        ok: false,
        reason: 'the value does not decrypt (altered, another key, or another schema or field)',
      });
  });

  it('pseudonymises canonical JSON: the same value gives the same token, whatever the member order', () => {
    const k = { period: 42, key: randomBytes(32) };
    const a = pseudonymise(k, { x: 1, y: 'b' });
    expect(a).toMatch(/^ps1\.42\.[A-Za-z0-9_-]{22}$/);
    expect(pseudonymise(k, { y: 'b', x: 1 })).toBe(a);
    expect(pseudonymise(k, 'u-17')).toBe(pseudonymise(k, 'u-17'));
    expect(pseudonymise(k, 'u-17')).not.toBe(pseudonymise(k, 'u-18'));
    // "17" and 17 are different values
    expect(pseudonymise(k, '17')).not.toBe(pseudonymise(k, 17));
    expect(pseudonymise({ period: 42, key: randomBytes(32) }, 'u-17')).not.toBe(pseudonymise(k, 'u-17'));
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 1 }], u: undefined })).toBe('{"a":[{"c":1,"d":2}],"b":1}');
  });
});

for (const dialect of testDialects) {
  describe(`privacy keys on ${dialect}`, () => {
    let t: TestStore;
    let box: SecretBox;
    let clock: number;

    const keysOn = (store: Store, keptPeriods = 2): PrivacyKeys =>
      createPrivacyKeys({ db: store.db, box, now: () => clock, periodMs: 24 * HOUR, keptPeriods });

    beforeEach(async () => {
      t = await createTestStore(dialect);
      box = createSecretBox(randomBytes(32));
      clock = Date.parse('2026-12-03T12:00:00Z');
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('creates one data key per owner, stored wrapped, the same on every node', async () => {
      const a = keysOn(t.store);
      const b = keysOn(await t.openAnother());
      expect(a.subjectKey('person:u-17')).toBeUndefined();
      // two nodes create the same owner's key at once: one wins, both use it
      const [ka, kb] = await Promise.all([a.loadSubjectKey('person:u-17'), b.loadSubjectKey('person:u-17')]);
      expect(ka.id).toBe(kb.id);
      expect(ka.key.equals(kb.key)).toBe(true);
      expect(ka.key).toHaveLength(32);
      expect(a.subjectKey('person:u-17')).toBe(ka);
      const other = await a.loadSubjectKey('device:d-1');
      expect(other.id).not.toBe(ka.id);
      const rows = await t.store.db.selectFrom('privacy_subject_keys').selectAll().execute();
      expect(rows.map((r) => r.subject).sort()).toEqual(['device:d-1', 'person:u-17']);
      const row = rows.find((r) => r.subject === 'person:u-17');
      expect(row?.key_id).toBe(ka.id);
      expect(row?.wrapped_key).not.toContain(ka.key.toString('base64'));
      expect(row?.wrapped_key).not.toContain(ka.key.toString('hex'));
      // the wrapped key is bound to its owner
      expect(() => box.open(row?.wrapped_key ?? '', 'privacy-key:person:u-18')).toThrow();
    });

    it('decrypts by key id on any node, and never again once the key is destroyed', async () => {
      const a = keysOn(t.store);
      const b = keysOn(await t.openAnother());
      const key = await a.loadSubjectKey('person:u-17');
      const ctx = { schema: 'room', path: 'user' };
      const token = encryptValue(key, { user_id: 'u-17', lat: 48.137154 }, ctx);
      const kb = await b.keyById(key.id);
      expect(decryptValue(token, (id) => (id === kb?.id ? kb : undefined), ctx)).toEqual({
        ok: true,
        value: { user_id: 'u-17', lat: 48.137154 },
      });
      expect(await a.keyById('nope')).toBeUndefined();

      expect(await a.destroy(t.store.db, ['person:u-17', 'person:unknown'])).toBe(1);
      expect(a.subjectKey('person:u-17')).toBeUndefined();
      expect(await a.keyById(key.id)).toBeUndefined();
      // node b still has it cached until told (the service tells it through the bus)
      b.forgetAll();
      const gone = await b.keyById(key.id);
      expect(gone).toBeUndefined();
      expect(decryptValue(token, () => gone, ctx)).toEqual({
        ok: false,
        reason: 'the key is gone (erased) or unknown',
      });
      // a new key afterwards is another key: the old tokens stay unreadable
      const fresh = await a.loadSubjectKey('person:u-17');
      expect(fresh.id).not.toBe(key.id);
      expect(decryptValue(token, (id) => (id === fresh.id ? fresh : undefined), ctx).ok).toBe(false);
      expect(await a.destroy(t.store.db, [])).toBe(0);
    });

    it('destroys keys inside the caller transaction', async () => {
      const keys = keysOn(t.store);
      const key = await keys.loadSubjectKey('person:u-17');
      await expect(
        t.store.db.transaction().execute(async (tx) => {
          expect(await keys.destroy(tx, ['person:u-17'])).toBe(1);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      // rolled back: the key is still there (the cache was dropped and reloads it)
      expect((await keys.keyById(key.id))?.key.equals(key.key)).toBe(true);
    });

    it('keeps one pseudonymisation key per period, shared by the nodes', async () => {
      const a = keysOn(t.store);
      const b = keysOn(await t.openAnother());
      expect(a.pseudonymKey(clock)).toBeUndefined();
      const [ka, kb] = await Promise.all([a.ensurePseudonymKey(clock), b.ensurePseudonymKey(clock)]);
      expect(ka.period).toBe(Math.floor(clock / (24 * HOUR)));
      expect(ka.key.equals(kb.key)).toBe(true);
      expect(a.pseudonymKey(clock + HOUR)).toBe(ka);
      expect(pseudonymise(ka, 'u-17')).toBe(pseudonymise(kb, 'u-17'));
      const next = await a.ensurePseudonymKey(clock + 24 * HOUR);
      expect(next.period).toBe(ka.period + 1);
      expect(pseudonymise(next, 'u-17')).not.toBe(pseudonymise(ka, 'u-17'));
    });

    it('rotates: this and the next period exist, older than the kept periods are deleted', async () => {
      const keys = keysOn(t.store, 2);
      const day = Math.floor(clock / (24 * HOUR));
      expect(await keys.rotate(clock)).toEqual({ period: day, deletedPeriods: 0 });
      const periods = async () =>
        (
          await t.store.db.selectFrom('privacy_pseudonym_keys').select('period').orderBy('period').execute()
        ).map((r) => r.period);
      expect(await periods()).toEqual([day, day + 1]);
      const first = keys.pseudonymKey(clock);
      expect(first).toBeDefined();
      // a rotation twice in a period changes nothing
      expect(await keys.rotate(clock + HOUR)).toEqual({ period: day, deletedPeriods: 0 });
      expect(keys.pseudonymKey(clock)).toBe(first);

      // three days later: kept are the current and the previous period (keptPeriods 2), and the next
      expect(await keys.rotate(clock + 3 * 24 * HOUR)).toEqual({ period: day + 3, deletedPeriods: 2 });
      expect(await periods()).toEqual([day + 3, day + 4]);
      // the deleted periods are gone from the cache too: their pseudonyms can no longer be linked
      expect(keys.pseudonymKey(clock)).toBeUndefined();
      expect(keys.pseudonymKey(clock + 3 * 24 * HOUR)?.period).toBe(day + 3);
      await keys.rotate(clock + 4 * 24 * HOUR);
      expect(await periods()).toEqual([day + 3, day + 4, day + 5]);
    });

    it('keeps at least the current period', async () => {
      const keys = keysOn(t.store, 0);
      const day = Math.floor(clock / (24 * HOUR));
      await keys.rotate(clock);
      expect(await keys.rotate(clock + 24 * HOUR)).toEqual({ period: day + 1, deletedPeriods: 1 });
    });
  });
}
