import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry, EventBus, SecurityEvent } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { riskTestbed, type RiskTestbed } from '../test-support/risk.ts';
import { epssCsv, kevCatalog, kevEntries, kevEntry } from './feeds.fixtures.ts';
import { createFeeds, type Feeds } from './feeds.service.ts';
import { FEED_MAX_BYTES } from './feeds.ts';
import { rankExposure, type DeviceExposure } from './vulnerability.match.ts';
import { createVulnerabilityService } from './vulnerability.service.ts';

const DAY = 86_400_000;
const OSV = fileURLToPath(new URL('./fixtures/osv', import.meta.url));

/**
 * The events of `atomically`, recorded once its transaction committed, apart from those emitted on their own
 * (a feed import must commit its event with its change, never after it).
 */
function recordingEvents(db: Db) {
  const committed: SecurityEvent[] = [];
  const alone: SecurityEvent[] = [];
  const events: Pick<EventBus, 'emit' | 'atomically'> = {
    emit: (e) => {
      alone.push(e);
      return Promise.resolve({} as AuditEntry);
    },
    async atomically(work) {
      const batch: SecurityEvent[] = [];
      const result = await db.transaction().execute((tx) => work(tx, (e) => void batch.push(e)));
      committed.push(...batch);
      return result;
    },
  };
  return { events, committed, alone };
}

/** `n` distinct CVE ids with scores, as EPSS lines. */
function epssLines(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const score = ((i % 1000) / 1000).toFixed(5);
    return `CVE-${2000 + (i % 25)}-${String(10_000 + i)},${score},${(i / n).toFixed(5)}`;
  });
}

