import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAdvisories, parseAdvisory } from './osv.ts';

/**
 * OSV records checked against osv.schema.json (written for Bulwark from the OSV specification): the two real
 * GitHub advisories and our own valid records pass; our invalid records (fixtures/osv-invalid, one defect
 * each) are refused naming the JSON Pointer that failed.
 */
const fixtures = path.join(import.meta.dirname, 'fixtures');
const read = (dir: string, file: string) =>
  JSON.parse(readFileSync(path.join(fixtures, dir, file), 'utf8')) as unknown;

const invalid: Record<string, RegExp> = {
  'affected-not-array': /^\/affected: must be array/,
  'affected-without-package-or-git': /^\/affected\/0: an affected entry names a package/,
  'aliases-not-array': /^\/aliases: must be array/,
  'credit-type-unknown': /^\/credits\/0\/type: must be one of "FINDER"/,
  'ecosystem-not-a-string': /^\/affected\/0\/package\/ecosystem: must be an ecosystem name/,
  'ecosystem-unknown':
    /^\/affected\/0\/package\/ecosystem: must be an ecosystem the OSV specification defines/,
  'ecosystem-wrong-case':
    /^\/affected\/0\/package\/ecosystem: must be an ecosystem the OSV specification defines/,
  'event-unknown-key': /^\/affected\/0\/ranges\/0\/events\/2\/patched: is not a field/,
  'event-with-two-keys': /^\/affected\/0\/ranges\/0\/events\/0: an event has exactly one of/,
  'events-without-introduced': /^\/affected\/0\/ranges\/0\/events: a range needs at least one "introduced"/,
  'fixed-and-last-affected':
    /^\/affected\/0\/ranges\/0\/events\/1: a range has fixed or last_affected events, not both/,
  'git-range-without-repo': /^\/affected\/0\/ranges\/0\/repo: is required/,
  'id-missing': /^\/id: is required/,
  'id-with-spaces': /^\/id: must be an OSV id/,
  'modified-impossible-date': /^\/modified: must be an RFC 3339 time in UTC/,
  'modified-missing': /^\/modified: is required/,
  'modified-not-a-time': /^\/modified: must be an RFC 3339 time in UTC/,
  'modified-not-utc': /^\/modified: must be an RFC 3339 time in UTC/,
  'package-name-missing': /^\/affected\/0\/package\/name: is required/,
  'published-date-only': /^\/published: must be an RFC 3339 time in UTC/,
  'purl-not-a-purl': /^\/affected\/0\/package\/purl: must match pattern/,
  'range-events-empty': /^\/affected\/0\/ranges\/0\/events: must NOT have fewer than 1 items/,
  'range-events-missing': /^\/affected\/0\/ranges\/0\/events: is required/,
  'range-type-unknown': /^\/affected\/0\/ranges\/0\/type: must be one of "GIT", "SEMVER", "ECOSYSTEM"/,
  'record-not-object': /^\/0: must be object/,
  'reference-type-unknown': /^\/references\/0\/type: must be one of "ADVISORY"/,
  'reference-url-not-uri': /^\/references\/0\/url: must match format "uri"/,
  'semver-with-v-prefix':
    /^\/affected\/0\/ranges\/0\/events\/1\/fixed: a SEMVER range uses Semantic Versioning/,
  'severity-at-both-levels': /^\/affected\/0: severity is set at the top level/,
  'severity-score-missing': /^\/severity\/0\/score: is required/,
  'severity-score-not-a-vector': /^\/severity\/0\/score: must be a CVSS v3.x vector/,
  'severity-type-unknown': /^\/severity\/0\/type: must be one of "CVSS_V2", "CVSS_V3", "CVSS_V4", "Ubuntu"/,
  'ubuntu-priority-unknown': /^\/severity\/0\/score: must be one of "negligible"/,
  'unknown-top-level-field': /^\/cvss: is not a field of the OSV schema/,
  'versions-not-strings': /^\/affected\/0\/versions\/0: must be string/,
  'withdrawn-number': /^\/withdrawn: must be string/,
};

describe('OSV records against the OSV JSON Schema', () => {
  it('has an expected refusal for every invalid record', () => {
    const files = readdirSync(path.join(fixtures, 'osv-invalid')).map((f) => f.replace(/\.json$/, ''));
    expect(files.sort()).toEqual(Object.keys(invalid).sort());
  });

  it.each(Object.entries(invalid))('refuses osv-invalid/%s.json naming the failing path', (name, reason) => {
    let refusal: unknown;
    try {
      parseAdvisories(read('osv-invalid', `${name}.json`));
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toMatchObject({ code: 'validation_failed' });
    expect((refusal as Error).message.replace(/^not an OSV advisory[^:]*: /, '')).toMatch(reason);
  });

  it.each([
    ['osv', 'GHSA-jf85-cpcp-j695.json', 'critical', 9.1],
    ['osv', 'GHSA-35jh-r3h4-6jhm.json', 'high', 7.2],
    ['osv-valid', 'BWK-2026-0001.json', 'critical', 9.8],
    ['osv-valid', 'BWK-2026-0002.json', 'critical', null], // per-package CVSS only: the database's rating
    ['osv-valid', 'BWK-2026-0003.json', 'critical', 9.8],
    ['osv-valid', 'OSV-2026-17.json', 'high', 7.5],
  ])('accepts %s/%s', (dir, file, severity, score) => {
    expect(parseAdvisories(read(dir, file))).toMatchObject([{ severity, score }]);
  });

  it('names the record within a batch, and the advisory id', () => {
    const good = read('osv-valid', 'BWK-2026-0001.json');
    const bad = read('osv-invalid', 'event-with-two-keys.json');
    expect(() => parseAdvisories({ vulns: [good, good, bad] })).toThrow(
      /^not an OSV advisory BWK-2026-0001: \/vulns\/2\/affected\/0\/ranges\/0\/events\/0: an event has exactly one/,
    );
    expect(() => parseAdvisories([bad])).toThrow(/: \/0\/affected\/0\/ranges/);
    expect(parseAdvisory(good).withdrawn).toBeNull();
    expect(parseAdvisory(read('osv-valid', 'BWK-2026-0003.json')).withdrawn).toBe(
      Date.parse('2026-02-02T00:00:00.5Z'),
    );
  });
});
