import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { roomSensor } from '../test-support/data-schemas.ts';
import { testDialects } from '../test-support/dialects.ts';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { classifiedBy } from './privacy.facts.ts';
import { createPrivacyService } from './index.ts';

const DAY = 86_400_000;

describe('telemetry pattern classification', () => {
  it('is classified when a schema topic equals or is wider than the pattern', () => {
    const topics = ['devices/+/telemetry', 'devices/+/env/#'];
    expect(classifiedBy('devices/+/telemetry', topics)).toBe(true);
    expect(classifiedBy('devices/pump-1/telemetry', topics)).toBe(true);
    expect(classifiedBy('devices/+/env/room/+', topics)).toBe(true);
    expect(classifiedBy('devices/+/#', topics)).toBe(false); // stores more than any schema classifies
    expect(classifiedBy('devices/+/status', topics)).toBe(false);
    expect(classifiedBy('devices/+/telemetry', [])).toBe(false);
  });
});

for (const dialect of testDialects) {
  describe(`privacy compliance facts on ${dialect}`, () => {
    let p: PrivacyTestContext;

    beforeEach(async () => {
      p = await createPrivacyTestContext(dialect);
    });
    afterEach(async () => {
      await p.close();
    });

    /** The privacy service with the telemetry patterns among its sources (as the platform wires it). */
    const withPatterns = () =>
      createPrivacyService({
        ...p.deps,
        sources: () => ({ ...p.deps.sources(), telemetryPatterns: () => p.telemetry.patternRules() }),
      });

    it('states personal fields, open requests, the controller and the telemetry patterns', async () => {
      const doc = roomSensor();
      if (doc.fields.lon) doc.fields.lon.retention = '400d';
      await p.privacy.putSchema(doc, 'user:dpo');
      await p.telemetry.setPattern('devices/+/telemetry', { retentionMs: 7 * DAY }, 'user:op');
      await p.telemetry.setPattern('devices/+/status', { retentionMs: 30 * DAY }, 'user:op');
      const held = await p.privacy.createRequest({ subject: 'u-1', kind: 'erasure', hold: true }, 'user:dpo');
      p.clock.now += DAY;
      const fix = await p.privacy.createRequest({ subject: 'u-2', kind: 'rectification' }, 'user:dpo');
      await p.privacy.createRequest({ subject: 'u-3', kind: 'access' }, 'user:dpo'); // answered at once

      expect(await withPatterns().complianceFacts()).toEqual({
        schemas: [
          {
            name: 'room-sensor',
            topic: 'devices/+/telemetry',
            personalFields: [
              { path: 'user_id', category: 'user.unique_id', retentionMs: 30 * DAY, store: 'transformed' },
              { path: 'lat', category: 'user.location.precise', retentionMs: 30 * DAY, store: 'transformed' },
              {
                path: 'lon',
                category: 'user.location.precise',
                retentionMs: 400 * DAY,
                store: 'transformed',
              },
            ],
          },
        ],
        openRequests: [
          {
            id: held.request.id,
            kind: 'erasure',
            receivedAt: p.clock.now - DAY,
            dueAt: p.clock.now + 29 * DAY,
          },
          {
            id: fix.request.id,
            kind: 'rectification',
            receivedAt: p.clock.now,
            dueAt: p.clock.now + 30 * DAY,
          },
        ],
        controller: { name: 'Example GmbH', contact: 'dpo@example.com' },
        telemetryPatterns: [
          { pattern: 'devices/+/status', retentionMs: 30 * DAY, classified: false },
          { pattern: 'devices/+/telemetry', retentionMs: 7 * DAY, classified: true },
        ],
      });
    });

    it('refuses to state facts without the telemetry patterns source', async () => {
      await expect(p.privacy.complianceFacts()).rejects.toThrow(/telemetry patterns/);
    });
  });
}
