import mqtt, { type MqttClient } from 'mqtt';
import {
  buildHeartbeat,
  builtinCommands,
  certificateInfo,
  createBackoff,
  createCommandRouter,
  createFirmwareAgent,
  createSecurityReporter,
  openIdentityStore,
  parseMqttUrl,
  renewalDue,
  renewIdentity,
  type Backoff,
  type CertificateInfo,
  type CommandRouter,
  type DeviceIdentity,
  type FirmwareAgent,
  type InstalledFirmware,
  type SecurityReporter,
} from '@bulwark/device';
import { commandTopics, topics, type DeviceMetricsReport } from '@bulwark/protocol';
import { telemetryOf, type DeviceModel } from './rhythm.ts';

/*
 * One simulated device, made of the device SDK's parts: its identity from enrollment (identity store), the
 * heartbeat, the command router with the built-in commands (ping, report-state), the firmware agent (state
 * at every connect; TUF updates when a rollout sends one) and the signed security reports, over one MQTT
 * session with the device certificate (mutual TLS). It adds what the SDK's `startAgent` does not offer a
 * device's own code: publishing telemetry and metrics on its own topics, over the same session (a second
 * session with the same client id would take the first over).
 */

/** What a simulated device reports to the fleet. */
export type SimDeviceEvent =
  | { readonly type: 'connected'; readonly deviceId: string }
  | { readonly type: 'disconnected'; readonly deviceId: string; readonly sessionMs: number }
  | { readonly type: 'error'; readonly deviceId: string; readonly error: Error };

export interface SimDeviceOptions {
  /** Identity directory written by `enrollDevice`. */
  readonly dir: string;
  readonly mqttUrl: string;
  readonly model: DeviceModel;
  readonly telemetryIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  readonly onEvent?: ((event: SimDeviceEvent) => void) | undefined;
  readonly random?: (() => number) | undefined;
}

/** A running simulated device. */
export interface SimDevice {
  readonly deviceId: string;
  /** Its identity directory. */
  readonly dir: string;
  readonly model: DeviceModel;
  readonly connected: boolean;
  /** The live session: what a compromised device's attacks run over. */
  session(): MqttClient | undefined;
  /** Signed tamper and health reports over the session (the SDK's reporter). */
  readonly reporter: SecurityReporter;
  /** The firmware the device runs (its A/B installer). */
  installed(): Promise<InstalledFirmware>;
  /** Telemetry messages acknowledged by the broker. */
  readonly telemetrySent: number;
  stop(): Promise<void>;
}

/** A session shorter than this does not reset the reconnect backoff (a device the broker keeps closing). */
const STABLE_SESSION_MS = 30_000;
/** Every how many telemetry messages the device also reports its metrics (`devices/{id}/metrics`). */
const METRICS_EVERY = 4;
/** A health report at the first connection, then this often. */
const HEALTH_EVERY_MS = 3_600_000;
const STOP_TIMEOUT_MS = 2_000;

interface State {
  readonly options: SimDeviceOptions;
  readonly random: () => number;
  readonly mqttUrl: string;
  readonly backoff: Backoff;
  readonly startedAt: number;
  identity: DeviceIdentity;
  certificate: CertificateInfo;
  parts: Parts | undefined;
  client: MqttClient | undefined;
  connectedAt: number | null;
  stopped: boolean;
  heartbeatSeq: number;
  telemetrySent: number;
  telemetryCount: number;
  /** Payload bytes since the last metrics report. */
  bytesOut: number;
  packetsOut: number;
  healthAt: number;
  heartbeatTimer: NodeJS.Timeout | undefined;
  telemetryTimer: NodeJS.Timeout | undefined;
  reconnectTimer: NodeJS.Timeout | undefined;
}

/** The SDK parts that read the device's identity and session. */
interface Parts {
  readonly firmware: FirmwareAgent;
  readonly router: CommandRouter;
  readonly reporter: SecurityReporter;
}

const emit = (s: State, event: SimDeviceEvent) => s.options.onEvent?.(event);
const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));
const fail = (s: State) => (err: unknown) =>
  emit(s, { type: 'error', deviceId: s.identity.deviceId, error: asError(err) });
/** A failure of something sent on `client`: not worth a word when the session has ended meanwhile. */
const failOn = (s: State, client: MqttClient) => (err: unknown) => {
  if (err && s.client === client && client.connected) fail(s)(err);
};

