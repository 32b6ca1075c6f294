import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entriesOf } from '../events/index.ts';
import { testDialects } from '../test-support/dialects.ts';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { encryptValue } from './keys.ts';

const OPS = 'essential.service.operations';

/**
 * A heart rate (special category, consent) encrypted for every purpose but operations; a note encrypted
 * with no uses restriction (every purpose may read it clear).
 */
const wearable = {
  name: 'wearable',
  topic: 'devices/+/vitals',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      user_id: { type: 'string' },
      hr: { type: 'integer' },
      temp: { type: 'number' },
      note: { type: 'string' },
    },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      transform: 'pseudonymise',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    hr: {
      category: 'user.biometric.health',
      specialCondition: 'explicit_consent',
      uses: [OPS],
      transform: 'encrypt',
      lawfulBasis: 'consent',
      retention: '7d',
    },
    temp: { category: 'system.operations' },
    note: { category: 'user.content', transform: 'encrypt', lawfulBasis: 'contract', retention: '30d' },
  },
};

for (const dialect of testDialects) {
  describe(`decryption of encrypted fields on ${dialect}`, () => {
    let p: PrivacyTestContext;
    const token = async (owner: string, value: unknown, path = 'hr') =>
      encryptValue(await p.privacy.keys.loadSubjectKey(owner), value, { schema: 'wearable', path });
    const decrypt = (values: string[], purpose = OPS, field = 'hr') =>
      p.privacy.decrypt({ schema: 'wearable', field, values, purpose }, 'user:doctor');

    beforeEach(async () => {
      p = await createPrivacyTestContext(dialect);
      await p.privacy.putSchema(wearable, 'user:dpo');
      for (const id of ['u-17', 'u-18', 'u-19']) {
        await p.privacy.addSubject({ id }, 'user:dpo');
        await p.privacy.setConsent(id, { purpose: OPS, noticeVersion: 'v1', status: 'given' }, 'user:dpo');
      }
      await p.privacy.setConsent(
        'u-18',
        { purpose: OPS, noticeVersion: 'v2', status: 'withdrawn' },
        'user:dpo',
      );
      await p.privacy.createRequest({ subject: 'u-19', kind: 'restriction' }, 'user:dpo');
    });
    afterEach(async () => {
      await p.close();
    });

    it("decrypts for an allowed purpose, per value as the subject's consent and restriction allow", async () => {
      const values = [
        await token('person:u-17', 72),
        await token('person:u-18', 80),
        'bwenc1.nokey.AAAA',
        'not a token',
        await token('person:u-19', 90),
        await token('device:pump-1', { bpm: 60 }),
      ];
      expect(await decrypt(values)).toEqual({
        values: [72, null, null, null, null, { bpm: 60 }],
        // Withdrawn consent, not a token, restricted; an unknown key reads as erased (the same to the caller).
        refused: 3,
        erased: 1,
      });
      const [event] = entriesOf(await p.log.readAfter(0, 1000), 'privacy.decrypted');
      expect(event).toMatchObject({
        actor: 'user:doctor',
        subject: 'data_schema:wearable',
        data: { values: 2, purpose: OPS, refused: 4 },
      });
    });

    it('refuses a purpose the field does not allow, and a field that does not encrypt', async () => {
      const t = await token('person:u-17', 72);
      await expect(decrypt([t], 'analytics.reporting')).rejects.toMatchObject({ code: 'forbidden' });
      await expect(decrypt([t], OPS, 'temp')).rejects.toMatchObject({ code: 'validation_failed' });
      await expect(decrypt([t], OPS, 'nope')).rejects.toMatchObject({ code: 'not_found' });
      expect(entriesOf(await p.log.readAfter(0, 1000), 'privacy.decrypted')).toEqual([]);
    });

    it('refuses a token named as another field (its schema and field are bound into it)', async () => {
      // The heart rate may not be read for marketing; the note may: naming the note does not open the hr.
      const hr = await token('person:u-17', 72);
      const note = await token('person:u-17', 'call back', 'note');
      await expect(decrypt([hr], 'marketing.advertising')).rejects.toMatchObject({ code: 'forbidden' });
      expect(await decrypt([hr, note], 'marketing.advertising', 'note')).toEqual({
        values: [null, 'call back'],
        refused: 1,
        erased: 0,
      });
      // A note token named as the hr does not decrypt either (for a purpose the hr allows).
      expect(await decrypt([note, hr], OPS, 'hr')).toEqual({ values: [null, 72], refused: 1, erased: 0 });
    });

    it('leaves the values of an erased subject unreadable (crypto-shredding)', async () => {
      const t = await token('person:u-17', 72);
      expect((await decrypt([t])).values).toEqual([72]);
      await p.privacy.createRequest({ subject: 'u-17', kind: 'erasure' }, 'user:dpo');
      expect(await decrypt([t])).toEqual({ values: [null], refused: 0, erased: 1 });
    });
  });
}
