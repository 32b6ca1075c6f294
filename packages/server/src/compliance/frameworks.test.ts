import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError, standardIds, type StandardId } from '@bulwark/protocol';
import { checkIds, type CheckId } from './checks/types.ts';
import { clausesByCheck, loadFrameworks, securityLevelRequirements } from './frameworks.ts';
import type { Framework } from './model.ts';

/**
 * Clause counts computed from the shared standards catalogs when the framework files were generated (the
 * catalogs are not available in CI): ETSI EN 303 645 V3.1.3 has 78 provisions; IEC 62443-3-3 51 SRs and 49 REs;
 * IEC 62443-4-2 57 CRs and 38 REs; NIST SP 800-82r3 45 key controls; ISO/SAE 21434 7 TARA steps (15.3-15.9) and
 * their 17 requirement ids, plus clause 8's 8.3-8.6; GDPR 28 articles, Art. 5 split into its 7 parts.
 */
const expectedClauses: Record<StandardId, number> = {
  'etsi-en-303-645': 78,
  'iec-62443-4-2': 57 + 38,
  'iec-62443-3-3': 51 + 49,
  'nist-800-82': 45,
  'iso-21434': 7 + 17 + 4,
  gdpr: 28 - 1 + 7,
};

/** Checks that pass only once the operator supplies something the platform cannot. */
const operatorChecks: CheckId[] = [
  'org.support-period',
  'org.disclosure-contact',
  'audit.exported',
  'firmware.advisories-imported',
  'privacy.controller-named',
];

function byId(frameworks: Framework[], id: string): Framework {
  const framework = frameworks.find((f) => f.id === id);
  if (!framework) throw new Error(`no framework ${id}`);
  return framework;
}

