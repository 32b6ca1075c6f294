import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { api, DEFAULT_BASELINE_NAME } from '@bulwark/protocol';
import { withPlatform } from './context.ts';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';

const ACME = `name: acme-fleet
accounts:
  dormantAfter: 30d
zones: { targets: { plant-floor: 3 } }
`;

const BAD = `name: acme-fleet
accounts:
  dormantAfter: 3 days
  secondFactor: some
colour: blue
`;

describe('bulwark baseline', { timeout: 90_000 }, () => {
  let data: string;
  let dir: string;
  const bulwark = (...args: string[]) => bulwarkInProcess(...args, '--data', data);
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  /** `bulwark … --json`, exit code 0, its output parsed. */
  const json = async (...args: string[]): Promise<unknown> => {
    const r = await bulwark(...args, '--json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-baseline-'));
    data = path.join(dir, 'data');
    await withPlatform({ data }, () => Promise.resolve(), { create: true });
  });

  it('shows the built-in baseline as a file that validates and diffs as no change', async () => {
    const shown = await bulwark('baseline', 'show');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^# ${DEFAULT_BASELINE_NAME}, version 0 \\(built-in`));
    expect(shown.stdout).toContain('dormantAfter: 90d');
    const defaults = file('default.yaml', shown.stdout);

    const valid = await bulwark('baseline', 'validate', defaults);
    expect(valid).toMatchObject({
      code: 0,
      stdout: `${defaults}: valid baseline "${DEFAULT_BASELINE_NAME}"\n`,
    });
    expect(await json('baseline', 'diff', defaults)).toEqual({ changes: [] });
    const view = api.baseline.getBaseline.response[200].strict().parse(await json('baseline', 'show'));
    expect(view).toMatchObject({ version: 0, appliedAt: null });
  });

  it('validate lists every error as FILE:LINE: path: message and exits 1', async () => {
    const bad = file('bad.yaml', BAD);
    const r = await bulwark('baseline', 'validate', bad);
    expect(r.code).toBe(1);
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^${bad}:3: accounts\\.dormantAfter: .*not a duration`)),
      expect.stringMatching(new RegExp(`^${bad}:4: accounts\\.secondFactor: `)),
      `${bad}:5: colour: unknown setting`,
    ]);
    const asJson = await bulwark('baseline', 'validate', bad, '--json');
    expect(asJson.code).toBe(1);
    const parsed = api.baseline.validateBaseline.response[200].strict().parse(JSON.parse(asJson.stdout));
    expect(parsed.errors.map((e) => e.line)).toEqual([3, 4, 5]);
    const typo = file(
      'typo.yaml',
      'name: acme\ncompliance:\n  notApplicable:\n    etsi-en-303-645: { 5.1-l: "The devices take no user input" }\n',
    );
    const unknown = await bulwark('baseline', 'validate', typo);
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stdout).toBe(
      `${typo}:4: compliance.notApplicable.etsi-en-303-645.5.1-l: etsi-en-303-645 has no clause "5.1-l"\n`,
    );
    const missing = await bulwark('baseline', 'validate', path.join(dir, 'nope.yaml'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^bulwark: cannot read .*nope\.yaml/);
  });

  it('diffs, applies once, then finds nothing to change; history lists the version', async () => {
    const acme = file('acme.yaml', ACME);
    const diff = api.baseline.diffBaseline.response[200].strict().parse(await json('baseline', 'diff', acme));
    expect(diff.changes.map((c) => c.path)).toEqual([
      'accounts.dormantAfter',
      'name',
      'zones.targets.plant-floor',
    ]);
    const text = await bulwark('baseline', 'diff', acme);
    expect(text.stdout).toContain('  accounts.dormantAfter: 90d -> 30d\n');
    expect(text.stdout).toContain('  zones.targets.plant-floor: (absent) -> 3\n');

    const applied = await bulwark('baseline', 'apply', acme);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/^baseline "acme-fleet" applied as version 1\n/);
    expect(applied.stdout).toContain('  name: "bulwark-default" -> "acme-fleet"\n');
    // Then the checks run once against it: the score per standard, the failing checks.
    expect(applied.stdout).toMatch(/\ncompliance run \S+:\n {2}etsi-en-303-645 +\d+%\n/);
    const again = await bulwark('baseline', 'apply', acme);
    expect(again.stdout).toBe('baseline "acme-fleet" unchanged (version 1)\nno changes\n');

    const history = api.baseline.baselineHistory.response[200]
      .strict()
      .parse(await json('baseline', 'history'));
    expect(history.versions).toEqual([
      expect.objectContaining({ version: 1, name: 'acme-fleet', appliedBy: 'cli' }),
    ]);
    const table = await bulwark('baseline', 'history');
    expect(table.stdout).toMatch(/^VERSION\s+NAME\s+APPLIED\s+BY\s+SHA256\n1\s+acme-fleet\s/);
    const shown = await bulwark('baseline', 'show');
    expect(shown.stdout).toBe(
      `# acme-fleet, version 1 (applied ${new Date(history.versions[0]?.appliedAt ?? 0).toISOString()} by cli)\n${ACME}`,
    );
  });

  it('apply refuses an invalid document with one line naming each error, changing nothing', async () => {
    const bad = file('bad-apply.yaml', BAD);
    const r = await bulwark('baseline', 'apply', bad);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^bulwark: ${bad}: line 3: accounts\\.dormantAfter: .*; line 4: .*; line 5: colour: unknown setting`,
      ),
    );
    const history = api.baseline.baselineHistory.response[200].parse(await json('baseline', 'history'));
    expect(history.versions.map((v) => v.version)).toEqual([1]);
  });
});
