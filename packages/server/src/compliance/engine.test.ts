import { describe, expect, it } from 'vitest';
import type { Baseline } from '@bulwark/protocol';
import { checkCatalog } from './checks/index.ts';
import { FIXTURE_NOW, healthyBaseline, healthyFacts } from './checks/fixtures.ts';
import type { CheckDefinition, CheckOutcome, Evidence } from './checks/types.ts';
import { capEvidence, checkCounts, evaluate, EVIDENCE_CAP, type EvaluateInput } from './engine.ts';
import type { ComplianceFacts, ComplianceSources, FactSource } from './facts.ts';
import { loadFrameworks } from './frameworks.ts';
import type { AttestationView, Framework, WaiverView } from './model.ts';

const NOW = FIXTURE_NOW;
const DAY = 86_400_000;

/** Sources answering the healthy fleet's facts; `failing` ones reject. */
function sourcesOf(facts: ComplianceFacts, failing: Partial<Record<FactSource, string>> = {}) {
  const calls: FactSource[] = [];
  const source =
    <K extends FactSource>(key: K) =>
    () => {
      calls.push(key);
      const message = failing[key];
      return message === undefined ? Promise.resolve(facts[key]) : Promise.reject(new Error(message));
    };
  const sources: ComplianceSources = {
    pki: source('pki'),
    listeners: source('listeners'),
    devices: source('devices'),
    users: source('users'),
    audit: source('audit'),
    monitor: source('monitor'),
    access: source('access'),
    firewall: source('firewall'),
    firmware: source('firmware'),
    vulnerabilities: source('vulnerabilities'),
    privacy: source('privacy'),
    apps: source('apps'),
    attestation: source('attestation'),
    physical: source('physical'),
    risk: source('risk'),
  };
  return { sources, calls };
}

const pass = (summary = 'fine', examined = 1): CheckOutcome => ({
  status: 'pass',
  summary,
  examined,
  evidence: [],
});

function fixtureCheck(
  id: CheckDefinition['id'],
  reads: CheckDefinition['reads'],
  run: CheckDefinition['run'],
  extra: Partial<CheckDefinition> = {},
): CheckDefinition {
  return {
    id,
    title: `title of ${id}`,
    severity: 'high',
    rationale: 'why',
    remediation: 'how',
    reads,
    run,
    ...extra,
  };
}

/** Small checks: one passes, one fails per plaintext listener, one throws, one floods evidence, one phase 2. */
const checks: CheckDefinition[] = [
  fixtureCheck('pki.ca-expiry', ['pki'], ({ facts }) => pass('CA fine', facts.pki.ca.length)),
  fixtureCheck('net.plaintext-listener', ['listeners'], ({ facts }) => {
    const plain = facts.listeners.filter((l) => l.transport === 'tcp');
    return {
      status: plain.length > 0 ? 'fail' : 'pass',
      summary: `${plain.length} plaintext`,
      examined: facts.listeners.length,
      evidence: plain.map((l) => ({ kind: 'listener', id: l.name, detail: 'tcp' })),
    };
  }),
  fixtureCheck('devices.not-seen', ['devices'], () => {
    throw new Error('bad fact');
  }),
  fixtureCheck('accounts.dormant', ['users'], () => ({
    status: 'fail',
    summary: 'many',
    examined: 250,
    evidence: Array.from({ length: 250 }, (_, i): Evidence => ({
      kind: 'account',
      id: `u${i}`,
      detail: 'x',
    })),
  })),
  fixtureCheck(
    'zones.security-level',
    ['access'],
    ({ results }) => pass([...results].map(([id, r]) => `${id}=${r.status}`).join(',')),
    { phase: 2 },
  ),
];

