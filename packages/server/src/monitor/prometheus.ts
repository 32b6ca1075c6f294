import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** What /metrics reads at scrape time; each source is a narrow callback owned by its module. */
export interface MetricSources {
  broker(): {
    sessions: number;
    /** TLS handshakes on the MQTT port closed for not finishing in time. */
    handshakeTimeouts?: number;
    /** MQTT packets refused at their fixed header for announcing more than the limit. */
    packetsTooLarge?: number;
    /** Denied publishes by reason (a bounded set of policy reasons). */
    publishDenied?: [string, number][];
    /** Delivery to each app (apps are few and named by operators: a bounded label set). */
    apps?: { app: string; messages: number; bytes: number; dropped: number; queuedBytes: number }[];
    /** Bulwark's MQTT core (broker/core/): what it holds now and its counters since start. */
    mqtt?: MqttCoreFigures;
  };
  monitor(): {
    devices: number;
    messagesSent: number;
    bytesSent: number;
    messagesReceived: number;
    bytesReceived: number;
    raised: [string, number][];
    responses: number;
    responseFailures: number;
    tickSeconds: number;
  };
  alerts(): Promise<{ status: string; severity: string; n: number }[]>;
  audit(): Promise<{ seq: number }>;
  notifications?(): Promise<{ name: string; delivered: number; failures: number; lag: number }[]>;
  /** The telemetry store's writer in this process (telemetry/). */
  telemetry?(): { stored: number; dropped: number; failed: number; queued: number; queuedBytes: number };
  /** Device command results refused (malformed, or for no command recently sent to that device). */
  commandResultsRejected?(): number;
  /** The broker's privacy stages (privacy/): payloads refused, deliveries withheld, views delivered. */
  privacy?(): { refused: number; transformed: number; withheld: number };
}

/** What the MQTT core holds now and counts since start (its drops per client id are events, not labels). */
export interface MqttCoreFigures {
  connections: number;
  sessions: number;
  subscriptions: number;
  connectionsAccepted: number;
  messagesReceived: number;
  messagesSent: number;
  droppedQueueFull: number;
  droppedTooLarge: number;
  droppedExpired: number;
  malformed: number;
  protocolErrors: number;
}

/** The MQTT core: gauges and counters read at scrape time. */
function mqttSeries(
  series: {
    registry: Registry;
    counter: (name: string, help: string, read: () => number) => unknown;
    gauge: (meta: { name: string; help: string }, collect: (g: Gauge) => void) => unknown;
  },
  sources: MetricSources,
): void {
  const { registry, counter, gauge } = series;
  const core = () => sources.broker().mqtt;
  gauge({ name: 'bulwark_mqtt_connections', help: 'Open MQTT connections' }, (g) =>
    g.set(core()?.connections ?? 0),
  );
  gauge(
    {
      name: 'bulwark_mqtt_sessions',
      help: 'MQTT sessions the broker holds: connected, and persistent sessions kept offline',
    },
    (g) => g.set(core()?.sessions ?? 0),
  );
  gauge({ name: 'bulwark_mqtt_subscriptions', help: 'MQTT subscriptions held' }, (g) =>
    g.set(core()?.subscriptions ?? 0),
  );
  counter(
    'bulwark_mqtt_connections_accepted_total',
    'MQTT connections taken by the broker (after TLS and the firewall)',
    () => core()?.connectionsAccepted ?? 0,
  );
  counter(
    'bulwark_mqtt_messages_received_total',
    'PUBLISH packets received from MQTT clients',
    () => core()?.messagesReceived ?? 0,
  );
  counter(
    'bulwark_mqtt_messages_sent_total',
    'PUBLISH packets sent to MQTT clients',
    () => core()?.messagesSent ?? 0,
  );
  new Counter({
    name: 'bulwark_mqtt_dropped_messages_total',
    help: "Messages dropped for a session, by reason: queue_full (mqtt.maxQueuedMessages), too_large (over the client's Maximum Packet Size), expired (message expiry)",
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const figures = core();
      this.inc({ reason: 'queue_full' }, figures?.droppedQueueFull ?? 0);
      this.inc({ reason: 'too_large' }, figures?.droppedTooLarge ?? 0);
      this.inc({ reason: 'expired' }, figures?.droppedExpired ?? 0);
    },
  });
  counter(
    'bulwark_mqtt_malformed_packets_total',
    'MQTT packets that could not be parsed (the connection was closed, 0x81 on MQTT 5)',
    () => core()?.malformed ?? 0,
  );
  counter(
    'bulwark_mqtt_protocol_errors_total',
    'MQTT protocol violations by clients (the connection was closed, 0x82 and others on MQTT 5)',
    () => core()?.protocolErrors ?? 0,
  );
}

