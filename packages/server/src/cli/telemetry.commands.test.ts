import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { withPlatform } from './context.ts';
import { parseTimeOption } from './telemetry.commands.ts';
import { bulwarkInProcess as bulwark } from '../test-support/cli-in-process.ts';

describe('bulwark telemetry', { timeout: 60_000 }, () => {
  let data: string;

  beforeAll(async () => {
    data = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-telemetry-'));
    await withPlatform({ data }, (p) => p.devices.add({ id: 'pump-1', group: 'pumps' }, 'test'), {
      create: true,
    });
  });

  it('parses times as ISO, epoch ms or a duration before now', () => {
    expect(parseTimeOption('-1h', '--from', 10_000_000)).toBe(10_000_000 - 3_600_000);
    expect(parseTimeOption('1700000000000', '--from')).toBe(1_700_000_000_000);
    expect(parseTimeOption('2026-01-01T00:00:00Z', '--to')).toBe(Date.UTC(2026, 0, 1));
    expect(() => parseTimeOption('yesterday', '--from')).toThrow(/--from "yesterday" is not a time/);
  });

  it('enables, lists, queries and disables, printing what the API answers', async () => {
    const enabled = await bulwark(
      'telemetry',
      'enable',
      'devices/+/telemetry',
      '--retention',
      '30d',
      '--json',
      '--data',
      data,
    );
    expect(enabled.code).toBe(0);
    expect(api.telemetry.setPattern.response[200].strict().parse(JSON.parse(enabled.stdout))).toMatchObject({
      pattern: 'devices/+/telemetry',
      retentionMs: 30 * 86_400_000,
      createdBy: 'cli',
    });

    await withPlatform({ data }, async (p) => {
      for (const [i, payload] of ['{"level":1}', 'raw bytes', '{"level":3}'].entries()) {
        const body = Buffer.from(payload);
        void p.telemetry.writer.add({
          device_id: 'pump-1',
          topic: 'devices/pump-1/telemetry',
          pattern: 'devices/+/telemetry',
          subject_id: null,
          data_schema: null,
          received_at: Date.now() - 1000 + i,
          payload: body.toString('base64'),
          bytes: body.length,
        });
      }
      await p.telemetry.writer.flush();
    });

    const listed = await bulwark('telemetry', 'list', '--json', '--data', data);
    expect(z.array(api.telemetry.pattern.strict()).parse(JSON.parse(listed.stdout))).toMatchObject([
      { pattern: 'devices/+/telemetry', messages: 3 },
    ]);
    expect((await bulwark('telemetry', 'list', '--data', data)).stdout).toMatch(
      /devices\/\+\/telemetry\s+43200m\s+3/,
    );

    const page = api.telemetry.query.response[200]
      .extend({ items: z.array(api.telemetry.message.strict()) })
      .strict()
      .parse(
        JSON.parse(
          (
            await bulwark(
              'telemetry',
              'query',
              'pump-1',
              '--from',
              '-1h',
              '--limit',
              '2',
              '--json',
              '--data',
              data,
            )
          ).stdout,
        ),
      );
    expect(page.items.map((m) => m.payload)).toEqual([{ level: 1 }, null]);
    expect(page.next).not.toBeNull();
    const rest = await bulwark('telemetry', 'query', 'pump-1', '--after', page.next ?? '', '--data', data);
    expect(rest.stdout).toContain('{"level":3}');

    const disabled = await bulwark('telemetry', 'disable', 'devices/+/telemetry', '--json', '--data', data);
    expect(api.telemetry.removePattern.response[200].strict().parse(JSON.parse(disabled.stdout))).toEqual({
      pattern: 'devices/+/telemetry',
      deleted: 3,
    });
  });

  it('refuses a bad pattern or retention with one line', async () => {
    const bad = await bulwark('telemetry', 'enable', '#', '--retention', '1d', '--data', data);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^bulwark: "#" is not under devices/);
    const short = await bulwark('telemetry', 'enable', 'devices/+/x', '--retention', '10s', '--data', data);
    expect(short.stderr).toMatch(/1 minute to 10 years/);
    const never = await bulwark('telemetry', 'disable', 'devices/+/nothing', '--data', data);
    expect(never.stderr).toMatch(/no telemetry is stored for pattern devices\/\+\/nothing/);
  });
});