describe.each(testDialects)('offline feeds (%s)', (dialect) => {
  let t: TestStore;
  let dir: string;
  let clock: number;
  let recorded: ReturnType<typeof recordingEvents>;
  let feeds: Feeds;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-feeds-'));
    clock = Date.parse('2026-01-01T00:00:00Z');
    recorded = recordingEvents(t.store.db);
    feeds = createFeeds({ db: t.store.db, events: recorded.events, now: () => clock });
  });
  afterEach(async () => t.cleanup());

  const write = (name: string, content: string | Buffer) => {
    const file = path.join(dir, name);
    writeFileSync(file, content);
    return file;
  };

  it('imports the KEV catalog from a file and answers lookups; its event commits with it', async () => {
    const file = write('known_exploited_vulnerabilities.json', JSON.stringify(kevCatalog()));
    expect(await feeds.importKev(file, 'test')).toEqual({ entries: 3, version: '2024.09.21' });
    const found = await feeds.knownExploited(['CVE-2021-44228', 'CVE-2019-10744', 'CVE-2000-0001']);
    expect(Object.fromEntries(found)).toEqual({
      'CVE-2021-44228': { dateAdded: '2021-12-10', dueDate: '2021-12-24', ransomware: true },
      'CVE-2019-10744': { dateAdded: '2024-02-29', dueDate: '2024-03-21', ransomware: false },
    });
    expect(await feeds.status()).toEqual({
      kev: { entries: 3, importedAt: clock },
      epss: { entries: 0, importedAt: null, scoreDate: null },
    });
    expect(recorded.committed).toEqual([
      {
        type: 'risk.feed_imported',
        actor: 'test',
        subject: 'feed:kev',
        data: { feed: 'kev', entries: 3, version: '2024.09.21', source: file },
      },
    ]);
    expect(recorded.alone).toEqual([]);
  });

  it('replaces the whole catalog; a refused one changes nothing and records no event', async () => {
    await feeds.importKevJson(kevCatalog(), 'test', 'api');
    clock += DAY;
    const next = kevCatalog([kevEntry('CVE-2024-3400')], { catalogVersion: '2024.09.22' });
    // Gzipped, whatever the name says.
    const file = write('kev.json', gzipSync(JSON.stringify(next)));
    expect(await feeds.importKev(file, 'test')).toEqual({ entries: 1, version: '2024.09.22' });
    expect([...(await feeds.knownExploited(['CVE-2021-44228', 'CVE-2024-3400'])).keys()]).toEqual([
      'CVE-2024-3400',
    ]);

    const bad = kevCatalog([...kevEntries(), kevEntry('CVE-2021-44228')]);
    await expect(feeds.importKevJson(bad, 'test', 'api')).rejects.toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/^vulnerabilities\.3\.cveID: CVE-2021-44228 is listed twice/) as unknown,
    });
    await expect(feeds.importKev(write('cut.json', '{"catalogVersion": '), 'test')).rejects.toThrow(
      /cut\.json: not JSON: /,
    );
    await expect(feeds.importKev(path.join(dir, 'missing.json'), 'test')).rejects.toThrow(
      /^cannot read .*missing\.json: ENOENT/,
    );
    await expect(feeds.importKev(dir, 'test')).rejects.toThrow(/: not a file$/);
    expect((await feeds.status()).kev).toEqual({ entries: 1, importedAt: clock });
    expect(recorded.committed.map((e) => e.data)).toEqual([
      { feed: 'kev', entries: 3, version: '2024.09.21', source: 'api' },
      { feed: 'kev', entries: 1, version: '2024.09.22', source: file },
    ]);
  });

  it('refuses a file over the size limit before reading it, naming the limit', async () => {
    const file = path.join(dir, 'huge.csv');
    writeFileSync(file, '');
    truncateSync(file, FEED_MAX_BYTES + 1); // sparse: nothing is written, the size is what counts
    await expect(feeds.importEpss(file, 'test')).rejects.toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(
        /huge\.csv: 268435457 bytes, larger than the limit of 256 MiB$/,
      ) as unknown,
    });
  });

  it('does not keep a change whose event could not be recorded', async () => {
    await feeds.importKevJson(kevCatalog(), 'test', 'api');
    const failing = createFeeds({
      db: t.store.db,
      now: () => clock,
      events: {
        // The outbox write fails after the work: the transaction, and the new catalog with it, rolls back.
        atomically: (work) =>
          t.store.db.transaction().execute(async (tx) => {
            await work(tx, () => undefined);
            throw new Error('outbox unavailable');
          }),
      },
    });
    await expect(
      failing.importKevJson(kevCatalog([kevEntry('CVE-2024-3400')]), 'test', 'api'),
    ).rejects.toThrow('outbox unavailable');
    expect((await feeds.status()).kev.entries).toBe(3);
    expect((await feeds.knownExploited(['CVE-2024-3400'])).size).toBe(0);
  });

  it('imports EPSS scores from the gzipped daily file and looks up long lists', async () => {
    const lines = epssLines(1234);
    const file = write('epss_scores-2024-03-01.csv.gz', gzipSync(epssCsv(lines, '')));
    expect(await feeds.importEpss(file, 'test')).toEqual({
      entries: 1234,
      version: null,
      scoreDate: '2024-03-01',
    });
    const cves = lines.map((l) => l.split(',')[0] ?? '');
    const scores = await feeds.epss([...cves, 'CVE-1999-0001', cves[0] ?? '']);
    expect(scores.size).toBe(1234);
    expect(scores.get('CVE-2001-10001')).toEqual({ score: 0.001, percentile: Number((1 / 1234).toFixed(5)) });
    expect((await feeds.status()).epss).toEqual({
      entries: 1234,
      importedAt: clock,
      scoreDate: '2024-03-01',
    });
    expect(recorded.committed.map((e) => [e.subject, e.data])).toEqual([
      ['feed:epss', { feed: 'epss', entries: 1234, version: null, source: file }],
    ]);
  });

  it('replaces the scores; a refused file leaves the previous ones and records no event', async () => {
    await feeds.importEpssText(epssCsv(['CVE-2021-44228,0.97565,0.99996']), 'test', 'api');
    const bad = write(
      'epss_scores-2024-03-02.csv',
      epssCsv(['CVE-2021-44228,0.5,0.9', 'CVE-2022-001,0.1,0.2']),
    );
    await expect(feeds.importEpss(bad, 'test')).rejects.toThrow(
      /^line 4: cve "CVE-2022-001" is not a CVE id/,
    );
    expect(Object.fromEntries(await feeds.epss(['CVE-2021-44228']))).toEqual({
      'CVE-2021-44228': { score: 0.97565, percentile: 0.99996 },
    });
    expect((await feeds.status()).epss).toMatchObject({ entries: 1, scoreDate: '2024-03-01' });
    expect(
      await feeds.importEpssText(
        epssCsv(['CVE-2022-0001,0.5,0.9'], '#model_version:v2025.03.14'),
        'test',
        'api',
      ),
    ).toEqual({ entries: 1, version: 'v2025.03.14', scoreDate: null });
    expect([...(await feeds.epss(['CVE-2021-44228', 'CVE-2022-0001'])).keys()]).toEqual(['CVE-2022-0001']);
    expect(recorded.committed).toHaveLength(2);
  });

  it(
    'imports a full-size EPSS file (250,000 CVEs) in one transaction, with progress',
    { timeout: 120_000 },
    async () => {
      const text = epssCsv(epssLines(250_000));
      const progress: number[] = [];
      const file = write('epss_scores-2024-03-01.csv', text);
      const result = await feeds.importEpss(file, 'test', { onProgress: (n) => progress.push(n) });
      expect(result).toEqual({ entries: 250_000, version: 'v2023.03.01', scoreDate: '2024-03-01' });
      expect(progress.at(-1)).toBe(250_000);
      expect(progress.length).toBeGreaterThan(100);
      expect((await feeds.status()).epss.entries).toBe(250_000);
      expect((await feeds.epss(['CVE-2024-259999'])).get('CVE-2024-259999')).toEqual({
        score: 0.999,
        percentile: 1,
      });
    },
  );

  describe('exposure', () => {
    let bed: RiskTestbed;

    beforeEach(async () => {
      bed = await riskTestbed(t, { deviceIds: ['dev-1', 'dev-2', 'dev-3'] });
    });

    async function runs(deviceId: string, version: string, purls: string[]) {
      const r = await bed.release(version, purls);
      await bed.runs(deviceId, r.targetPath, version);
    }

    it('ranks devices with a known-exploited advisory first, and shows EPSS per advisory and device', async () => {
      // dev-1: the critical advisory (GHSA-jf85…, CVE-2019-10744) only; dev-2: the high one (GHSA-35jh…,
      // CVE-2021-23337) only; dev-3: both.
      await runs('dev-1', '1.0.0', ['pkg:npm/lodash.defaultsdeep@4.6.0']);
      await runs('dev-2', '1.1.0', ['pkg:npm/lodash@4.17.15']);
      await runs('dev-3', '1.2.0', ['pkg:npm/lodash@4.17.11']);
      const vulnerabilities = createVulnerabilityService({
        db: t.store.db,
        events: recorded.events,
        now: () => clock,
        firmware: bed.firmware,
        feeds,
      });
      await vulnerabilities.importFrom(OSV, 'test');
      const ranked = async () =>
        (await vulnerabilities.exposure()).map((d) => [
          d.deviceId,
          d.knownExploited,
          d.worstSeverity,
          d.epss,
        ]);

      // No feeds yet: worst severity first, nothing known exploited, nothing scored.
      expect(await ranked()).toEqual([
        ['dev-1', false, 'critical', null],
        ['dev-3', false, 'critical', null],
        ['dev-2', false, 'high', null],
      ]);

      // CISA lists the high advisory's CVE (an alias of GHSA-35jh-r3h4-6jhm): its devices come first.
      await feeds.importKevJson(kevCatalog([kevEntry('CVE-2021-23337')]), 'test', 'api');
      await feeds.importEpssText(
        epssCsv(['CVE-2021-23337,0.01243,0.85', 'CVE-2019-10744,0.0321,0.9']),
        'test',
        'api',
      );
      const devices = await vulnerabilities.exposure();
      expect(devices.map((d) => [d.deviceId, d.knownExploited, d.worstSeverity, d.epss])).toEqual([
        ['dev-3', true, 'critical', 0.0321],
        ['dev-2', true, 'high', 0.01243],
        ['dev-1', false, 'critical', 0.0321],
      ]);
      // Each device's advisories in the same order: the known-exploited one first.
      expect(devices[0]?.advisories).toEqual([
        { id: 'GHSA-35jh-r3h4-6jhm', severity: 'high', score: 7.2, knownExploited: true, epss: 0.01243 },
        { id: 'GHSA-jf85-cpcp-j695', severity: 'critical', score: 9.1, knownExploited: false, epss: 0.0321 },
      ]);
    });
  });
});