const framework: Framework = {
  id: 'etsi-en-303-645',
  title: 'ETSI EN 303 645',
  version: 'test',
  clauses: [
    { id: 'A', title: 'a', group: 'g1', mode: 'automated', checks: ['pki.ca-expiry'] },
    {
      id: 'B',
      title: 'b',
      group: 'g1',
      mode: 'automated',
      checks: ['pki.ca-expiry', 'net.plaintext-listener'],
    },
    { id: 'M', title: 'm', group: 'g2', mode: 'manual', guidance: 'show the procedure' },
    { id: 'N', title: 'n', group: 'g2', mode: 'not_applicable', justification: 'no user interface here' },
    { id: 'E', title: 'e', group: 'g3', mode: 'automated', checks: ['devices.not-seen'] },
    { id: 'Z', title: 'z', group: 'g3', mode: 'automated', checks: ['zones.security-level'] },
  ],
};

function plaintextFacts(): ComplianceFacts {
  const facts = healthyFacts(NOW);
  facts.listeners.push({
    name: 'mqtt-dev',
    port: 1883,
    transport: 'tcp',
    authentication: 'none',
    minTlsVersion: null,
  });
  return facts;
}

function input(over: Partial<EvaluateInput> = {}): EvaluateInput {
  return {
    sources: sourcesOf(plaintextFacts()).sources,
    checks,
    frameworks: [framework],
    baseline: healthyBaseline(),
    now: NOW,
    waivers: [],
    attestations: [],
    ...over,
  };
}

const waiver = (over: Partial<WaiverView> = {}): WaiverView => ({
  id: 'w1',
  check: 'net.plaintext-listener',
  reason: 'lab listener until the migration',
  approver: 'olga',
  status: 'approved',
  approvedAt: NOW - DAY,
  expiresAt: NOW + DAY,
  createdAt: NOW - DAY,
  createdBy: 'user:alice',
  ...over,
});

const attestation = (over: Partial<AttestationView> = {}): AttestationView => ({
  id: 'a1',
  standard: 'etsi-en-303-645',
  clause: 'M',
  statement: 'we do',
  owner: 'security team',
  files: [],
  reviewAt: NOW + 30 * DAY,
  expiresAt: NOW + 300 * DAY,
  createdAt: NOW - DAY,
  createdBy: 'user:alice',
  ...over,
});

const clause = (r: Awaited<ReturnType<typeof evaluate>>, id: string) =>
  r.standards[0]?.clauses.find((c) => c.id === id);
const check = (r: Awaited<ReturnType<typeof evaluate>>, id: string) => r.checks.find((c) => c.id === id);

