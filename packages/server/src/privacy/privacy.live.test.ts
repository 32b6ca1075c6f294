import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { roomSensor } from '../test-support/data-schemas.ts';

/** The live view fails closed: a stored schema it cannot apply refuses its topic's payloads. */
describe('privacy live view: a stored schema that no longer passes', () => {
  let c: PrivacyTestContext;
  beforeEach(async () => {
    c = await createPrivacyTestContext('sqlite');
  });
  afterEach(async () => {
    await c.close();
  });

  it('refuses the payloads of its topic, naming why, instead of forwarding them unclassified', async () => {
    await c.privacy.putSchema(roomSensor(), 'test');
    // A schema stored under looser rules (or by an older version): properties outside `properties`.
    const loose = roomSensor();
    const document = JSON.stringify({
      ...loose,
      schema: { ...loose.schema, patternProperties: { '^x_': {} } },
    });
    await c.t.store.db
      .updateTable('privacy_schemas')
      .set({ document })
      .where('name', '=', 'room-sensor')
      .execute();
    await c.privacy.live.start();
    await c.privacy.live.reload();
    const schema = c.privacy.live.match('devices/d-1/telemetry');
    expect(schema?.name).toBe('room-sensor');
    const verdict = schema?.check(JSON.stringify({ user_id: 'u-17', temp: 20, x_user: 'u-17' }));
    expect(verdict?.ok).toBe(false);
    expect(verdict && !verdict.ok && verdict.reason).toMatch(/room-sensor.*patternProperties/);
    expect(c.errors.length).toBeGreaterThan(0);
    c.privacy.live.stop();
  });
});