function openClient(s: State): MqttClient {
  return mqtt.connect(s.mqttUrl, {
    protocolVersion: 4,
    clientId: s.identity.deviceId,
    clean: true,
    key: s.identity.keyPem,
    cert: s.identity.certPem,
    ca: s.identity.caPem,
    rejectUnauthorized: true,
    reconnectPeriod: 0, // the device's own backoff (below), as the agent does
    connectTimeout: 30_000,
    keepalive: 60,
  });
}

function connect(s: State): void {
  const client = openClient(s);
  s.client = client;
  let since: number | undefined;
  client.on('connect', () => {
    if (s.client !== client) return;
    since = Date.now();
    onSession(s, client);
  });
  client.on('message', (topic, payload, packet) => {
    if (s.client !== client) return;
    if (s.parts?.firmware.onMessage(topic, payload) === true) return;
    s.parts?.router.handle(topic, payload, packet).catch(fail(s));
  });
  client.on('error', (err) => {
    // A failed attempt says why (TLS refused, CONNACK refused); a session's end is a `disconnected`.
    if (s.client === client && since === undefined) fail(s)(err);
  });
  client.on('close', () => {
    client.end(true);
    if (s.client !== client) return;
    s.client = undefined;
    s.connectedAt = null;
    clearSessionTimers(s);
    if (since !== undefined) {
      const sessionMs = Date.now() - since;
      if (sessionMs >= STABLE_SESSION_MS) s.backoff.reset();
      emit(s, { type: 'disconnected', deviceId: s.identity.deviceId, sessionMs });
    }
    if (!s.stopped) scheduleReconnect(s);
  });
}

function scheduleReconnect(s: State): void {
  s.reconnectTimer = setTimeout(() => {
    s.reconnectTimer = undefined;
    if (!s.stopped) connect(s);
  }, s.backoff.next());
}

function clearSessionTimers(s: State): void {
  clearInterval(s.heartbeatTimer);
  clearTimeout(s.telemetryTimer);
  s.heartbeatTimer = undefined;
  s.telemetryTimer = undefined;
}

/** After CONNACK: what the agent does (heartbeat, firmware state, commands), then the device's own data. */
function onSession(s: State, client: MqttClient): void {
  const { deviceId } = s.identity;
  s.connectedAt = Date.now();
  emit(s, { type: 'connected', deviceId });
  publishHeartbeat(s, client);
  s.heartbeatTimer = setInterval(() => publishHeartbeat(s, client), s.options.heartbeatIntervalMs);
  s.parts?.firmware.onConnect(client);
  client.subscribe(commandTopics.all(deviceId), { qos: 1 }, failOn(s, client));
  publishTelemetry(s, client);
  if (Date.now() - s.healthAt >= HEALTH_EVERY_MS) {
    s.healthAt = Date.now();
    s.parts?.reporter
      .reportHealth({ secureBoot: true, debugPortEnabled: false, enclosureClosed: true })
      .catch(failOn(s, client));
  }
}

function publishHeartbeat(s: State, client: MqttClient): void {
  const beat = buildHeartbeat({
    seq: s.heartbeatSeq++,
    startedAt: s.startedAt,
    now: Date.now(),
    certNotAfter: s.certificate.notAfter,
  });
  client.publish(topics.heartbeat(s.identity.deviceId), JSON.stringify(beat), { qos: 1 }, failOn(s, client));
}

/** One reading now, then the next after the interval with ±20 % jitter (a fleet does not report in lockstep). */
function publishTelemetry(s: State, client: MqttClient): void {
  if (s.client !== client || !client.connected) return;
  const { deviceId } = s.identity;
  const reading = telemetryOf(s.options.model, Date.now(), s.random);
  const payload = JSON.stringify(reading);
  s.bytesOut += payload.length;
  s.packetsOut += 1;
  client.publish(topics.telemetry(deviceId), payload, { qos: 1 }, (err) => {
    if (!err) s.telemetrySent += 1;
  });
  if (s.telemetryCount++ % METRICS_EVERY === 0) publishMetrics(s, { client, reading });
  const next = s.options.telemetryIntervalMs * (0.8 + 0.4 * s.random());
  s.telemetryTimer = setTimeout(() => publishTelemetry(s, client), next);
}

