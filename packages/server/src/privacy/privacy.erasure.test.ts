import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestPlatform, type TestPlatform } from '../test-support/platform.ts';
import { enrollInProcess } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

const SUBJECT = 'zq-4242';
const room = {
  name: 'room',
  topic: 'devices/+/room',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { user_id: { type: 'string' }, hr: { type: 'integer' } },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      uses: ['essential.service.operations'],
      transform: 'pseudonymise',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    hr: {
      category: 'user.biometric.health',
      specialCondition: 'explicit_consent',
      uses: ['essential.service.operations'],
      transform: 'encrypt',
      lawfulBasis: 'consent',
      retention: '30d',
    },
  },
};

/** The database files (bulwark.db, its -wal and -shm) that hold `needle`, byte for byte. */
function filesHolding(dataDir: string, needle: string): string[] {
  const files = readdirSync(dataDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.db'));
  return files.filter((f) => readFileSync(path.join(dataDir, f)).includes(needle));
}

describe('erasure on SQLite leaves nothing readable on disk', () => {
  let t: TestPlatform;
  beforeEach(async () => {
    t = await createTestPlatform();
  });
  afterEach(async () => {
    await t.close();
  });

  it('zeroes the destroyed data key and the subject id in bulwark.db and truncates the WAL', async () => {
    const { privacy, store } = t.platform;
    expect(store.dialect).toBe('sqlite');
    await privacy.putSchema(room, 'user:test');
    await privacy.addSubject({ id: SUBJECT }, 'user:test');
    await privacy.createRequest(
      { subject: SUBJECT, kind: 'rectification', note: 'Alice Example' },
      'user:dpo',
    );
    const dev = await t.mqtt(await enrollInProcess(t, 'd-1'));
    try {
      await dev.publishAsync('devices/d-1/room', JSON.stringify({ user_id: SUBJECT, hr: 71 }), {
        qos: 1,
        retain: true,
      });
      const [key] = await waitFor('the subject key and the retained message', async () => {
        const keys = await store.db.selectFrom('privacy_subject_keys').selectAll().execute();
        const rows = await store.db
          .selectFrom('retained_messages')
          .select('topic')
          .where('subject_id', '=', SUBJECT)
          .execute();
        return keys.length > 0 && rows.length > 0 && keys;
      });
      const wrapped = String(key?.wrapped_key).slice(0, 40);
      expect(wrapped.length).toBe(40);
      // Before: the reviewer's finding holds (the WAL holds both).
      expect(filesHolding(t.dataDir, wrapped)).not.toEqual([]);
      expect(filesHolding(t.dataDir, SUBJECT)).not.toEqual([]);

      await privacy.createRequest({ subject: SUBJECT, kind: 'erasure' }, 'user:dpo');

      expect(await store.db.selectFrom('privacy_subject_keys').selectAll().execute()).toEqual([]);
      expect(filesHolding(t.dataDir, wrapped)).toEqual([]);
      expect(filesHolding(t.dataDir, SUBJECT)).toEqual([]);
      expect(filesHolding(t.dataDir, 'Alice Example')).toEqual([]);
    } finally {
      dev.end(true);
    }
  });
});
