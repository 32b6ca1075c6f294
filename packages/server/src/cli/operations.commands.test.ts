import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import { withPlatform } from './context.ts';

const operation = api.operations.bulkOperation.strict();

/**
 * `bulwark devices bulk …` and `bulwark operations list|show|approve|reject` in process on a real data directory:
 * the local operator (`cli`) asks like anyone else, cannot approve its own request, and decides a user's; --json
 * is the API contract's answer; refusals are one line and exit code 1.
 */
describe('bulwark devices bulk and bulwark operations', { timeout: 120_000 }, () => {
  let data: string;
  let adas = '';

  const run = (...args: string[]) => bulwarkInProcess(...args, '--data', data);
  const json = async (...args: string[]) => {
    const r = await run(...args, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as unknown;
  };

  beforeAll(async () => {
    data = mkdtempSync(path.join(testTmpDir(), 'bulwark-cli-operations-'));
    adas = await withPlatform(
      { data },
      async (p) => {
        for (let i = 1; i <= 12; i++) await p.devices.add({ id: `line-${i}`, group: 'line' }, 'test');
        for (const id of ['spare-1', 'spare-2']) await p.devices.add({ id, group: 'spares' }, 'test');
        const op = await p.operations.request(
          { action: 'quarantine', group: 'line', reason: 'from the console' },
          { actor: 'user:ada', scope: { role: 'admin', groups: null } },
        );
        return op.id;
      },
      { create: true },
    );
  });

  it('runs a small selection at once and prints the contract’s answer', async () => {
    const op = operation.parse(await json('devices', 'bulk', 'quarantine', '--ids', 'spare-1, spare-2'));
    expect(op).toMatchObject({ status: 'executed', requestedBy: 'cli', count: 2, summary: { ok: 2 } });
    const again = await run('device', 'bulk', 'quarantine', '--ids', 'spare-1', '--reason', 'twice');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('quarantine of 1 device(s), executed');
    expect(again.stdout).toContain('spare-1: skipped (already quarantined)');
  });

  it('holds a large one; the operator cannot approve its own but decides a user’s', async () => {
    const held = await run('devices', 'bulk', 'release', '--group', 'line');
    expect(held.code).toBe(0);
    expect(held.stdout).toMatch(/release of 12 device\(s\), pending/);
    expect(held.stdout).toContain('waits for a second person (threshold 10)');

    const pending = api.operations.listBulk.response[200].parse(
      await json('operations', 'list', '--status', 'pending'),
    ).operations;
    expect(pending.map((o) => o.requestedBy).sort()).toEqual(['cli', 'user:ada']);
    const mine = pending.find((o) => o.requestedBy === 'cli')?.id ?? '';

    const refused = await run('operations', 'approve', mine);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `bulwark: you requested bulk operation ${mine}: a second person must approve it (dual control)\n`,
    );
    const approved = operation.parse(await json('operations', 'approve', adas, '--note', 'seen'));
    expect(approved).toMatchObject({
      status: 'executed',
      decidedBy: 'cli',
      decisionNote: 'seen',
      summary: { ok: 12 },
    });

    const withdrawn = operation.parse(await json('operations', 'reject', mine));
    expect(withdrawn.status).toBe('cancelled');
    const shown = await run('operations', 'show', adas);
    expect(shown.stdout).toContain('quarantine of 12 device(s), executed');
    expect(shown.stdout).toContain('decided by cli: seen');
    const listed = await run('operations', 'list');
    expect(listed.stdout).toMatch(/^ID\s+ACTION\s+DEVICES\s+STATUS/);
  });

  it('refuses bad input with one line naming the option, and changes nothing', async () => {
    const before = (await json('operations', 'list')) as { operations: unknown[] };
    const cases: [string[], string][] = [
      [['devices', 'bulk', 'quarantine'], 'bulwark: ids: give exactly one of ids, group or zone\n'],
      [['devices', 'bulk', 'quarantine', '--ids', ','], 'bulwark: --ids: give at least one device id\n'],
      [
        ['devices', 'bulk', 'quarantine', '--zone', 'nowhere'],
        'bulwark: zone: there is no zone named "nowhere"\n',
      ],
      [
        ['devices', 'bulk', 'release', '--ids', 'line-1', '--stolen'],
        'bulwark: stolen: only for action lost\n',
      ],
      [['operations', 'approve', 'nope'], 'bulwark: bulk operation nope does not exist\n'],
    ];
    for (const [args, stderr] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(stderr);
    }
    const unknown = await run('devices', 'bulk', 'explode', '--ids', 'line-1');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('explode');
    expect(((await json('operations', 'list')) as { operations: unknown[] }).operations).toHaveLength(
      before.operations.length,
    );
  });
});
