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

describe('MQTT core series', () => {
  it('its gauges and counters, drops by reason, read at scrape time', async () => {
    const figures = {
      connections: 3,
      sessions: 5,
      subscriptions: 7,
      connectionsAccepted: 11,
      messagesReceived: 100,
      messagesSent: 250,
      droppedQueueFull: 4,
      droppedTooLarge: 1,
      droppedExpired: 2,
      malformed: 6,
      protocolErrors: 8,
    };
    const metrics = createMetricsRegistry({ ...base, broker: () => ({ sessions: 2, mqtt: figures }) });
    figures.messagesSent += 5;
    const { body } = await metrics.expose();
    expect(body).toMatch(/^bulwark_mqtt_connections 3$/m);
    expect(body).toMatch(/^bulwark_mqtt_sessions 5$/m);
    expect(body).toMatch(/^bulwark_mqtt_subscriptions 7$/m);
    expect(body).toMatch(/^bulwark_mqtt_connections_accepted_total 11$/m);
    expect(body).toMatch(/^bulwark_mqtt_messages_received_total 100$/m);
    expect(body).toMatch(/^bulwark_mqtt_messages_sent_total 255$/m);
    expect(body).toMatch(/^bulwark_mqtt_dropped_messages_total\{reason="queue_full"\} 4$/m);
    expect(body).toMatch(/^bulwark_mqtt_dropped_messages_total\{reason="too_large"\} 1$/m);
    expect(body).toMatch(/^bulwark_mqtt_dropped_messages_total\{reason="expired"\} 2$/m);
    expect(body).toMatch(/^bulwark_mqtt_malformed_packets_total 6$/m);
    expect(body).toMatch(/^bulwark_mqtt_protocol_errors_total 8$/m);
  });
});
