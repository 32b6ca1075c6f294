import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { roomSensor, roomSensorWithHeartRate } from '../test-support/data-schemas.ts';
import { pseudonymise } from './keys.ts';

const READING = { user_id: 'u-17', lat: 48.137154, lon: 11.576124, temp: 21.5 };

describe('schema test (what the broker would do with a payload)', () => {
  let p: PrivacyTestContext;
  beforeEach(async () => {
    p = await createPrivacyTestContext('sqlite');
  });
  afterEach(async () => {
    await p.close();
  });

  it('pseudonymises with a throwaway key: its token is not the stored one (no reversal oracle)', async () => {
    await p.privacy.putSchema(roomSensor(), 'user:ada');
    // What the broker keeps for u-17 in this period: the current pseudonym key's token.
    const current = await p.privacy.keys.ensurePseudonymKey(p.clock.now);
    const stored = pseudonymise(current, 'u-17');
    const test = (payload: unknown) =>
      p.privacy.testSchema({ topic: 'devices/pump-1/telemetry', payload: JSON.stringify(payload) });
    const first = await test(READING);
    const kept = first.kept as { user_id: string };
    expect(kept.user_id).toMatch(/^ps1\.\d+\.[A-Za-z0-9_-]{22}$/);
    expect(kept.user_id).not.toBe(stored);
    expect((first.view as { user_id: string }).user_id).not.toBe(stored);
    // A new throwaway key each time: two tests of one id do not even match each other.
    expect(((await test(READING)).kept as { user_id: string }).user_id).not.toBe(kept.user_id);
    expect(first.note).toMatch(/throwaway keys/);
  });

  it('says nothing of throwaway keys when the schema neither pseudonymises nor encrypts', async () => {
    const plain = roomSensor();
    plain.fields.user_id = { ...plain.fields.user_id, transform: 'drop' };
    await p.privacy.putSchema(plain, 'user:ada');
    const result = await p.privacy.testSchema({
      topic: 'devices/pump-1/telemetry',
      payload: JSON.stringify(READING),
    });
    expect(result).toMatchObject({ valid: true, subject: 'u-17' });
    expect(result.note).toBeUndefined();
  });

  it('encrypts with a throwaway key: no data key is made for the subject', async () => {
    await p.privacy.putSchema(roomSensorWithHeartRate(), 'user:ada');
    const result = await p.privacy.testSchema({
      topic: 'devices/pump-1/telemetry',
      payload: JSON.stringify({ ...READING, hr: 71 }),
    });
    expect((result.kept as { hr: string }).hr).toMatch(/^bwenc1\.test\./);
    expect(result.note).toMatch(/throwaway keys/);
    expect(p.privacy.keys.subjectKey('person:u-17')).toBeUndefined();
  });
});