/** The device's own view of itself (`devices/{id}/metrics`): its traffic and its readings as custom metrics. */
function publishMetrics(s: State, at: { client: MqttClient; reading: Record<string, number> }): void {
  const custom: Record<string, number> = {};
  for (const field of s.options.model.fields) custom[field.name] = at.reading[field.name] ?? 0;
  const report: DeviceMetricsReport = {
    ts: Date.now(),
    listeningTcpPorts: [],
    establishedConnections: 1,
    bytesOut: s.bytesOut,
    packetsOut: s.packetsOut,
    custom,
  };
  s.bytesOut = 0;
  s.packetsOut = 0;
  at.client.publish(topics.metrics(s.identity.deviceId), JSON.stringify(report), { qos: 0 });
}

/** The SDK's firmware agent, command router (built-in commands) and security reporter, over this device. */
function createParts(s: State): Parts {
  const firmware = createFirmwareAgent({
    options: { hardwareId: s.options.model.hardwareId, factory: s.options.model.firmware },
    dir: s.options.dir,
    identity: () => s.identity,
    client: () => s.client,
    onStatus: () => undefined,
    onError: (err) => {
      if (s.client?.connected) fail(s)(err); // else a publish the closing session cut short
    },
  });
  const router = createCommandRouter({
    deviceId: () => s.identity.deviceId,
    handlers: builtinCommands({
      deviceId: () => s.identity.deviceId,
      now: () => Date.now(),
      startedAt: s.startedAt,
      certificate: () => s.certificate,
      connectedSince: () => s.connectedAt,
      firmware: () => firmware.installer.current(),
    }),
    publish: async (topic, payload) => {
      const client = s.client;
      // A result that cannot be sent now is dropped: the server's command times out, as for a device offline.
      if (client?.connected) await client.publishAsync(topic, payload, { qos: 1 }).catch(failOn(s, client));
    },
    onError: fail(s),
  });
  const reporter = createSecurityReporter({
    dir: s.options.dir,
    identity: () => s.identity,
    client: () => s.client,
    now: () => Date.now(),
  });
  return { firmware, router, reporter };
}

/** Renews the certificate first when it is due, as the agent does at start (EST simplereenroll). */
async function renewIfDue(s: State): Promise<void> {
  if (!renewalDue(s.certificate, Date.now())) return;
  try {
    s.identity = await renewIdentity(s.identity, { store: openIdentityStore(s.options.dir) });
    s.certificate = certificateInfo(s.identity.certPem);
  } catch (err) {
    fail(s)(new Error(`certificate renewal failed: ${asError(err).message}`, { cause: err }));
  }
}

async function stopDevice(s: State): Promise<void> {
  s.stopped = true;
  clearSessionTimers(s);
  clearTimeout(s.reconnectTimer);
  await s.parts?.firmware.idle();
  s.parts?.router.close();
  const client = s.client;
  s.client = undefined;
  if (!client) return;
  if (!client.connected) {
    client.end(true);
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.endAsync(false).catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, STOP_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * Loads the identity in `dir` and runs the device: connects over mutual TLS and reconnects with backoff
 * (reset only after a session that lasted, so a device the broker keeps closing, quarantined or banned,
 * slows down to a try a minute), heartbeats, telemetry with a daily rhythm, metrics, commands and firmware.
 * Resolves once the identity is loaded; connecting happens in the background.
 */
export async function startSimDevice(options: SimDeviceOptions): Promise<SimDevice> {
  const identity = await openIdentityStore(options.dir).load();
  const s: State = {
    options,
    random: options.random ?? Math.random,
    mqttUrl: parseMqttUrl(options.mqttUrl),
    backoff: createBackoff({ initialMs: 1_000, maxMs: 60_000 }),
    startedAt: Date.now(),
    identity,
    certificate: certificateInfo(identity.certPem),
    parts: undefined,
    client: undefined,
    connectedAt: null,
    stopped: false,
    heartbeatSeq: 0,
    telemetrySent: 0,
    telemetryCount: 0,
    bytesOut: 0,
    packetsOut: 0,
    healthAt: 0,
    heartbeatTimer: undefined,
    telemetryTimer: undefined,
    reconnectTimer: undefined,
  };
  const { firmware, reporter } = (s.parts = createParts(s));
  await renewIfDue(s);
  connect(s);
  let stopping: Promise<void> | undefined;
  return {
    deviceId: identity.deviceId,
    dir: options.dir,
    model: options.model,
    get connected() {
      return s.client?.connected ?? false;
    },
    session: () => (s.client?.connected ? s.client : undefined),
    reporter,
    installed: () => firmware.installer.current(),
    get telemetrySent() {
      return s.telemetrySent;
    },
    stop() {
      stopping ??= stopDevice(s);
      return stopping;
    },
  };
}