function refusal(work: () => unknown): { code: string; message: string } {
  try {
    work();
  } catch (err) {
    if (err instanceof BulwarkError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('built-in frameworks', () => {
  const frameworks = loadFrameworks();

  it("loads the six standards in order, with the catalogs' clause counts", () => {
    expect(frameworks.map((f) => f.id)).toEqual([...standardIds]);
    for (const framework of frameworks) {
      expect(framework.clauses.length, framework.id).toBe(expectedClauses[framework.id as StandardId]);
      expect(framework.title).not.toBe('');
      expect(framework.version).not.toBe('');
    }
  });

  it('maps every check to at least one clause of ETSI EN 303 645 or IEC 62443-3-3', () => {
    const byCheck = clausesByCheck(frameworks);
    const unmapped = checkIds.filter((id) => {
      const clauses = byCheck.get(id) ?? {};
      return !clauses['etsi-en-303-645']?.length && !clauses['iec-62443-3-3']?.length;
    });
    // Physical access to sites is in neither (IEC 62443-2-1's and NIST's domain): it evidences NIST PE-3 only.
    // Risk assessment is ISO/SAE 21434 clause 15's and NIST RA-3's (IEC 62443-3-2, not 3-3).
    expect(unmapped).toEqual([
      'physical.site-access-reviewed',
      'risk.tara-recorded',
      'risk.treatment-current',
    ]);
    expect(byCheck.get('physical.site-access-reviewed')).toEqual({ 'nist-800-82': ['PE-3'] });
    expect(byCheck.get('risk.tara-recorded')).toEqual({
      'iso-21434': ['15.3', '15.4', '15.5', '15.6', '15.7', '15.8', '15.9'],
      'nist-800-82': ['RA-3'],
    });
    expect(byCheck.get('risk.treatment-current')).toEqual({ 'iso-21434': ['15.9'], 'nist-800-82': ['RA-3'] });
  });

  it('gives every clause the fields of its mode', () => {
    for (const framework of frameworks) {
      for (const clause of framework.clauses) {
        const where = `${framework.id} ${clause.id}`;
        if (clause.mode === 'automated') {
          expect(clause.checks?.length, where).toBeGreaterThan(0);
          expect(clause.note, where).toBeTruthy();
        }
        if (clause.mode === 'manual') expect(clause.guidance, where).toBeTruthy();
        if (clause.mode === 'not_applicable') expect(clause.justification, where).toBeTruthy();
      }
    }
  });

  it("keeps the standards' ids, groups and levels", () => {
    const etsi = byId(frameworks, 'etsi-en-303-645');
    expect(etsi.clauses[0]).toMatchObject({ id: '5.0-1', group: '5.0 Reporting implementation' });
    expect(etsi.clauses.find((c) => c.id === '5.1-1')?.mode).toBe('automated');
    const sr = byId(frameworks, 'iec-62443-3-3').clauses;
    expect(sr.find((c) => c.id === 'SR 1.1')).toMatchObject({
      level: 1,
      group: expect.stringMatching(/^FR1 /) as unknown,
    });
    expect(sr.find((c) => c.id === 'SR 1.1 RE(1)')?.level).toBe(2);
    expect(sr.find((c) => c.id === 'SR 1.1 RE(3)')?.level).toBe(4);
    expect(byId(frameworks, 'iec-62443-4-2').clauses.find((c) => c.id === 'CR 1.1 RE(2)')?.level).toBe(3);
    expect(byId(frameworks, 'nist-800-82').clauses.find((c) => c.id === 'AC-7')).toMatchObject({
      group: 'AC Access Control',
      checks: ['accounts.lockout'],
    });
    const gdpr = byId(frameworks, 'gdpr').clauses;
    expect(gdpr.find((c) => c.id === 'Art. 5(1)(e)')?.checks).toContain('privacy.retention-limits');
    expect(gdpr.find((c) => c.id === 'Art. 5')).toBeUndefined();
    expect(byId(frameworks, 'iso-21434').clauses.map((c) => c.id)).toContain('RQ-15-17');
  });

  it('automates the ETSI provisions a default install satisfies; only operator-supplied ones wait on the operator', () => {
    const etsi = byId(frameworks, 'etsi-en-303-645');
    const waiting = etsi.clauses
      .filter((c) => c.mode === 'automated' && c.checks?.some((check) => operatorChecks.includes(check)))
      .map((c) => c.id);
    expect(waiting).toEqual(['5.2-1', '5.2-3', '5.3-13', '6-1']);
    const automated = etsi.clauses.filter((c) => c.mode === 'automated').map((c) => c.id);
    for (const id of ['5.1-1', '5.1-5', '5.3-2', '5.4-3', '5.5-1', '5.5-8', '5.6-7', '5.11-2', '6-6']) {
      expect(automated).toContain(id);
    }
  });

  it('lists for each check the clauses it evidences, per standard', () => {
    const byCheck = clausesByCheck(frameworks);
    expect([...byCheck.keys()]).toEqual([...checkIds]);
    expect(byCheck.get('privacy.retention-limits')).toMatchObject({
      'etsi-en-303-645': ['6-6'],
      gdpr: expect.arrayContaining(['Art. 5(1)(e)', 'Art. 25']) as unknown,
    });
    expect(byCheck.get('org.disclosure-contact')).toEqual({ 'etsi-en-303-645': ['5.2-1'] });
  });
});

describe('security levels (IEC 62443-3-3)', () => {
  const levels = securityLevelRequirements(loadFrameworks());

  it('are cumulative, from level 1 to 4', () => {
    expect(levels.map((l) => l.level)).toEqual([1, 2, 3, 4]);
    for (let i = 1; i < levels.length; i++) {
      const lower = levels[i - 1]?.checks ?? [];
      expect(levels[i]?.checks).toEqual(expect.arrayContaining(lower));
      expect(levels[i]?.checks.length).toBeGreaterThanOrEqual(lower.length);
    }
  });

  it('level 1 needs only checks a default install passes; higher levels ask for more', () => {
    const [one, two, three] = levels;
    expect(one?.checks.filter((c) => operatorChecks.includes(c))).toEqual([]);
    expect(one?.checks).toEqual(expect.arrayContaining(['net.plaintext-listener', 'accounts.lockout']));
    expect(two?.checks).toEqual(expect.arrayContaining(['net.device-mutual-tls', 'monitor.group-profiles']));
    expect(one?.checks).not.toContain('monitor.group-profiles');
    expect(three?.checks).toContain('audit.exported');
  });

  it('never require zones.security-level, the check that reads them', () => {
    for (const level of levels) expect(level.checks).not.toContain('zones.security-level');
  });

  it('are empty without the IEC 62443-3-3 framework', () => {
    expect(securityLevelRequirements([])).toEqual([]);
  });
});

describe('override directory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-frameworks-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const gdpr = (clauses: unknown[]) => ({ id: 'gdpr', title: 'GDPR (ours)', version: 'x', clauses });
  const write = (name: string, content: unknown) =>
    writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  const automated = {
    id: 'Art. 32',
    title: 'Security',
    group: 'Art. 32',
    mode: 'automated',
    checks: ['net.tls-version'],
    note: 'TLS',
  };

  it('replaces the built-in file of the same standard and keeps the others', () => {
    write('gdpr.json', gdpr([automated]));
    write('README.md', 'not a framework');
    const frameworks = loadFrameworks({ dir });
    expect(byId(frameworks, 'gdpr')).toEqual(gdpr([automated]));
    expect(byId(frameworks, 'etsi-en-303-645').clauses).toHaveLength(78);
    expect(clausesByCheck(frameworks).get('net.tls-version')?.gdpr).toEqual(['Art. 32']);
  });

  it('can remap the built-in clauses (a copy with one clause changed)', () => {
    const builtIn: unknown = JSON.parse(
      readFileSync(new URL('./frameworks/iec-62443-3-3.json', import.meta.url), 'utf8'),
    );
    const copy = builtIn as Framework;
    const sr210 = copy.clauses.find((c) => c.id === 'SR 2.10');
    if (!sr210) throw new Error('SR 2.10 missing');
    expect(securityLevelRequirements([copy])[0]?.checks).toContain('audit.export-healthy');
    Object.assign(sr210, {
      mode: 'manual',
      guidance: 'show the alerting on audit failures',
      checks: undefined,
      note: undefined,
    });
    write('iec-62443-3-3.json', copy);
    const frameworks = loadFrameworks({ dir });
    expect(byId(frameworks, 'iec-62443-3-3').clauses.find((c) => c.id === 'SR 2.10')?.mode).toBe('manual');
    const levels = securityLevelRequirements(frameworks);
    expect(levels[0]?.checks).not.toContain('audit.export-healthy');
    expect(levels[2]?.checks).toContain('audit.export-healthy');
  });

  it('adds a framework whose id is not built in, after the six', () => {
    const acme = {
      id: 'acme-internal',
      title: 'ACME internal security policy',
      version: '2026.1',
      clauses: [
        { ...automated, id: 'ACME-1', group: 'Transport' },
        {
          id: 'ACME-2',
          title: 'Strong accounts',
          group: 'Accounts',
          mode: 'automated',
          checks: ['accounts.second-factor-policy'],
          note: 'MFA',
        },
        {
          id: 'ACME-3',
          title: 'Training',
          group: 'People',
          mode: 'manual',
          guidance: 'the training records',
        },
      ],
    };
    write('acme-internal.json', acme);
    const frameworks = loadFrameworks({ dir });
    expect(frameworks.map((f) => f.id)).toEqual([...standardIds, 'acme-internal']);
    expect(frameworks.at(-1)).toEqual(acme);
    expect(clausesByCheck(frameworks).get('net.tls-version')?.['acme-internal']).toEqual(['ACME-1']);
    expect(byId(frameworks, 'gdpr').clauses).toHaveLength(expectedClauses.gdpr);
  });

  const broken: [string, string, unknown, RegExp][] = [
    [
      'an unknown check',
      'gdpr.json',
      gdpr([{ ...automated, checks: ['net.tls-versoin'] }]),
      /clause "Art\. 32" names unknown check "net\.tls-versoin"/,
    ],
    [
      'a duplicate clause',
      'gdpr.json',
      gdpr([automated, automated]),
      /clause "Art\. 32" appears more than once/,
    ],
    [
      'a manual clause without guidance',
      'gdpr.json',
      gdpr([{ id: 'Art. 7', title: 'Consent', group: 'Art. 7', mode: 'manual' }]),
      /clause "Art\. 7" is manual but has no guidance/,
    ],
    [
      'a not applicable clause without justification',
      'gdpr.json',
      gdpr([{ id: 'Art. 83', title: 'Fines', group: 'Art. 83', mode: 'not_applicable' }]),
      /clause "Art\. 83" is not_applicable but has no justification/,
    ],
    [
      'an automated clause without checks',
      'gdpr.json',
      gdpr([{ ...automated, checks: [] }]),
      /clause "Art\. 32" is automated but names no checks/,
    ],
    [
      'checks on a manual clause',
      'gdpr.json',
      gdpr([{ ...automated, mode: 'manual', guidance: 'g' }]),
      /clause "Art\. 32" is manual: checks belong to automated clauses only/,
    ],
    ['a misspelt field', 'gdpr.json', gdpr([{ ...automated, notes: 'x' }]), /clause "Art\. 32": .*notes/],
    ['a bad mode', 'gdpr.json', gdpr([{ ...automated, mode: 'auto' }]), /clause "Art\. 32" field mode/],
    [
      'an id that does not match the file',
      'gdpr.json',
      { ...gdpr([automated]), id: 'nist-800-82' },
      /id "nist-800-82" does not match the file name \(expected "gdpr"\)/,
    ],
    [
      'a file name that is no framework id',
      'PCI_DSS.json',
      gdpr([automated]),
      /"PCI_DSS" is not a framework id/,
    ],
    [
      'an added framework whose id is not its file name',
      'pci-dss.json',
      gdpr([automated]),
      /id "gdpr" does not match the file name \(expected "pci-dss"\)/,
    ],
    [
      'an added framework with an unknown check',
      'acme-internal.json',
      { ...gdpr([{ ...automated, checks: ['net.nope'] }]), id: 'acme-internal' },
      /clause "Art\. 32" names unknown check "net\.nope"/,
    ],
    ['invalid JSON', 'gdpr.json', '{ "id": "gdpr", ', /not valid JSON/],
    [
      'a 62443-3-3 automated clause without a level',
      'iec-62443-3-3.json',
      { ...gdpr([automated]), id: 'iec-62443-3-3' },
      /clause "Art\. 32" is automated but has no security level/,
    ],
  ];
  for (const [what, name, content, message] of broken) {
    it(`refuses ${what}, naming the file and the clause`, () => {
      write(name, content);
      const error = refusal(() => loadFrameworks({ dir }));
      expect(error.code).toBe('config_invalid');
      expect(error.message).toContain(path.join(dir, name));
      expect(error.message).toMatch(message);
    });
  }

  it('refuses a directory that cannot be read', () => {
    const missing = path.join(dir, 'missing');
    const error = refusal(() => loadFrameworks({ dir: missing }));
    expect(error).toMatchObject({
      code: 'config_invalid',
      message: expect.stringContaining(missing) as unknown,
    });
  });

  it('ignores subdirectories and other files', () => {
    mkdirSync(path.join(dir, 'old'));
    write('notes.txt', 'x');
    expect(loadFrameworks({ dir }).map((f) => f.clauses.length)).toEqual(
      standardIds.map((id) => expectedClauses[id]),
    );
  });
});
