import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import { createTestPlatform, type TestCredentials, type TestPlatform } from '../test-support/platform.ts';

const page = api.audit.query.response[200];

/**
 * `GET /api/v1/audit` read the way the console's audit log reads it: newest first, paged back with `before`,
 * filtered by a type prefix and a subject.
 */
describe('audit log query: newest first and type prefixes', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let auditor: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    auditor = await t.signIn('auditor');
    for (const id of ['pump-1', 'pump-2', 'pump-3'])
      await t.platform.devices.add({ id, group: 'pumps' }, 'test');
    await t.platform.events.flush();
  });
  afterAll(() => t?.close());

  const get = async (query: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/v1/audit?${query}`,
      headers: auditor.headers,
    });
    expect(res.statusCode, res.body).toBe(200);
    return page.parse(res.json());
  };

  it('answers newest first with order=desc, and `next` pages back with `before` to the oldest', async () => {
    const all = await get('limit=1000');
    const seqs = all.entries.map((e) => e.seq);
    expect(seqs.length).toBeGreaterThan(4);
    const first = await get('order=desc&limit=2');
    expect(first.entries.map((e) => e.seq)).toEqual(seqs.slice(-2).reverse());
    expect(first.next).toBe(seqs.at(-2));
    const second = await get(`order=desc&limit=2&before=${first.next}`);
    expect(second.entries.map((e) => e.seq)).toEqual(seqs.slice(-4, -2).reverse());
    const rest = await get(`order=desc&limit=1000&before=${second.next}`);
    expect(rest.entries.map((e) => e.seq)).toEqual(seqs.slice(0, -4).reverse());
    expect(rest.next).toBeNull();
  });

  it('filters by a type prefix (with a subject too), and a prefix no type has finds nothing', async () => {
    const devices = await get('order=desc&typePrefix=device.');
    expect(devices.entries.map((e) => [e.type, e.subject])).toEqual([
      ['device.added', 'device:pump-3'],
      ['device.added', 'device:pump-2'],
      ['device.added', 'device:pump-1'],
    ]);
    const one = await get('typePrefix=device.add&subject=device:pump-2');
    expect(one.entries.map((e) => e.subject)).toEqual(['device:pump-2']);
    expect((await get('typePrefix=no-such-area.')).entries).toEqual([]);
    // An exact type still names one of the catalog's.
    const unknown = await t.app.inject({
      method: 'GET',
      url: '/api/v1/audit?type=device.',
      headers: auditor.headers,
    });
    expect(unknown.statusCode).toBe(400);
  });
});
