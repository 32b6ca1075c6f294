import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { withPlatform } from './context.ts';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';

/** Runs `bulwark … --json` in-process and parses what it printed. */
async function bulwarkJson(data: string, ...args: string[]): Promise<unknown> {
  const r = await bulwarkInProcess(...args, '--json', '--data', data);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** A contract's 200 answer as a strict schema: a field the contract does not name fails the check. */
function strictly(schema: z.ZodType): z.ZodType {
  return schema instanceof z.ZodObject ? schema.strict() : schema;
}

/**
 * The CLI prints the same data as the API for the same operation: its `--json` output parses with the
 * contract's response schema (issue 13: one contract per operation), and names no field the contract lacks.
 */
describe('bulwark --json output against the API contracts', { timeout: 60_000 }, () => {
  let data: string;

  beforeAll(async () => {
    data = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-contracts-'));
    await withPlatform(
      { data },
      async (p) => {
        await p.devices.add({ id: 'pump-1', group: 'pumps' }, 'test');
        await p.devices.add({ id: 'pump-2', group: null }, 'test');
        await p.firewall.add(
          { kind: 'address', value: '203.0.113.7', reason: 'scanner', ttlMs: 3_600_000 },
          'test',
        );
        await p.monitor.alerts.raise({
          detector: 'auth_failures',
          subject: 'device:pump-1',
          deviceId: 'pump-1',
          severity: 'high',
          title: 'repeated refused connects',
          evidence: { refused: 12 },
          at: Date.now(),
        });
        await p.firmware.releases.create(
          {
            name: 'pump-fw',
            version: '1.2.0',
            hardwareIds: ['pump-v1'],
            securityVersion: 3,
            endOfSupport: '2030-01-01',
            size: 1024,
            sha256: 'a'.repeat(64),
          },
          'test',
        );
      },
      { create: true },
    );
  });

  it('device list: each row is a device as GET /api/v1/devices lists it', async () => {
    const rows = z.array(strictly(api.devices.deviceView)).parse(await bulwarkJson(data, 'device', 'list'));
    expect(rows.length).toBe(2);
  });

  it('device show: as GET /api/v1/devices/:id answers', async () => {
    const shown = strictly(api.devices.show.response[200]).parse(
      await bulwarkJson(data, 'device', 'show', 'pump-1'),
    );
    expect(shown).toMatchObject({ id: 'pump-1', group: 'pumps' });
  });

  it('ban list: as GET /api/v1/bans answers', async () => {
    const bans = api.firewall.list.response[200].parse(await bulwarkJson(data, 'ban', 'list'));
    expect(bans).toMatchObject([{ kind: 'address', value: '203.0.113.7', active: true }]);
  });

  it('alerts list: each alert as GET /api/v1/alerts lists it (without the responses an operator may run)', async () => {
    const alerts = z
      .array(api.monitor.alert.omit({ responses: true }).strict())
      .parse(await bulwarkJson(data, 'alerts', 'list'));
    expect(alerts).toMatchObject([{ detector: 'auth_failures', severity: 'high', status: 'open' }]);
  });

  it('firmware list: each release as GET /api/v1/firmware/releases lists it', async () => {
    const releases = z
      .array(strictly(api.firmware.release))
      .parse(await bulwarkJson(data, 'firmware', 'list'));
    expect(releases).toMatchObject([{ name: 'pump-fw', version: '1.2.0', status: 'draft', signed: false }]);
  });
});
