import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { withPlatform } from './context.ts';
import { readSchemaDocument } from './data-schema.commands.ts';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';

const SCHEMA = `name: room-sensor
topic: devices/+/telemetry
subject: { field: user_id, kind: customer }
schema:
  type: object
  additionalProperties: false
  required: [user_id, temp]
  properties:
    user_id: { type: string }
    lat: { type: number, minimum: -90, maximum: 90 }
    temp: { type: number }
fields:
  user_id:
    category: user.unique_id
    uses: [essential.service.operations]
    transform: pseudonymise
    lawfulBasis: contract
    retention: 30d
  lat:
    category: user.location.precise
    uses: [essential.service.operations]
    transform: { generalise: { grid: 1000, axis: latitude } }
    lawfulBasis: contract
    retention: 30d
  temp: { category: system.operations, lawfulBasis: legitimate_interests }
`;

const READING = '{"user_id":"u-17","lat":48.137154,"temp":21.5}';

describe('bulwark data-schema and bulwark privacy', { timeout: 90_000 }, () => {
  let data: string;
  let dir: string;
  const bulwark = (...args: string[]) => bulwarkInProcess(...args, '--data', data);
  /** `bulwark … --json`, exit code 0, its output parsed. */
  const json = async (...args: string[]): Promise<unknown> => {
    const r = await bulwark(...args, '--json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-privacy-'));
    data = path.join(dir, 'data');
    await withPlatform({ data }, (p) => p.devices.add({ id: 'sensor-1', group: 'rooms' }, 'test'), {
      create: true,
    });
    writeFileSync(path.join(dir, 'room-sensor.yaml'), SCHEMA);
  });
  afterEach(() => vi.restoreAllMocks());

  it('puts a data schema from YAML, lists, shows and tests payloads against it', async () => {
    const put = await bulwark('data-schema', 'put', path.join(dir, 'room-sensor.yaml'));
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toMatch(/^data schema room-sensor created \(v1, devices\/\+\/telemetry\)/);

    const listed = z.array(api.privacy.dataSchemaView.strict()).parse(await json('data-schema', 'list'));
    expect(listed.map((s) => [s.name, s.version])).toEqual([['room-sensor', 1]]);
    expect((await bulwark('data-schema', 'list')).stdout).toMatch(
      /room-sensor\s+devices\/\+\/telemetry\s+1\s+3\s+2/,
    );

    const shown = await bulwark('data-schema', 'show', 'room-sensor');
    expect(shown.stdout).toMatch(
      /lat\s+user\.location\.precise\s+yes\s+essential\.service\.operations\s+contract\s+30d\s+generalise grid 1000 m latitude\s+transformed/,
    );
    expect(shown.stdout).toMatch(/user_id\s.*\s30d\s+pseudonymise\s+transformed/);
    expect(
      api.privacy.dataSchemaView.strict().parse(await json('data-schema', 'show', 'room-sensor')),
    ).toMatchObject({
      name: 'room-sensor',
    });

    const analytics = api.privacy.schemaTestResult
      .strict()
      .parse(
        await json(
          'data-schema',
          'test',
          'devices/sensor-1/telemetry',
          READING,
          '--purpose',
          'analytics.reporting',
        ),
      );
    expect(analytics).toMatchObject({ valid: true, schema: 'room-sensor', subject: 'u-17' });
    expect(JSON.stringify(analytics.view)).not.toContain('u-17');
    const ops = await bulwark(
      'data-schema',
      'test',
      'devices/sensor-1/telemetry',
      READING,
      '--purpose',
      'essential.service.operations',
    );
    expect(ops.stdout).toContain('purpose essential.service.operations receives: {"user_id":"u-17"');

    const refused = await bulwark('data-schema', 'test', 'devices/sensor-1/telemetry', '{"temp":"hot"}');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^refused by room-sensor: /);
    const unmatched = await bulwark('data-schema', 'test', 'devices/sensor-1/other', 'raw');
    expect(unmatched.code).toBe(0);
    expect(unmatched.stdout).toMatch(/no data schema matches/);
  });

  it('refuses a bad schema, an unknown schema and an unreadable file with one line', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      SCHEMA.replace('name: room-sensor', 'name: bad').replace(/ {4}retention: 30d\n/g, ''),
    );
    const bad = await bulwark('data-schema', 'put', file);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^bulwark: fields\.\w+: .*retention.*\n$/);
    const missing = await bulwark('data-schema', 'show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^bulwark: .*nope.*\n$/);
    const unreadable = await bulwark('data-schema', 'put', path.join(dir, 'absent.yaml'));
    expect(unreadable.stderr).toMatch(/^bulwark: cannot read /);
  });

  it('reads a schema from standard input with -', async () => {
    vi.spyOn(process, 'stdin', 'get').mockReturnValue(
      Readable.from([Buffer.from(SCHEMA)]) as unknown as typeof process.stdin,
    );
    expect(await readSchemaDocument('-')).toMatchObject({
      name: 'room-sensor',
      topic: 'devices/+/telemetry',
    });
  });

  it('adds and links a subject, records consent, answers requests', async () => {
    const added = api.privacy.subjectDetail
      .strict()
      .parse(await json('privacy', 'subject', 'add', 'u-17', '--kind', 'customer', '--device', 'sensor-1'));
    expect(added).toMatchObject({ id: 'u-17', kind: 'customer', devices: ['sensor-1'] });
    const unlinked = await json('privacy', 'subject', 'link', 'u-17', '--device', 'sensor-1', '--unlink');
    expect(unlinked).toMatchObject({ devices: [] });
    expect((await bulwark('privacy', 'subject', 'list')).stdout).toMatch(/u-17\s+customer/);

    expect((await bulwark('privacy', 'consent', 'give', 'u-17', 'analytics.reporting')).stderr).toMatch(
      /^bulwark: --notice VERSION/,
    );
    const given = await bulwark(
      'privacy',
      'consent',
      'give',
      'u-17',
      'analytics.reporting',
      '--notice',
      'v2',
    );
    expect(given.stdout).toBe('consent of u-17 for analytics.reporting: given\n');
    await bulwark('privacy', 'consent', 'withdraw', 'u-17', 'analytics.reporting');
    const shown = api.privacy.subjectDetail.strict().parse(await json('privacy', 'subject', 'show', 'u-17'));
    expect(shown.consents).toMatchObject([
      { purpose: 'analytics.reporting', status: 'withdrawn', noticeVersion: 'v2' },
    ]);

    const out = path.join(dir, 'u-17.json');
    const exported = await bulwark('privacy', 'request', 'export', 'u-17', '--out', out);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toMatch(/^request \S+ \(access\) completed/);
    expect(api.privacy.subjectExport.parse(JSON.parse(readFileSync(out, 'utf8')))).toMatchObject({
      subject: 'u-17',
    });

    const rectify = api.privacy.requestOutcome
      .strict()
      .parse(await json('privacy', 'request', 'rectify', 'u-17', '--note', 'wrong address'));
    expect(rectify.request.status).toBe('open');
    const open = z
      .array(api.privacy.privacyRequest.strict())
      .parse(await json('privacy', 'request', 'list', '--status', 'open'));
    expect(open.map((r) => r.id)).toEqual([rectify.request.id]);
    const done = await bulwark('privacy', 'request', 'complete', rectify.request.id, '--note', 'corrected');
    expect(done.stdout).toMatch(/\(rectification\) completed/);
    const noNote = await bulwark('privacy', 'request', 'complete', rectify.request.id);
    expect(noNote.code).not.toBe(0);

    // A restriction (Art. 18) and lifting it (Art. 18(3)).
    const restricted = await bulwark('privacy', 'request', 'restrict', 'u-17');
    expect(restricted.stdout).toMatch(/\(restriction\) completed/);
    expect((await bulwark('privacy', 'subject', 'show', 'u-17')).stdout).toMatch(
      /^subject u-17 \(customer\), restricted since /,
    );
    const lifted = api.privacy.subjectDetail
      .strict()
      .parse(await json('privacy', 'subject', 'unrestrict', 'u-17'));
    expect(lifted.restrictedAt).toBeNull();
    expect((await bulwark('privacy', 'subject', 'unrestrict', 'u-17')).stdout).toMatch(
      /^subject u-17 \(customer\)\n/,
    );
    expect((await bulwark('privacy', 'subject', 'unrestrict', 'nobody')).code).toBe(1);

    const erased = api.privacy.requestOutcome
      .strict()
      .parse(await json('privacy', 'request', 'erase', 'u-17'));
    expect(erased.request).toMatchObject({ kind: 'erasure', status: 'completed', subject: null });
    const unknown = await bulwark('privacy', 'subject', 'show', 'u-17');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^bulwark: .*u-17/);
  });

  it('writes the Art. 30 record, runs retention and a k-anonymous export', async () => {
    const record = api.privacy.processingRecord
      .strict()
      .parse(JSON.parse((await bulwark('privacy', 'record')).stdout));
    expect(record.activities.map((a) => a.name)).toEqual(['room-sensor']);
    const html = path.join(dir, 'record.html');
    const written = await bulwark('privacy', 'record', '--format', 'html', '--out', html);
    expect(written.code, written.stderr).toBe(0);
    const page = readFileSync(html, 'utf8');
    for (const word of ['room-sensor', 'user.location.precise', 'contract']) expect(page).toContain(word);

    const runs = z
      .array(z.object({ schema: z.string(), store: z.string(), deleted: z.number() }))
      .parse(await json('privacy', 'retention'));
    expect(runs.every((r) => r.deleted === 0)).toBe(true);

    const exported = api.privacy.telemetryExport.response[200]
      .strict()
      .parse(await json('privacy', 'export-telemetry', '--schema', 'room-sensor', '--k', '2'));
    expect(exported).toMatchObject({ rows: [], k: 2 });
    const badK = await bulwark('privacy', 'export-telemetry', '--schema', 'room-sensor', '--k', '1');
    expect(badK.stderr).toMatch(/^bulwark: --k must be a whole number from 2 to 1000/);
  });
});