/** The broker's privacy stages: counters read at scrape time. */
function privacySeries(
  counter: (name: string, help: string, read: () => number) => unknown,
  sources: MetricSources,
) {
  if (!sources.privacy) return;
  const privacy = () => sources.privacy?.() ?? { refused: 0, transformed: 0, withheld: 0 };
  counter(
    'bulwark_privacy_payloads_refused_total',
    "Device payloads refused for breaking their topic's data schema",
    () => privacy().refused,
  );
  counter(
    'bulwark_privacy_deliveries_withheld_total',
    "Deliveries withheld: the data subject restricted, or its consent withdrawn for the consumer's purpose",
    () => privacy().withheld,
  );
  counter(
    'bulwark_privacy_views_total',
    "Deliveries given a view of the payload transformed for the consumer's purpose",
    () => privacy().transformed,
  );
}

/** The telemetry store's writer and refused command results: counters read at scrape time. */
function storeSeries(
  counter: (name: string, help: string, read: () => number) => unknown,
  gauge: (meta: { name: string; help: string }, collect: (g: Gauge) => void) => unknown,
  sources: MetricSources,
): void {
  if (sources.telemetry) {
    const telemetry = () =>
      sources.telemetry?.() ?? { stored: 0, dropped: 0, failed: 0, queued: 0, queuedBytes: 0 };
    counter(
      'bulwark_telemetry_stored_total',
      'Device messages stored by the telemetry store',
      () => telemetry().stored,
    );
    counter(
      'bulwark_telemetry_dropped_total',
      'Device messages not stored because the write queue was full (rows or bytes)',
      () => telemetry().dropped,
    );
    counter(
      'bulwark_telemetry_failed_total',
      'Device messages not stored because their batch failed',
      () => telemetry().failed,
    );
    gauge({ name: 'bulwark_telemetry_queued_bytes', help: 'Payload bytes waiting to be stored' }, (g) =>
      g.set(telemetry().queuedBytes),
    );
  }
  if (sources.commandResultsRejected)
    counter(
      'bulwark_command_results_rejected_total',
      'Device command results refused: malformed, or for no command recently sent to that device',
      () => sources.commandResultsRejected?.() ?? 0,
    );
}

/** Per app: messages and bytes delivered, messages dropped (bounded queue), bytes waiting now. */
function appSeries(registry: Registry, sources: MetricSources): void {
  const apps = () => sources.broker().apps ?? [];
  const perApp = (name: string, help: string, read: (a: ReturnType<typeof apps>[number]) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['app'],
      registers: [registry],
      collect() {
        this.reset();
        for (const a of apps()) this.inc({ app: a.app }, read(a));
      },
    });
  perApp('bulwark_app_delivered_messages_total', 'Messages delivered to each app', (a) => a.messages);
  perApp('bulwark_app_delivered_bytes_total', 'Payload bytes delivered to each app', (a) => a.bytes);
  perApp(
    'bulwark_app_dropped_messages_total',
    'Messages to each app dropped because its connection held more than mqtt.appQueueSize',
    (a) => a.dropped,
  );
  new Gauge({
    name: 'bulwark_app_queued_bytes',
    help: "Bytes waiting in each app's connections",
    labelNames: ['app'],
    registers: [registry],
    collect() {
      this.reset();
      for (const a of apps()) this.set({ app: a.app }, a.queuedBytes);
    },
  });
}

/**
 * A Prometheus registry with the process defaults and Bulwark's broker, detector, alert, audit-log and
 * notification figures, all read at scrape time (nothing on the broker's hot path).
 */
