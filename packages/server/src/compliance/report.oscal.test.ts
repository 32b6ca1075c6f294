import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkIds } from './checks/types.ts';
import { loadFrameworks } from './frameworks.ts';
import type { ClauseResult, RunResult } from './model.ts';
import { buildStandardReport } from './report.ts';
import { controlToken, nameUuid, toOscal } from './report.oscal.ts';
import { fixtureRun, fixtureTrend, HOSTILE_ID } from './report.fixture.ts';

/**
 * NIST's schema as shipped, unchanged: draft-07 (ajv's default class), every format checked by ajv-formats
 * (`date-time`, `uri`, `uri-reference`, `email`), ajv's default `unicodeRegExp` (the token pattern uses
 * `\p{L}`), and full strict mode (the schema compiles without a warning).
 */
let validate: ValidateFunction;
beforeAll(() => {
  const schema = JSON.parse(
    readFileSync(new URL('./oscal/oscal_assessment-results_schema.json', import.meta.url), 'utf8'),
  ) as object;
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats.default(ajv);
  validate = ajv.compile(schema);
});

interface Doc {
  'assessment-results': {
    uuid: string;
    metadata: Record<string, unknown>;
    results: {
      'reviewed-controls': { 'control-selections': { 'include-controls'?: { 'control-id': string }[] }[] };
      observations: {
        uuid: string;
        title: string;
        subjects?: unknown[];
        'relevant-evidence'?: { description: string }[];
      }[];
      findings: {
        target: { 'target-id': string; status: { state: string }; props: { value: string }[] };
        'related-observations'?: { 'observation-uuid': string }[];
        'related-risks'?: unknown[];
      }[];
      risks?: { status: string; statement: string }[];
    }[];
  };
}

function document(): Doc {
  const run = fixtureRun();
  // JSON round trip: what the route serves.
  return JSON.parse(
    JSON.stringify(toOscal(buildStandardReport(run, 'etsi-en-303-645', fixtureTrend()), run)),
  ) as Doc;
}

function errorsOf(doc: unknown): string {
  return validate(doc) ? '' : JSON.stringify(validate.errors?.slice(0, 5), null, 1);
}