describe('exposure order', () => {
  const device = (
    deviceId: string,
    d: Partial<Pick<DeviceExposure, 'knownExploited' | 'worstSeverity' | 'worstScore' | 'epss'>>,
  ): DeviceExposure => ({
    deviceId,
    group: null,
    release: null,
    worstSeverity: 'high',
    worstScore: 7.5,
    knownExploited: false,
    epss: null,
    advisories: [],
    ...d,
  });

  it('is known exploited, then worst severity and score, then EPSS (unscored last), then device id', () => {
    const ranked = rankExposure([
      device('a-unscored', {}),
      device('b-likely', { epss: 0.9 }),
      device('c-unlikely', { epss: 0.001 }),
      device('d-exploited-low', { knownExploited: true, worstSeverity: 'low', worstScore: 3.1 }),
      device('e-critical', { worstSeverity: 'critical', worstScore: 9.8, epss: 0 }),
      device('f-higher-score', { worstScore: 8.1 }),
      device('g-unscored', {}),
    ]);
    expect(ranked.map((d) => d.deviceId)).toEqual([
      'd-exploited-low',
      'e-critical',
      'f-higher-score',
      'b-likely',
      'c-unlikely',
      'a-unscored',
      'g-unscored',
    ]);
    expect(rankExposure([device('x', { knownExploited: true, worstSeverity: 'low' })], 'high')).toEqual([]);
  });
});