describe('the compliance engine', () => {
  it('judges checks, clauses, counts, score and order', async () => {
    const r = await evaluate(input());
    expect(r.checks.map((c) => [c.id, c.status])).toEqual([
      ['pki.ca-expiry', 'pass'],
      ['net.plaintext-listener', 'fail'],
      ['devices.not-seen', 'error'],
      ['accounts.dormant', 'fail'],
      ['zones.security-level', 'pass'],
    ]);
    expect(check(r, 'net.plaintext-listener')).toMatchObject({
      title: 'title of net.plaintext-listener',
      severity: 'high',
      needs: null,
      waiver: null,
      evidence: [{ kind: 'listener', id: 'mqtt-dev', detail: 'tcp' }],
      clauses: { 'etsi-en-303-645': ['B'] },
    });
    expect(check(r, 'pki.ca-expiry')?.clauses).toEqual({ 'etsi-en-303-645': ['A', 'B'] });
    const standard = r.standards[0];
    // Failing (fail, error) first, then manual, pass, not applicable; the framework's order within each.
    expect(standard?.clauses.map((c) => [c.id, c.status])).toEqual([
      ['B', 'fail'],
      ['E', 'error'],
      ['M', 'manual'],
      ['A', 'pass'],
      ['Z', 'pass'],
      ['N', 'not_applicable'],
    ]);
    expect(standard?.counts).toEqual({ pass: 2, fail: 1, error: 1, manual: 1, not_applicable: 1, waived: 0 });
    expect(standard?.score).toBeCloseTo(2 / 5);
    expect(clause(r, 'N')?.justification).toEqual({ text: 'no user interface here', source: 'framework' });
    expect(clause(r, 'M')).toMatchObject({ guidance: 'show the procedure', attestation: null, level: null });
    expect(checkCounts(r.checks)).toEqual({ pass: 2, fail: 2, error: 1, waived: 0 });
  });

  it('makes the checks reading a source that failed `error`, and reads each source once', async () => {
    const { sources, calls } = sourcesOf(plaintextFacts(), { listeners: 'broker config unreadable' });
    const r = await evaluate(input({ sources }));
    expect(check(r, 'net.plaintext-listener')).toMatchObject({
      status: 'error',
      summary: 'could not read listeners: broker config unreadable',
      examined: 0,
      evidence: [],
    });
    expect(check(r, 'pki.ca-expiry')?.status).toBe('pass');
    expect(clause(r, 'B')?.status).toBe('error');
    expect([...calls].sort()).toEqual(['access', 'devices', 'listeners', 'pki', 'users']);
  });

  it('a source that does not answer in time fails its checks, and the run ends', async () => {
    const { sources } = sourcesOf(plaintextFacts());
    const hanging: ComplianceSources = { ...sources, users: () => new Promise(() => undefined) };
    const r = await evaluate(input({ sources: hanging, sourceTimeoutMs: 20 }));
    expect(check(r, 'accounts.dormant')).toMatchObject({
      status: 'error',
      summary: 'could not read users: no answer within 0 s',
    });
    expect(check(r, 'pki.ca-expiry')?.status).toBe('pass');
  });

  it("hands each source the run's baseline (the devices' conflict window)", async () => {
    const { sources } = sourcesOf(plaintextFacts());
    const seen: number[] = [];
    const withContext: ComplianceSources = {
      ...sources,
      users: (context) => {
        seen.push(context.baseline.devices.conflictWindow);
        return sources.users(context);
      },
    };
    const baseline = healthyBaseline();
    baseline.devices.conflictWindow = 3_600_000;
    await evaluate(input({ sources: withContext, baseline }));
    expect(seen).toEqual([3_600_000]);
  });

  it('turns a check that throws into `error` with its message, and the run goes on', async () => {
    const r = await evaluate(input());
    expect(check(r, 'devices.not-seen')).toMatchObject({
      status: 'error',
      summary: 'the check could not run: bad fact',
    });
    expect(clause(r, 'E')?.status).toBe('error');
  });

  it('caps evidence at 200 entries plus one saying how many more', async () => {
    const r = await evaluate(input());
    const evidence = check(r, 'accounts.dormant')?.evidence ?? [];
    expect(evidence).toHaveLength(EVIDENCE_CAP + 1);
    expect(evidence[EVIDENCE_CAP - 1]?.id).toBe('u199');
    expect(evidence[EVIDENCE_CAP]).toEqual({ kind: 'account', id: '…', detail: '…and 50 more' });
    expect(capEvidence([{ kind: 'device', id: 'd', detail: 'x' }])).toHaveLength(1);
  });

  it('runs phase 2 after phase 1, with phase 1 outcomes', async () => {
    const r = await evaluate(input());
    expect(check(r, 'zones.security-level')?.summary).toBe(
      'pki.ca-expiry=pass,net.plaintext-listener=fail,devices.not-seen=error,accounts.dormant=fail',
    );
  });

  it('a waiver in force marks the failing check and lets its clause pass (waived); an expired one does not', async () => {
    const r = await evaluate(input({ waivers: [waiver()] }));
    expect(check(r, 'net.plaintext-listener')?.waiver).toEqual(waiver());
    expect(clause(r, 'B')).toMatchObject({ status: 'pass', waived: true });
    expect(r.standards[0]?.counts).toMatchObject({ pass: 3, fail: 0, waived: 1 });
    expect(r.standards[0]?.score).toBeCloseTo(3 / 5);
    expect(checkCounts(r.checks)).toEqual({ pass: 2, fail: 1, error: 1, waived: 1 });
    // A waiver of a passing check is not shown; an expired one is not in force.
    const expired = await evaluate(input({ waivers: [waiver({ expiresAt: NOW - 1 })] }));
    expect(check(expired, 'net.plaintext-listener')?.waiver).toBeNull();
    expect(clause(expired, 'B')?.status).toBe('fail');
    const onPassing = await evaluate(input({ waivers: [waiver({ check: 'pki.ca-expiry' })] }));
    expect(check(onPassing, 'pki.ca-expiry')?.waiver).toBeNull();
  });

  it('the baseline marks more clauses not applicable, with its justification', async () => {
    const baseline: Baseline = healthyBaseline();
    baseline.compliance.notApplicable = { 'etsi-en-303-645': { B: 'the lab listener is out of scope' } };
    const r = await evaluate(input({ baseline }));
    expect(clause(r, 'B')).toMatchObject({
      status: 'not_applicable',
      justification: { text: 'the lab listener is out of scope', source: 'baseline' },
    });
    expect(r.standards[0]?.counts.not_applicable).toBe(2);
    expect(r.standards[0]?.score).toBeCloseTo(2 / 4);
  });

  it.each([
    ['no attestation', [], 'manual', null],
    ['one in force', [attestation()], 'pass', false],
    ['one expired', [attestation({ expiresAt: NOW - 1 })], 'fail', true],
    ['one older than attestationMaxAge', [attestation({ createdAt: NOW - 366 * DAY })], 'fail', true],
    ['one revoked', [{ ...attestation(), revokedAt: NOW - 1 }], 'manual', null],
    ['one of another clause', [attestation({ clause: 'A' })], 'manual', null],
    [
      'an expired and one in force',
      [attestation({ id: 'old', expiresAt: NOW - 1, createdAt: NOW - 2 * DAY }), attestation({ id: 'new' })],
      'pass',
      false,
    ],
  ] as const)('a manual clause with %s', async (_name, attestations, status, expired) => {
    const r = await evaluate(input({ attestations }));
    const m = clause(r, 'M');
    expect(m?.status).toBe(status);
    if (expired === null) expect(m?.attestation).toBeNull();
    else {
      expect(m?.attestation).toMatchObject({ expired, owner: 'security team' });
      expect(m?.attestation).not.toHaveProperty('revokedAt');
    }
  });

  it('makes the checks reading an optional source left unbound `error` (attestation, physical, risk)', async () => {
    const { attestation: _attestation, ...sources } = sourcesOf(healthyFacts(NOW)).sources;
    const r = await evaluate({
      sources,
      checks: checkCatalog,
      frameworks: [],
      baseline: healthyBaseline(),
      now: NOW,
      waivers: [],
      attestations: [],
    });
    const erring = r.checks.filter((c) => c.status === 'error');
    expect(erring.map((c) => c.id)).toEqual([
      'attestation.no-contraindicated',
      'attestation.keys-bound',
      'physical.reports-verified',
    ]);
    expect(erring[0]?.summary).toBe('could not read attestation: no attestation source is bound');
    expect(check(r, 'physical.site-access-reviewed')?.status).toBe('pass');
  });

  it('a standard with no applicable clause has score null', async () => {
    const onlyNa: Framework = { ...framework, clauses: framework.clauses.filter((c) => c.id === 'N') };
    const r = await evaluate(input({ frameworks: [onlyNa] }));
    expect(r.standards[0]?.score).toBeNull();
  });

  it('on the healthy fleet with the real catalog and frameworks, no check errs or fails', async () => {
    const r = await evaluate({
      sources: sourcesOf(healthyFacts(NOW)).sources,
      checks: checkCatalog,
      frameworks: loadFrameworks(),
      baseline: healthyBaseline(),
      now: NOW,
      waivers: [],
      attestations: [],
    });
    expect(r.checks).toHaveLength(checkCatalog.length);
    expect(r.checks.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.summary}`)).toEqual([]);
    expect(r.standards).toHaveLength(6);
    for (const s of r.standards) {
      expect(s.counts.fail + s.counts.error).toBe(0);
      expect(s.clauses.filter((c) => c.status === 'pass').length).toBe(s.counts.pass);
    }
  });
});