describe('toOscal', () => {
  it('validates against the OSCAL 1.0.6 assessment-results schema', () => {
    expect(errorsOf(document())).toBe('');
  });

  it('fails validation when a required field is missing (the schema is really applied)', () => {
    const noTitle = document();
    delete noTitle['assessment-results'].metadata.title;
    expect(validate(noTitle)).toBe(false);
    const noTarget = document() as unknown as {
      'assessment-results': { results: { findings: Record<string, unknown>[] }[] };
    };
    delete noTarget['assessment-results'].results[0]?.findings[0]?.target;
    expect(validate(noTarget)).toBe(false);
    const badToken = document();
    const selection =
      badToken['assessment-results'].results[0]?.['reviewed-controls']['control-selections'][0];
    selection?.['include-controls']?.push({ 'control-id': '5.1-1' });
    expect(validate(badToken)).toBe(false);
  });

  it('has one finding per clause with its original id, state and related observations', () => {
    const result = document()['assessment-results'].results[0];
    expect(result?.findings).toHaveLength(11);
    const byOriginal = new Map(result?.findings.map((f) => [f.target.props[0]?.value, f]));
    expect(byOriginal.get('5.1-2')?.target).toMatchObject({
      'target-id': '_5.1-2',
      status: { state: 'not-satisfied' },
    });
    expect(byOriginal.get('Art. 5(1)(e)')?.target['target-id']).toBe('art-5.1.e');
    expect(byOriginal.get('CR 1.1 RE(1)')?.target['target-id']).toBe('cr-1.1-re.1');
    expect(byOriginal.get('5.2-1')?.target.status.state).toBe('satisfied');
    expect(byOriginal.get('5.2-1')?.['related-risks']).toHaveLength(1);
    const observationIds = new Set(result?.observations.map((o) => o.uuid));
    for (const f of result?.findings ?? []) {
      for (const r of f['related-observations'] ?? [])
        expect(observationIds.has(r['observation-uuid'])).toBe(true);
    }
  });

  it('has one observation per check with its evidence objects, and a deviation-approved risk per waiver', () => {
    const result = document()['assessment-results'].results[0];
    const notSeen = result?.observations.find((o) => o.title.startsWith('devices.not-seen'));
    expect(notSeen?.subjects).toHaveLength(2);
    expect(notSeen?.['relevant-evidence']?.[0]?.description).toContain(HOSTILE_ID);
    expect(result?.observations.filter((o) => o.title.startsWith('Attestation'))).toHaveLength(2);
    const doc = document()['assessment-results'] as unknown as {
      'import-ap': { href: string };
      'back-matter': { resources: { uuid: string; rlinks?: { hashes: { value: string }[] }[] }[] };
    };
    const resources = doc['back-matter'].resources;
    expect(resources.map((r) => `#${r.uuid}`)).toContain(doc['import-ap'].href);
    expect(resources.find((r) => r.rlinks)?.rlinks?.[0]?.hashes[0]?.value).toBe('a'.repeat(64));
    expect(result?.risks).toEqual([
      expect.objectContaining({
        status: 'deviation-approved',
        statement: 'Break-glass account kept <on purpose>',
      }),
    ]);
  });

  it('validates for a standard with no clauses and a run without evidence', () => {
    const run = fixtureRun();
    const empty = {
      ...run,
      standards: [
        {
          id: 'gdpr' as const,
          title: 'GDPR',
          version: ' ',
          score: null,
          counts: { pass: 0, fail: 0, error: 0, manual: 0, not_applicable: 0, waived: 0 },
          clauses: [],
        },
      ],
    };
    expect(errorsOf(JSON.parse(JSON.stringify(toOscal(buildStandardReport(empty, 'gdpr', []), empty))))).toBe(
      '',
    );
  });

  it('validates for every shipped framework, each clause id a unique token', () => {
    const frameworks = loadFrameworks();
    const run: RunResult = {
      ...fixtureRun(),
      checks: checkIds.map((id) => ({
        id,
        title: id,
        severity: 'low',
        rationale: 'r',
        remediation: 'm',
        needs: null,
        status: 'pass',
        summary: 'ok',
        examined: 1,
        evidence: [],
        waiver: null,
        clauses: {},
      })),
      standards: frameworks.map((f) => {
        const clauses: ClauseResult[] = f.clauses.map((c) => ({
          id: c.id,
          title: c.title,
          group: c.group,
          level: c.level ?? null,
          mode: c.mode,
          status: c.mode === 'automated' ? 'pass' : c.mode,
          waived: false,
          checks: c.checks ?? [],
          note: c.note ?? null,
          guidance: c.guidance ?? null,
          justification: c.justification ? { text: c.justification, source: 'framework' } : null,
          attestation: null,
        }));
        const counts = { pass: 0, fail: 0, error: 0, manual: 0, not_applicable: 0, waived: 0 };
        for (const c of clauses) counts[c.status] += 1;
        return { id: f.id, title: f.title, version: f.version, score: 1, counts, clauses };
      }),
    };
    expect(run.standards).toHaveLength(6);
    for (const standard of run.standards) {
      const doc = JSON.parse(JSON.stringify(toOscal(buildStandardReport(run, standard.id, []), run))) as Doc;
      expect(errorsOf(doc), standard.id).toBe('');
      const targets = doc['assessment-results'].results[0]?.findings.map((f) => f.target['target-id']) ?? [];
      expect(new Set(targets).size, standard.id).toBe(standard.clauses.length);
      expect(
        targets.filter((t) => /-\d+$/.test(t) && !standard.clauses.some((c) => controlToken(c.id) === t)),
      ).toEqual([]);
    }
  });

  it('is deterministic: the same run renders the same UUIDs', () => {
    expect(document()['assessment-results'].uuid).toBe(document()['assessment-results'].uuid);
    expect(nameUuid('x')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(nameUuid('x')).not.toBe(nameUuid('y'));
  });

  it('turns clause ids into OSCAL tokens', () => {
    expect(controlToken('AC-2(1)')).toBe('ac-2.1');
    expect(controlToken('SR 5.1 RE(1)')).toBe('sr-5.1-re.1');
    expect(controlToken('Art. 32')).toBe('art-32');
    expect(controlToken('5.3-4B')).toBe('_5.3-4b');
    expect(controlToken('15.5')).toBe('_15.5');
    expect(controlToken('  ')).toBe('_');
    for (const id of ['ZCR 3.3', 'SL-T', 'FR1', 'Art. 5(1)(e)', '6-1', 'a/b c']) {
      expect(controlToken(id)).toMatch(/^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$/u);
    }
  });
});
