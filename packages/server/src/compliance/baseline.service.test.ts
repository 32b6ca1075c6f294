import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError, DEFAULT_BASELINE_NAME } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { waitFor } from '../test-support/wait.ts';
import { acmeFrameworksDir } from './frameworks.fixture.ts';
import {
  defaultBaseline,
  diffBaselines,
  formatDuration,
  renderBaseline,
  sha256Hex,
  validateBaselineText,
} from './baseline.document.ts';
import { createBaselineService, frameworkClauses, type BaselineService } from './baseline.service.ts';

const box = createSecretBox(randomBytes(32));
const DAY = 86_400_000;

const ACME = `name: acme-fleet
description: the plant's baseline
accounts:
  secondFactor: all
  dormantAfter: 30d
zones:
  targets: { plant-floor: 3 }
certificates:
  acceptedKeyTypes: [ec-p256, ec-p384]
disclosure: { contact: 'mailto:security@acme.example' }
product: { supportPeriodEnd: 2031-12-31 }
`;

/** The same content as ACME, written differently (order, flow style, comments, a default spelled out). */
const ACME_REFORMATTED = `# reformatted
name: acme-fleet
certificates: { acceptedKeyTypes: [ec-p256, ec-p384] }
product:
  supportPeriodEnd: '2031-12-31'
disclosure:
  contact: mailto:security@acme.example
zones: { targets: { plant-floor: 3 }, defaultTarget: 1 }
accounts: { dormantAfter: 720h, secondFactor: all }
description: the plant's baseline
`;

describe('baseline documents', () => {
  it('renders the built-in baseline as YAML that validates back to the same baseline', () => {
    const text = renderBaseline(defaultBaseline());
    expect(text).toContain('dormantAfter: 90d');
    expect(text).toContain('maxIdle: 30m');
    expect(text).toMatch(/^# The organisation baseline/);
    const parsed = validateBaselineText(text);
    expect(parsed).toEqual({ ok: true, baseline: defaultBaseline() });
  });

  it('renders any baseline back to a document with the same content', () => {
    const acme = validateBaselineText(ACME);
    if (!acme.ok) throw new Error('ACME is valid');
    const again = validateBaselineText(renderBaseline(acme.baseline));
    expect(again).toEqual({ ok: true, baseline: acme.baseline });
  });

  it('writes durations in the largest unit that divides them', () => {
    expect(formatDuration(14 * DAY)).toBe('14d');
    expect(formatDuration(36 * 3_600_000)).toBe('36h');
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(1500)).toBe('1500ms');
    expect(formatDuration(0)).toBe('0s');
  });

  it('reports every error with its path and line', () => {
    const text = [
      'name: acme-fleet', // 1
      'accounts:', // 2
      '  dormantAfter: 3 days', // 3
      '  secondFactor: some', // 4
      '  colour: blue', // 5
      'zones:', // 6
      '  targets:', // 7
      '    plant-floor: 7', // 8
      'bogus: 2', // 9
    ].join('\n');
    const result = validateBaselineText(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => [e.line, e.path])).toEqual([
      [3, 'accounts.dormantAfter'],
      [4, 'accounts.secondFactor'],
      [5, 'accounts.colour'],
      [8, 'zones.targets.plant-floor'],
      [9, 'bogus'],
    ]);
    expect(result.errors[0]?.message).toMatch(/^"3 days" is not a duration/);
    expect(result.errors[1]?.message).toMatch(/privileged.*all/);
    expect(result.errors[2]?.message).toBe('unknown setting');
  });

  it('reports YAML syntax errors, duplicate keys, a missing name and an empty document', () => {
    const syntax = validateBaselineText('name: x\naccounts: [\n');
    expect(syntax).toMatchObject({ ok: false, errors: [{ path: '', line: 3 }] });
    const duplicate = validateBaselineText('name: x\nname: y\n');
    expect(duplicate).toMatchObject({ ok: false, errors: [{ message: /unique/, line: 2 }] });
    const nameless = validateBaselineText('sessions:\n  maxIdle: 10m\n');
    expect(nameless).toMatchObject({ ok: false, errors: [{ path: 'name', message: 'required', line: 1 }] });
    expect(validateBaselineText('')).toMatchObject({ ok: false, errors: [{ message: /empty/ }] });
    expect(validateBaselineText('- a list\n')).toMatchObject({ ok: false, errors: [{ path: '' }] });
  });

  it('refuses a document that expands aliases without bound', () => {
    const lines = ['name: x', 'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'];
    for (let i = 0; i < 8; i++)
      lines.push(`${'b'.repeat(i + 1)}: &${'b'.repeat(i + 1)} [${'*a, '.repeat(9)}*a]`);
    const result = validateBaselineText(lines.join('\n'));
    expect(result.ok).toBe(false);
  });

  it('diffs setting by setting, sorted by path, arrays as values', () => {
    const acme = validateBaselineText(ACME);
    if (!acme.ok) throw new Error('ACME is valid');
    expect(diffBaselines(defaultBaseline(), acme.baseline)).toEqual([
      { path: 'accounts.dormantAfter', before: 90 * DAY, after: 30 * DAY },
      { path: 'accounts.secondFactor', before: 'privileged', after: 'all' },
      {
        path: 'certificates.acceptedKeyTypes',
        before: ['ec-p256', 'ec-p384', 'ec-p521', 'ed25519', 'rsa-3072', 'rsa-4096'],
        after: ['ec-p256', 'ec-p384'],
      },
      { path: 'description', after: "the plant's baseline" },
      { path: 'disclosure.contact', after: 'mailto:security@acme.example' },
      { path: 'name', before: DEFAULT_BASELINE_NAME, after: 'acme-fleet' },
      { path: 'product.supportPeriodEnd', after: '2031-12-31' },
      { path: 'zones.targets.plant-floor', after: 3 },
    ]);
    expect(diffBaselines(acme.baseline, defaultBaseline()).map((c) => 'after' in c)).toContain(false);
  });
});

