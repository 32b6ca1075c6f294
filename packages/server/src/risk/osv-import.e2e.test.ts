import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, workDir } from '../test-support/clients.ts';
import { apiToken, startTestServer, type TestServer } from '../test-support/server.ts';

const fixtures = path.join(import.meta.dirname, 'fixtures');
const record = (dir: string, file: string) =>
  JSON.parse(readFileSync(path.join(fixtures, dir, file), 'utf8')) as unknown;

/** OSV imports through the real API (curl) and CLI: an invalid record refuses the batch, naming its path. */
describe('OSV advisory import, all or nothing', { timeout: 120_000 }, () => {
  let s: TestServer;
  let token: string;

  beforeAll(async () => {
    s = await startTestServer();
    token = await apiToken(s, 'osv-admin');
  });
  afterAll(async () => s?.stop());

  async function post(body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const { stdout } = await exec('curl', [
      ...['-sS', '-X', 'POST', '--cacert', s.caFile, '-w', '\n%{http_code}'],
      ...['-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/json'],
      ...['--data-binary', JSON.stringify(body), `${s.httpsUrl}/api/v1/firmware/advisories`],
    ]);
    const cut = stdout.lastIndexOf('\n');
    return {
      status: Number(stdout.slice(cut + 1)),
      body: JSON.parse(stdout.slice(0, cut)) as Record<string, unknown>,
    };
  }

  it('refuses an API batch with one invalid record (problem+json naming the path) and imports none of it', async () => {
    const good = record('osv-valid', 'BWK-2026-0001.json');
    const answer = await post({
      vulns: [
        good,
        record('osv', 'GHSA-jf85-cpcp-j695.json'),
        record('osv-invalid', 'range-type-unknown.json'),
      ],
    });
    expect(answer).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
    expect(String(answer.body.detail)).toMatch(
      /\/vulns\/2\/affected\/0\/ranges\/0\/type: must be one of "GIT", "SEMVER", "ECOSYSTEM"/,
    );
    expect(await s.platform.risk.vulnerabilities.advisories()).toEqual([]);
    // The valid records alone are imported.
    expect(await post([good, record('osv', 'GHSA-jf85-cpcp-j695.json')])).toMatchObject({
      status: 200,
      body: { imported: 2, unchanged: 0 },
    });
  });

  it('refuses a CLI import of a directory holding one invalid file, naming file and path, importing nothing', async () => {
    const dir = workDir();
    const feed = path.join(dir, 'feed');
    mkdirSync(feed);
    cpSync(path.join(fixtures, 'osv-valid'), feed, { recursive: true });
    cpSync(path.join(fixtures, 'osv-invalid', 'event-with-two-keys.json'), path.join(feed, 'zz-bad.json'));
    const before = (await s.platform.risk.vulnerabilities.advisories()).map((a) => a.id);
    const refused = await s.cli(['firmware', 'advisories', 'import', feed]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^bulwark: .*zz-bad\.json: not an OSV advisory BWK-2026-0001: \/affected\/0\/ranges\/0\/events\/0: an event has exactly one of introduced, fixed, last_affected, limit\n$/,
    );
    expect((await s.platform.risk.vulnerabilities.advisories()).map((a) => a.id)).toEqual(before);
  });
});
