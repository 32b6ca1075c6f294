import { describe, expect, it } from 'vitest';
import { startTestServer } from './test-support/server.ts';

describe('platform start-up', () => {
  it('keeps its CA across restarts and records configuration changes between starts', async () => {
    const first = await startTestServer({ 'pki.deviceCertValidity': '90d' });
    const chain = (await first.platform.pki()).chainPem();
    const firstConfig = await first.platform.audit.latest('config.loaded');
    expect(firstConfig?.data.changed).toEqual([]);
    await first.stop({ keepData: true });

    const second = await startTestServer({ 'pki.deviceCertValidity': '30d' }, { dataDir: first.dataDir });
    try {
      expect((await second.platform.pki()).chainPem()).toBe(chain);
      const entry = await second.platform.audit.latest('config.loaded');
      expect(entry?.data.changed).toEqual(expect.arrayContaining(['pki.deviceCertValidity']));
      const types = (await second.platform.audit.readAfter(0, 100)).map((e) => e.type);
      expect(types.filter((t) => t === 'pki.initialized')).toHaveLength(1);
      expect((await second.platform.audit.verify()).ok).toBe(true);
    } finally {
      await second.stop();
    }
  });
});