for (const dialect of testDialects) {
  describe(`the baseline service on ${dialect}`, () => {
    let t: TestStore;
    let clock: number;
    let audit: AuditLog;
    let bus: EventBus;
    let baseline: BaselineService;
    const closers: (() => Promise<void>)[] = [];

    const busOn = async (store: Store) => {
      const log = createAuditLog({
        db: store.db,
        mac: box,
        now: Date.now,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await log.ensureAnchor();
      const events = createEventBus({ log, db: store.db });
      closers.push(() => events.close());
      return { log, bus: events };
    };
    const appliedEvents = async () =>
      (await audit.readAfter(0, 1000)).filter((e) => e.type === 'compliance.baseline_applied');

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 1000 * DAY;
      ({ log: audit, bus } = await busOn(t.store));
      baseline = createBaselineService({ db: t.store.db, events: bus, now: () => clock });
    });
    afterEach(async () => {
      for (const close of closers.splice(0)) await close();
      await t.cleanup();
    });

    it('starts with the built-in baseline as version 0', async () => {
      const current = await baseline.current();
      expect(current).toMatchObject({
        version: 0,
        name: DEFAULT_BASELINE_NAME,
        appliedAt: null,
        appliedBy: null,
        baseline: defaultBaseline(),
      });
      expect(current.sha256).toBe(sha256Hex(current.document));
      expect(await baseline.history()).toEqual([]);
      // Applying the built-in document as it is shown changes nothing.
      expect(await baseline.apply(current.document, 'user:ada')).toEqual({
        version: 0,
        name: DEFAULT_BASELINE_NAME,
        changes: [],
      });
      expect(await baseline.history()).toEqual([]);
      expect(await appliedEvents()).toEqual([]);
    });

    it('applies versions, each with its event and diff committed; the same content again is a no-op', async () => {
      expect(await baseline.diff(ACME)).toContainEqual({
        path: 'accounts.dormantAfter',
        before: 90 * DAY,
        after: 30 * DAY,
      });
      const first = await baseline.apply(ACME, 'user:ada');
      expect(first.version).toBe(1);
      expect(first.name).toBe('acme-fleet');
      expect(first.changes.map((c) => c.path)).toContain('zones.targets.plant-floor');

      const current = await baseline.current();
      expect(current).toMatchObject({
        version: 1,
        name: 'acme-fleet',
        document: ACME,
        sha256: sha256Hex(ACME),
        appliedAt: clock,
        appliedBy: 'user:ada',
      });
      expect(current.baseline.accounts.dormantAfter).toBe(30 * DAY);

      const events = await appliedEvents();
      expect(events).toHaveLength(1);
      const event = events[0];
      if (event?.type !== 'compliance.baseline_applied') throw new Error('no event');
      expect(event).toMatchObject({ actor: 'user:ada', subject: 'baseline' });
      expect(event.data).toEqual({
        version: 1,
        name: 'acme-fleet',
        sha256: sha256Hex(ACME),
        changes: first.changes,
      });

      // The same content, written differently: nothing new.
      expect(await baseline.diff(ACME_REFORMATTED)).toEqual([]);
      expect(await baseline.apply(ACME_REFORMATTED, 'user:bob')).toEqual({
        version: 1,
        name: 'acme-fleet',
        changes: [],
      });
      expect(await appliedEvents()).toHaveLength(1);

      clock += DAY;
      const second = await baseline.apply(ACME.replace('dormantAfter: 30d', 'dormantAfter: 60d'), 'user:bob');
      expect(second).toEqual({
        version: 2,
        name: 'acme-fleet',
        changes: [{ path: 'accounts.dormantAfter', before: 30 * DAY, after: 60 * DAY }],
      });
      expect(await baseline.history()).toEqual([
        expect.objectContaining({ version: 2, appliedBy: 'user:bob', appliedAt: clock }),
        expect.objectContaining({ version: 1, appliedBy: 'user:ada', name: 'acme-fleet' }),
      ]);
      expect(await baseline.history({ limit: 1 })).toHaveLength(1);
      expect((await baseline.current()).version).toBe(2);
    });

    it('refuses an invalid document with every error and its line, storing nothing', async () => {
      const bad =
        'name: acme-fleet\nfirmware:\n  maxAge: 1 year\n  vulnerabilitySeverity: severe\nextra: 1\n';
      const refused = await baseline.apply(bad, 'user:ada').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(BulwarkError);
      if (!(refused instanceof BulwarkError)) return;
      expect(refused.code).toBe('validation_failed');
      expect(refused.message).toMatch(
        /3 errors: line 3: firmware\.maxAge: .*; line 4: firmware\.vulnerabilitySeverity: .*; line 5: extra: unknown setting/,
      );
      expect(refused.details?.errors).toHaveLength(3);
      await expect(baseline.diff(bad)).rejects.toMatchObject({ code: 'validation_failed' });
      await expect(baseline.apply('name: [', 'user:ada')).rejects.toMatchObject({
        code: 'validation_failed',
      });
      expect(await baseline.history()).toEqual([]);
      expect(await appliedEvents()).toEqual([]);
      expect((await baseline.current()).version).toBe(0);
    });

    it('refuses not-applicable clauses its frameworks do not have, by path and line (validate, diff, apply)', async () => {
      const withFrameworks = createBaselineService({
        db: t.store.db,
        events: bus,
        now: () => clock,
        clauseExists: frameworkClauses(undefined),
      });
      const doc = (clause: string) =>
        [
          'name: acme-fleet',
          'compliance:',
          '  notApplicable:',
          '    etsi-en-303-645:',
          `      ${clause}: "The devices take no user input at all"`,
          '    gdpr:',
          '      no-such-article: "Nothing personal is stored here"',
          '',
        ].join('\n');
      const typo = doc('5.1-l');
      expect(withFrameworks.validate(typo)).toEqual({
        ok: false,
        errors: [
          {
            path: 'compliance.notApplicable.etsi-en-303-645.5.1-l',
            message: 'etsi-en-303-645 has no clause "5.1-l"',
            line: 5,
          },
          {
            path: 'compliance.notApplicable.gdpr.no-such-article',
            message: 'gdpr has no clause "no-such-article"',
            line: 7,
          },
        ],
      });
      await expect(withFrameworks.diff(typo)).rejects.toMatchObject({
        code: 'validation_failed',
        message: /line 5: compliance\.notApplicable\.etsi-en-303-645\.5\.1-l: .*no clause/,
      });
      await expect(withFrameworks.apply(typo, 'user:ada')).rejects.toMatchObject({
        code: 'validation_failed',
      });
      expect(await withFrameworks.history()).toEqual([]);
      // Known clauses are taken; without the frameworks (schema alone) the typo is not seen.
      const known =
        'name: acme-fleet\ncompliance: { notApplicable: { etsi-en-303-645: { 5.1-1: "No passwords at all here" } } }\n';
      expect(withFrameworks.validate(known).ok).toBe(true);
      expect(baseline.validate(typo).ok).toBe(true);
      expect((await withFrameworks.apply(known, 'user:ada')).version).toBe(1);
    });

    it('takes not-applicable clauses of an added framework and refuses an unknown framework by path', () => {
      const dir = acmeFrameworksDir();
      try {
        const withAcme = createBaselineService({
          db: t.store.db,
          events: bus,
          now: () => clock,
          clauseExists: frameworkClauses(dir),
        });
        const doc = (standard: string) =>
          `name: acme-fleet\ncompliance:\n  notApplicable:\n    ${standard}:\n      ACME-3: "No staff on the devices"\n`;
        expect(withAcme.validate(doc('acme-internal')).ok).toBe(true);
        expect(withAcme.validate(doc('acme-external'))).toEqual({
          ok: false,
          errors: [
            {
              path: 'compliance.notApplicable.acme-external',
              message: expect.stringContaining('no framework "acme-external"') as unknown,
              line: 4,
            },
          ],
        });
        // Without the added file, acme-internal is an unknown framework too.
        expect(
          createBaselineService({
            db: t.store.db,
            events: bus,
            now: () => clock,
            clauseExists: frameworkClauses(undefined),
          }).validate(doc('acme-internal')).ok,
        ).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("follows another process's apply through the audit-log tail", async () => {
      expect((await baseline.current()).version).toBe(0);
      bus.startTail(20);
      const other = await t.openAnother();
      const { bus: otherBus } = await busOn(other);
      const cli = createBaselineService({ db: other.db, events: otherBus, now: () => clock });
      await cli.apply(ACME, 'cli');
      const seen = await waitFor('the applied baseline', async () => {
        const current = await baseline.current();
        return current.version === 1 && current;
      });
      expect(seen.name).toBe('acme-fleet');
    });
  });
}
