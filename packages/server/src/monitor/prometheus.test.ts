import { describe, expect, it } from 'vitest';
import { createMetricsRegistry, type MetricSources } from './prometheus.ts';

const base: MetricSources = {
  broker: () => ({ sessions: 0 }),
  monitor: () => ({
    devices: 0,
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    raised: [],
    responses: 0,
    responseFailures: 0,
    tickSeconds: 0,
  }),
  alerts: () => Promise.resolve([]),
  audit: () => Promise.resolve({ seq: 0 }),
};

describe('Prometheus series', () => {
  it("the privacy stages' counters, read at scrape time; none without the source", async () => {
    const counters = { refused: 3, transformed: 40, withheld: 2 };
    const metrics = createMetricsRegistry({ ...base, privacy: () => counters });
    counters.transformed += 2;
    const { body } = await metrics.expose();
    expect(body).toMatch(/^bulwark_privacy_payloads_refused_total 3$/m);
    expect(body).toMatch(/^bulwark_privacy_deliveries_withheld_total 2$/m);
    expect(body).toMatch(/^bulwark_privacy_views_total 42$/m);
    expect((await createMetricsRegistry(base).expose()).body).not.toMatch(/bulwark_privacy_/);
  });
});
