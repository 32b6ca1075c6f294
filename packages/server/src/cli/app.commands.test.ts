import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { withPlatform } from './context.ts';
import { bulwarkInProcess as bulwark } from '../test-support/cli-in-process.ts';

/** `bulwark app …`: its --json output parses with the API contracts (and names nothing they lack). */
describe('bulwark app', { timeout: 60_000 }, () => {
  let data: string;
  const json = async (...args: string[]): Promise<unknown> => {
    const r = await bulwark(...args, '--json', '--data', data);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    data = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-apps-'));
    await withPlatform({ data }, () => Promise.resolve(), { create: true });
  });

  it('adds, lists and shows an app as the API answers', async () => {
    const added = api.apps.app
      .strict()
      .parse(
        await json(
          'app',
          'add',
          'dashboard',
          '--purpose',
          'analytics.reporting',
          '--grant',
          'subscribe devices/+/telemetry group:pumps',
        ),
      );
    expect(added).toMatchObject({ name: 'dashboard', grants: ['subscribe devices/+/telemetry group:pumps'] });
    const list = z.array(api.apps.app.strict()).parse(await json('app', 'list'));
    expect(list.map((a) => a.name)).toEqual(['dashboard']);
    expect(
      await json('app', 'grant', 'dashboard', 'publish', 'devices/+/commands/ping', 'zone:plant-a'),
    ).toEqual(['subscribe devices/+/telemetry group:pumps', 'publish devices/+/commands/ping zone:plant-a']);
  });

  it('prints a token once: {"token", "id", "expiresAt"} with --json, and lists tokens without secrets', async () => {
    const created = api.apps.createdToken
      .strict()
      .parse(await json('app', 'token', 'dashboard', '--ttl', '90d'));
    expect(created.token).toMatch(/^bwa_/);
    expect(created.expiresAt).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    const plain = await bulwark('app', 'token', 'dashboard', '--data', data);
    expect(plain.stdout).toMatch(/^bwa_[A-Za-z0-9_-]+\n$/);
    expect(plain.stderr).toContain('no expiry');
    const tokens = z.array(api.apps.appToken.strict()).parse(await json('app', 'tokens', 'dashboard'));
    expect(tokens).toHaveLength(2);
    expect(JSON.stringify(tokens)).not.toContain('bwa_');
    expect((await bulwark('app', 'token-revoke', 'dashboard', created.id, '--data', data)).code).toBe(0);
  });

  it('makes a key here and gets the CSR signed: key 0600, certificate for the app, CA chain', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'bulwark-app-cert-'));
    const r = await bulwark('app', 'cert', 'dashboard', '--out', out, '--data', data);
    expect(r.code).toBe(0);
    expect(statSync(path.join(out, 'dashboard.key')).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(path.join(out, 'dashboard.crt')));
    expect(cert.subject).toBe('CN=dashboard\nOU=bulwark-apps');
    expect(readFileSync(path.join(out, 'ca.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    const shown = api.apps.appDetail.strict().parse(await json('app', 'show', 'dashboard'));
    expect(shown.certificates).toHaveLength(1);
    expect(shown.tokens.map((t) => t.revokedAt !== null)).toEqual([true, false]);
    const text = await bulwark('app', 'show', 'dashboard', '--data', data);
    expect(text.stdout).toContain('grant 1: subscribe devices/+/telemetry group:pumps');
    expect(text.stdout).toContain('delivery: 0 messages');
  });

  it('updates, ungrants and revokes; errors are one line naming the problem', async () => {
    const bad = await bulwark('app', 'add', 'x', '--purpose', 'analytics.reportng', '--data', data);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^bulwark: purpose: unknown data use "analytics.reportng" \(did you mean analytics.reporting/,
    );
    const nopurpose = await bulwark(
      'app',
      'add',
      'y',
      '--grant',
      'subscribe devices/+/state',
      '--data',
      data,
    );
    expect(nopurpose.stderr).toContain('no declared purpose');
    api.apps.app.strict().parse(await json('app', 'update', 'dashboard', '--description', 'wall screens'));
    expect(await json('app', 'ungrant', 'dashboard', '1')).toEqual([
      'publish devices/+/commands/ping zone:plant-a',
    ]);
    const revoked = api.apps.app
      .strict()
      .parse(await json('app', 'revoke', 'dashboard', '--reason', 'replaced'));
    expect(revoked.status).toBe('revoked');
    const again = await bulwark('app', 'token', 'dashboard', '--data', data);
    expect(again.stderr).toBe('bulwark: app dashboard is revoked\n');
  });
});