export function createMetricsRegistry(sources: MetricSources) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bulwark_' });
  const gauge = (
    meta: { name: string; help: string; labelNames?: string[] },
    collect: (g: Gauge) => void | Promise<void>,
  ) =>
    new Gauge({
      ...meta,
      labelNames: meta.labelNames ?? [],
      registers: [registry],
      async collect() {
        await collect(this);
      },
    });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });

  gauge({ name: 'bulwark_broker_sessions', help: 'Authenticated MQTT sessions' }, (g) =>
    g.set(sources.broker().sessions),
  );
  counter(
    'bulwark_broker_handshake_timeouts_total',
    'TLS handshakes on the MQTT port closed for not finishing within mqtt.handshakeTimeout',
    () => sources.broker().handshakeTimeouts ?? 0,
  );
  counter(
    'bulwark_broker_packets_too_large_total',
    'MQTT packets refused at their fixed header for announcing more than the size limit',
    () => sources.broker().packetsTooLarge ?? 0,
  );
  new Counter({
    name: 'bulwark_broker_publish_denied_total',
    help: 'Publishes refused by policy, by reason (the device learns only that its connection closed)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of sources.broker().publishDenied ?? []) this.inc({ reason }, n);
    },
  });
  appSeries(registry, sources);
  mqttSeries({ registry, counter, gauge }, sources);
  storeSeries(counter, gauge, sources);
  privacySeries(counter, sources);
  gauge({ name: 'bulwark_monitor_devices', help: 'Devices the detectors hold state for' }, (g) =>
    g.set(sources.monitor().devices),
  );
  counter(
    'bulwark_broker_messages_published_total',
    'Publishes accepted from devices',
    () => sources.monitor().messagesSent,
  );
  counter(
    'bulwark_broker_bytes_published_total',
    'Payload bytes accepted from devices',
    () => sources.monitor().bytesSent,
  );
  counter(
    'bulwark_broker_messages_delivered_total',
    'Messages delivered to devices',
    () => sources.monitor().messagesReceived,
  );
  counter(
    'bulwark_broker_bytes_delivered_total',
    'Payload bytes delivered to devices',
    () => sources.monitor().bytesReceived,
  );
  counter('bulwark_monitor_responses_total', 'Responses executed', () => sources.monitor().responses);
  counter(
    'bulwark_monitor_response_failures_total',
    'Responses that failed',
    () => sources.monitor().responseFailures,
  );
  counter(
    'bulwark_monitor_tick_seconds_total',
    'Time spent closing windows and running periodic detectors',
    () => sources.monitor().tickSeconds,
  );
  new Counter({
    name: 'bulwark_alerts_raised_total',
    help: 'Alerts raised since start, by detector',
    labelNames: ['detector'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [detector, n] of sources.monitor().raised) this.inc({ detector }, n);
    },
  });
  gauge(
    { name: 'bulwark_alerts', help: 'Alerts by status and severity', labelNames: ['status', 'severity'] },
    async (g) => {
      g.reset();
      for (const { status, severity, n } of await sources.alerts()) g.set({ status, severity }, n);
    },
  );
  gauge(
    {
      name: 'bulwark_audit_log_entries',
      help: 'Entries in the hash-chained audit log (its head sequence number)',
    },
    async (g) => g.set((await sources.audit()).seq),
  );
  gauge(
    {
      name: 'bulwark_notification_lag_events',
      help: 'Audit-log entries a notification channel has not delivered yet',
      labelNames: ['channel'],
    },
    async (g) => {
      g.reset();
      for (const c of (await sources.notifications?.()) ?? []) g.set({ channel: c.name }, c.lag);
    },
  );
  gauge(
    {
      name: 'bulwark_notification_failures',
      help: 'Failed delivery attempts per channel since start',
      labelNames: ['channel'],
    },
    async (g) => {
      g.reset();
      for (const c of (await sources.notifications?.()) ?? []) g.set({ channel: c.name }, c.failures);
    },
  );

  return {
    async expose(): Promise<{ contentType: string; body: string }> {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
