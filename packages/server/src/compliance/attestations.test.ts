import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError, type StandardId } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import {
  createAttestations,
  MAX_EVIDENCE_FILE_BYTES,
  type AttestationInput,
  type Attestations,
} from './attestations.ts';
import type { ClauseMode } from './model.ts';

const DAY = 86_400_000;
const box = createSecretBox(randomBytes(32));

/** A framework of three clauses, one of each mode. */
const clauses: Record<string, ClauseMode> = {
  '5.2-1': 'manual',
  '5.1-1': 'automated',
  '5.13-1a': 'not_applicable',
};
const clauseExists = (standard: StandardId, clause: string) =>
  standard === 'etsi-en-303-645' ? clauses[clause] : undefined;

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** The refusal `work` ends with: its code and message. */
async function refusal(work: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await work;
  } catch (err) {
    if (err instanceof BulwarkError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

for (const dialect of testDialects) {
  describe(`compliance attestations on ${dialect}`, () => {
    let t: TestStore;
    let audit: AuditLog;
    let bus: EventBus;
    let clock: number;
    let attestations: Attestations;

    const input = (over: Partial<AttestationInput> = {}): AttestationInput => ({
      standard: 'etsi-en-303-645',
      clause: '5.2-1',
      statement: 'Our vulnerability disclosure policy is published at https://example.com/security.',
      owner: 'Product security team',
      files: [{ name: 'policy.txt', mediaType: 'text/plain', content: b64('disclosure policy v3') }],
      reviewAt: clock + 90 * DAY,
      expiresAt: clock + 365 * DAY,
      ...over,
    });
    const auditTypes = async () => (await audit.readAfter(0)).map((e) => e.type);
    const rows = async () =>
      (await t.store.db.selectFrom('compliance_attestations').select('id').execute()).length;

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 1000 * DAY;
      audit = createAuditLog({
        db: t.store.db,
        mac: box,
        now: () => clock,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await audit.ensureAnchor();
      bus = createEventBus({ log: audit, db: t.store.db });
      attestations = createAttestations({ db: t.store.db, events: bus, now: () => clock, clauseExists });
    });
    afterEach(async () => {
      await bus.close();
      await t.cleanup();
    });

    it('records an attestation with its files and event, lists it, serves its files, revokes it', async () => {
      const recorded = await attestations.record(input(), 'user:ada');
      const sha = createHash('sha256').update('disclosure policy v3').digest('hex');
      expect(recorded).toMatchObject({
        standard: 'etsi-en-303-645',
        clause: '5.2-1',
        owner: 'Product security team',
        files: [{ name: 'policy.txt', sha256: sha, size: 20, mediaType: 'text/plain' }],
        createdAt: clock,
        createdBy: 'user:ada',
        revokedAt: null,
      });
      const entries = await audit.readAfter(0);
      const event = entries.find((e) => e.type === 'compliance.attestation_recorded');
      expect(event?.subject).toBe(`attestation:${recorded.id}`);
      if (event?.type === 'compliance.attestation_recorded')
        expect(event.data).toMatchObject({ clause: '5.2-1', files: [{ name: 'policy.txt', sha256: sha }] });

      const file = await attestations.file(sha);
      expect(file).toMatchObject({ mediaType: 'text/plain', size: 20 });
      expect(file.content.toString()).toBe('disclosure policy v3');

      // The same content twice is stored once.
      clock += 1000;
      await attestations.record(input({ clause: '5.2-1', owner: 'Another team' }), 'user:ada');
      const files = await t.store.db.selectFrom('compliance_evidence_files').select('sha256').execute();
      expect(files).toHaveLength(1);

      expect((await attestations.list()).map((a) => a.owner)).toEqual([
        'Another team',
        'Product security team',
      ]);
      expect((await attestations.list({ limit: 1 })).map((a) => a.owner)).toEqual(['Another team']);
      expect(await attestations.inForce(clock)).toHaveLength(2);
      expect(await attestations.inForce(clock + 366 * DAY)).toHaveLength(0);

      clock += 1000;
      const revoked = await attestations.revoke(recorded.id, 'superseded by v4', 'user:bob');
      expect(revoked.revokedAt).toBe(clock);
      expect((await attestations.list()).map((a) => a.id)).not.toContain(recorded.id);
      expect((await attestations.list({ includeRevoked: true })).map((a) => a.id)).toContain(recorded.id);
      expect(await auditTypes()).toContain('compliance.attestation_revoked');
      expect(await refusal(attestations.revoke(recorded.id, 'again', 'user:bob'))).toMatchObject({
        code: 'conflict',
      });
      expect(await refusal(attestations.revoke('nope', 'why not', 'user:bob'))).toMatchObject({
        code: 'not_found',
      });
      expect(await refusal(attestations.revoke(revoked.id, '  ', 'user:bob'))).toMatchObject({
        message: 'reason: required',
      });
    });

    it('refuses bad input, naming the field and rule, and stores nothing', async () => {
      const cases: [Partial<AttestationInput>, RegExp][] = [
        [{ clause: '9.9-9' }, /^clause: etsi-en-303-645 has no clause "9.9-9"/],
        [{ clause: '5.1-1' }, /^clause: .* automated .*only manual clauses/],
        [{ clause: '5.13-1a' }, /^clause: .* not applicable/],
        [{ standard: 'gdpr' }, /^clause: gdpr has no clause/],
        [{ standard: 'iso-9001' }, /^standard: one of/],
        [{ statement: '   ' }, /^statement: required/],
        [{ statement: 'x'.repeat(4001) }, /^statement: at most 4000/],
        [{ owner: '' }, /^owner: required/],
        [{ owner: 'o'.repeat(201) }, /^owner: at most 200/],
        [{ expiresAt: clock }, /^expiresAt: must be in the future/],
        [{ reviewAt: clock - 1 }, /^reviewAt: must be in the future/],
        [{ reviewAt: clock + 400 * DAY }, /^reviewAt: must not be after expiresAt/],
        [
          {
            files: Array.from({ length: 11 }, (_, i) => ({
              name: `f${i}.txt`,
              mediaType: 'text/plain',
              content: b64(`file ${i}`),
            })),
          },
          /^files: at most 10/,
        ],
        [
          { files: [{ name: 'a.txt', mediaType: 'text/plain', content: '***' }] },
          /^files\[0\] \(a\.txt\): content is not base64/,
        ],
        [{ files: [{ name: 'a.txt', mediaType: 'plain', content: b64('x') }] }, /^files\[0\]\.mediaType/],
        [{ files: [{ name: '../a.txt', mediaType: 'text/plain', content: b64('x') }] }, /^files\[0\]\.name/],
        [
          { files: [{ name: 'a.txt', mediaType: 'text/plain', content: '' }] },
          /^files\[0\] \(a\.txt\): empty/,
        ],
        [
          {
            files: [
              {
                name: 'big.bin',
                mediaType: 'application/octet-stream',
                content: Buffer.alloc(MAX_EVIDENCE_FILE_BYTES + 1).toString('base64'),
              },
            ],
          },
          /^files\[0\] \(big\.bin\): .*more than 2097152|larger than 2097152/,
        ],
      ];
      for (const [over, message] of cases) {
        const r = await refusal(attestations.record(input(over), 'user:ada'));
        expect(r.code, JSON.stringify(over).slice(0, 80)).toBe('validation_failed');
        expect(r.message).toMatch(message);
      }
      expect(await rows()).toBe(0);
      expect(await auditTypes()).not.toContain('compliance.attestation_recorded');
      expect(await t.store.db.selectFrom('compliance_evidence_files').select('sha256').execute()).toEqual([]);
      // A file of exactly the limit is accepted.
      const limit = Buffer.alloc(MAX_EVIDENCE_FILE_BYTES, 1).toString('base64');
      await attestations.record(
        input({ files: [{ name: 'max.bin', mediaType: 'application/octet-stream', content: limit }] }),
        'cli',
      );
      expect(await rows()).toBe(1);
      expect(await refusal(attestations.file('0'.repeat(64)))).toMatchObject({ code: 'not_found' });
      expect(await refusal(attestations.file('../etc'))).toMatchObject({ code: 'not_found' });
    });
  });
}
