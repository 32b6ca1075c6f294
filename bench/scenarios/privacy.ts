/**
 * (7) The cost of privacy at the broker (issue 15: "≤ 10 % on throughput for a schema with three transformed
 * fields"). The fan-in topology of 2b (the fleet publishes, the observer app, purpose `analytics.reporting`,
 * subscribes to `devices/+/telemetry`) with the JSON reading on every message, once without a data
 * schema and once with one that pseudonymises `user_id` and puts `lat` and `lon` on a 1 km grid for that
 * purpose (`temp` and the bench's own fields clear): every message is validated against the JSON Schema, its
 * subject read, its kept form and the observer's view computed and serialized. Bulwark only (the peers have
 * no data schemas); the figure is the ratio of the two rates.
 */
import type { BenchContext, MetricSpec, SystemRun } from '../harness/index.ts';
import { checkIntegrity, observedThroughput, withObservedFleet } from './fleet-connect.ts';

const SCHEMA_NAME = 'bench-reading';

const clear = { category: 'system.operations' };
const located = (axis: 'latitude' | 'longitude') => ({
  category: 'user.location.precise',
  uses: ['essential.service.operations'],
  lawfulBasis: 'contract',
  retention: '30d',
  transform: {
    generalise: axis === 'latitude' ? { grid: 1000, axis } : { grid: 1000, axis, latitudeField: 'lat' },
  },
});

/** The acceptance schema of issue 15, plus the load generator's fields (device, sequence, time, padding). */
export const benchReadingSchema = {
  name: SCHEMA_NAME,
  topic: 'devices/+/telemetry',
  subject: { field: 'user_id', kind: 'customer' },
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['user_id', 'temp', 'd', 's', 't'],
    properties: {
      user_id: { type: 'string' },
      lat: { type: 'number', minimum: -90, maximum: 90 },
      lon: { type: 'number', minimum: -180, maximum: 180 },
      temp: { type: 'number' },
      d: { type: 'integer' },
      s: { type: 'integer' },
      t: { type: 'number' },
      pad: { type: 'string' },
    },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      uses: ['essential.service.operations'],
      transform: 'pseudonymise',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    lat: located('latitude'),
    lon: located('longitude'),
    temp: clear,
    d: clear,
    s: clear,
    t: clear,
    pad: clear,
  },
};

const spec = (qos: number, metric: string, unit = '/s'): MetricSpec => ({
  scenario: `7 privacy: fan-in to an analytics app, QoS ${qos}`,
  metric,
  unit,
  better: 'higher',
});

/** The throughput of one variant with the fleet and the observer connected, in delivered messages a second. */
async function measure(ctx: BenchContext, run: SystemRun, qos: 0 | 1, label: string): Promise<number> {
  const res = await observedThroughput(ctx, qos, true);
  if (!res) throw new Error('no throughput result');
  checkIntegrity(ctx, run, `privacy ${label} QoS ${qos}`, res.tally);
  const rate = (res.windowDelivered / res.windowMs) * 1000;
  ctx.log(`  bulwark: privacy ${label}, QoS ${qos}: ${rate.toFixed(0)} msgs/s, lost ${res.tally.lost}`);
  return rate;
}

export async function privacyThroughput(ctx: BenchContext, run: SystemRun): Promise<void> {
  const { plan, results } = ctx;
  const { system } = run;
  if (system.name !== 'bulwark' || !system.privacySchema) return;
  let schemaPut = false;
  const setSchema = async (on: boolean) => {
    if (on === schemaPut) return;
    await system.privacySchema?.(SCHEMA_NAME, on ? benchReadingSchema : null);
    schemaPut = on;
  };
  try {
    await withObservedFleet(ctx, run, async () => {
      for (const qos of [0, 1] as const) {
        // Alternating the order each round, so that drift on a shared machine cancels in the medians.
        for (let round = 0; round < plan.rounds; round++) {
          const rates = { without: 0, with: 0 };
          for (const variant of round % 2 === 0
            ? (['without', 'with'] as const)
            : (['with', 'without'] as const)) {
            await setSchema(variant === 'with');
            rates[variant] = await measure(ctx, run, qos, `${variant} schema`);
          }
          results.add(spec(qos, 'delivered msgs/s, no data schema'), 'bulwark', rates.without);
          results.add(spec(qos, 'delivered msgs/s, 3 fields transformed'), 'bulwark', rates.with);
          results.add(
            {
              ...spec(qos, 'with schema ÷ without', 'x'),
              target: { kind: 'absolute', min: 0.9 },
            },
            'bulwark',
            rates.without > 0 ? rates.with / rates.without : undefined,
          );
        }
      }
    });
  } finally {
    await setSchema(false).catch(() => undefined);
  }
}
