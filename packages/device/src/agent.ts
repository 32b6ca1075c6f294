import mqtt from 'mqtt';
import { BulwarkError, topics, type FirmwareStatus, type Heartbeat } from '@bulwark/protocol';
import { createAgentCommands, type AgentCommands } from './agent-commands.ts';
import { scheduleAttestation, type AttestOutcome, type AttestSchedule } from './attest.ts';
import { createBackoff, type Backoff, type BackoffOptions } from './backoff.ts';
import { certificateInfo, type CertificateInfo } from './certificate.ts';
import type { CommandHandler, CommandOutcome } from './commands.ts';
import { createFirmwareAgent, type AgentFirmwareOptions, type FirmwareAgent } from './firmware-agent.ts';
import { buildHeartbeat } from './heartbeat.ts';
import { asError, createEmitter, type Emitter } from './emitter.ts';
import { openIdentityStore, type DeviceIdentity, type IdentityStore } from './identity-store.ts';
import { DEFAULT_RENEW_THRESHOLD, renewIdentity, renewalDue } from './renewal.ts';
import { createSecurityReporter, type SecurityReporter } from './security-reports.ts';
import type { Tpm } from './tpm.ts';
import { defaultMqttUrl, parseMqttUrl } from './urls.ts';

/** Source of the current time, epoch ms. */
export interface Clock {
  now(): number;
}

/** Why a connected session ended. */
export type DisconnectReason = 'lost' | 'renewal' | 'stopped';

/** What an {@link Agent} reports, by event name. */
export interface AgentEvents {
  /** The broker accepted the CONNECT (CONNACK 0). */
  connected: { readonly url: string; readonly clientId: string; readonly certificate: CertificateInfo };
  /** A connected session ended. `lost` sessions are retried with backoff. */
  disconnected: { readonly reason: DisconnectReason; readonly error?: Error | undefined };
  /** The next connection attempt is scheduled in `delayMs`; `attempt` counts failures since the last success. */
  reconnecting: { readonly attempt: number; readonly delayMs: number };
  /** A heartbeat was published and acknowledged (PUBACK). */
  heartbeat: Heartbeat;
  /** A new key and certificate are stored; the agent reconnects with them. */
  renewed: { readonly certificate: CertificateInfo; readonly previous: CertificateInfo };
  /** A firmware update step (also published on `devices/{id}/firmware/status`). */
  firmware: FirmwareStatus;
  /** A command was answered (its result published on `devices/{id}/commands/{name}/result`). */
  command: CommandOutcome;
  /** A TPM attestation verdict (with `attestation` options). */
  attestation: AttestOutcome;
  /** Something failed; the agent keeps running and retries. Never thrown, only reported. */
  error: Error;
}
export type AgentEvent = keyof AgentEvents;

export interface AgentOptions {
  /** Identity directory written by `enrollDevice`. */
  readonly dir: string;
  /** Broker URL; default: `mqttUrl` from identity.json, else the EST server host on port 8883. */
  readonly mqttUrl?: string | undefined;
  /** Default 30 s. */
  readonly heartbeatIntervalMs?: number | undefined;
  /**
   * Longest time between two renewal checks. Renewal is also scheduled for the moment it becomes
   * due; this interval bounds retries after a failure and how late a clock jump is noticed. Default 1 h.
   */
  readonly renewCheckIntervalMs?: number | undefined;
  /** Renew when less than this fraction of the certificate lifetime remains. Default 1/3. */
  readonly renewThreshold?: number | undefined;
  /** Reconnect backoff; default 1 s doubling to 60 s with jitter. */
  readonly backoff?: Partial<BackoffOptions> | undefined;
  /** MQTT CONNECT timeout. Default 30 s. */
  readonly connectTimeoutMs?: number | undefined;
  /** MQTT keepalive. Default 60 s. */
  readonly keepaliveS?: number | undefined;
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter, [0, 1). */
  readonly random?: (() => number) | undefined;
  /** Firmware updates over TUF (off unless given): commands on `devices/{id}/firmware/command`. */
  readonly firmware?: AgentFirmwareOptions | undefined;
  /**
   * Command handlers by name (commands on `devices/{id}/commands/{name}`), besides the built-ins `ping`,
   * `report-state` and `reboot`; a handler named like a built-in replaces it.
   */
  readonly commands?: Readonly<Record<string, CommandHandler>> | undefined;
  /** What the `reboot` command runs, after its result is sent. Without it, `reboot` is refused. */
  readonly reboot?: (() => void | Promise<void>) | undefined;
  /** TPM 2.0 remote attestation over HTTPS (off unless given): now, then every `everyMs`. */
  readonly attestation?: { readonly tpm: Tpm; readonly everyMs: number } | undefined;
}

/** A running device agent; `reportTamper`/`reportHealth` sign and publish over its connection. */
export interface Agent extends SecurityReporter {
  readonly deviceId: string;
  readonly mqttUrl: string;
  /** True while a session with the broker is up. */
  readonly connected: boolean;
  /** The certificate in use. */
  readonly certificate: CertificateInfo;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends AgentEvent>(event: E, listener: (payload: AgentEvents[E]) => void): () => void;
  /** Resolves with the next `event` whose payload passes `filter`; rejects after `timeoutMs` (default 30 s). */
  waitFor<E extends AgentEvent>(
    event: E,
    options?: { timeoutMs?: number; filter?: (payload: AgentEvents[E]) => boolean },
  ): Promise<AgentEvents[E]>;
  /** Renews now, whatever the remaining lifetime; resolves with the new certificate. */
  renewNow(): Promise<CertificateInfo>;
  /** The firmware side, when `firmware` was given. */
  readonly firmware: FirmwareAgent | undefined;
  /** Adds or replaces the handler of command `name` (see {@link AgentOptions.commands}); returns its removal. */
  onCommand(name: string, handler: CommandHandler): () => void;
  /** Disconnects (MQTT DISCONNECT), cancels timers and waits for a renewal in progress. */
  stop(): Promise<void>;
}

const defaults = {
  heartbeatIntervalMs: 30_000,
  renewCheckIntervalMs: 60 * 60_000,
  connectTimeoutMs: 30_000,
  keepaliveS: 60,
  /** A graceful DISCONNECT that has not completed by then is cut short. */
  stopTimeoutMs: 2_000,
} as const;

/** setTimeout fires at once for delays above 2^31 - 1 ms (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const systemClock: Clock = { now: () => Date.now() };

interface Settings {
  heartbeatIntervalMs: number;
  renewCheckIntervalMs: number;
  connectTimeoutMs: number;
  keepaliveS: number;
  renewThreshold: number;
}

function settingsOf(options: AgentOptions): Settings {
  const renewThreshold = options.renewThreshold ?? DEFAULT_RENEW_THRESHOLD;
  if (!(renewThreshold > 0 && renewThreshold < 1)) {
    throw new BulwarkError('validation_failed', 'renewThreshold must be between 0 and 1');
  }
  return {
    heartbeatIntervalMs: positive(
      'heartbeatIntervalMs',
      options.heartbeatIntervalMs,
      defaults.heartbeatIntervalMs,
    ),
    renewCheckIntervalMs: positive(
      'renewCheckIntervalMs',
      options.renewCheckIntervalMs,
      defaults.renewCheckIntervalMs,
    ),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, defaults.connectTimeoutMs),
    keepaliveS: positive('keepaliveS', options.keepaliveS, defaults.keepaliveS),
    renewThreshold,
  };
}

/** The agent's state, shared by the functions below. */
interface State {
  readonly settings: Settings;
  readonly clock: Clock;
  readonly backoff: Backoff;
  readonly store: IdentityStore;
  readonly mqttUrl: string;
  readonly events: Emitter<AgentEvents>;
  readonly startedAt: number;
  firmware: FirmwareAgent | undefined;
  commands: AgentCommands | undefined;
  identity: DeviceIdentity;
  certificate: CertificateInfo;
  client: mqtt.MqttClient | undefined;
  /** When the current session started (CONNACK), epoch ms. */
  connectedAt: number | null;
  /** False until the first connection attempt, so a renewal at start does not connect twice. */
  running: boolean;
  stopped: boolean;
  renewal: Promise<CertificateInfo> | undefined;
  /** The old connection closing after a renewal, before the new one opens. */
  swapping: Promise<void> | undefined;
  reconnectTimer: NodeJS.Timeout | undefined;
  heartbeatTimer: NodeJS.Timeout | undefined;
  renewTimer: NodeJS.Timeout | undefined;
  seq: number;
}

function openClient(s: State): mqtt.MqttClient {
  return mqtt.connect(s.mqttUrl, {
    protocolVersion: 4,
    clientId: s.identity.deviceId,
    clean: true,
    key: s.identity.keyPem,
    cert: s.identity.certPem,
    ca: s.identity.caPem,
    rejectUnauthorized: true,
    // mqtt.js would retry at a fixed period; we retry ourselves with exponential backoff.
    reconnectPeriod: 0,
    connectTimeout: s.settings.connectTimeoutMs,
    keepalive: s.settings.keepaliveS,
  });
}

function connect(s: State): void {
  let current: mqtt.MqttClient;
  try {
    current = openClient(s);
  } catch (err) {
    s.events.emit('error', asError(err));
    scheduleReconnect(s);
    return;
  }
  s.client = current;
  let sessionUp = false;
  let lastError: Error | undefined;

  current.on('connect', () => {
    if (s.client !== current) return;
    sessionUp = true;
    s.connectedAt = s.clock.now();
    s.backoff.reset();
    s.events.emit('connected', { url: s.mqttUrl, clientId: s.identity.deviceId, certificate: s.certificate });
    publishHeartbeat(s, current);
    s.heartbeatTimer = setInterval(() => publishHeartbeat(s, current), s.settings.heartbeatIntervalMs);
    s.firmware?.onConnect(current);
    s.commands?.onConnect(current);
  });
  current.on('message', (topic, payload, packet) => {
    if (s.client !== current) return;
    if (s.firmware?.onMessage(topic, payload) !== true) s.commands?.onMessage(topic, payload, packet);
  });
  current.on('error', (err) => {
    lastError = err;
    if (s.client === current) s.events.emit('error', describeConnectionError(err));
  });
  current.on('close', () => {
    // Ends this client's resources; with reconnectPeriod 0 it would not reconnect anyway.
    current.end(true);
    if (s.client !== current) return; // replaced after renewal, or stopped
    s.client = undefined;
    s.connectedAt = null;
    clearInterval(s.heartbeatTimer);
    if (sessionUp) s.events.emit('disconnected', { reason: 'lost', error: lastError });
    if (!s.stopped) scheduleReconnect(s);
  });
}

function scheduleReconnect(s: State): void {
  const delayMs = s.backoff.next();
  s.events.emit('reconnecting', { attempt: s.backoff.attempts, delayMs });
  s.reconnectTimer = setTimeout(() => {
    s.reconnectTimer = undefined;
    if (!s.stopped) connect(s);
  }, delayMs);
}

function publishHeartbeat(s: State, current: mqtt.MqttClient): void {
  let beat: Heartbeat;
  try {
    beat = buildHeartbeat({
      seq: s.seq++,
      startedAt: s.startedAt,
      now: s.clock.now(),
      certNotAfter: s.certificate.notAfter,
    });
  } catch (err) {
    s.events.emit('error', asError(err));
    return;
  }
  current.publish(topics.heartbeat(s.identity.deviceId), JSON.stringify(beat), { qos: 1 }, (err) => {
    if (err === undefined || err === null) s.events.emit('heartbeat', beat);
    // A publish cut short by a lost connection is reported by `disconnected`, not as an error.
    else if (s.client === current && current.connected) s.events.emit('error', err);
  });
}

/** Swaps the connection for one with the renewed identity, without waiting for backoff. */
function reconnectWithNewIdentity(s: State): void {
  if (!s.running || s.stopped) return;
  const previous = s.client;
  s.client = undefined;
  clearInterval(s.heartbeatTimer);
  clearTimeout(s.reconnectTimer);
  s.reconnectTimer = undefined;
  s.backoff.reset();
  if (previous?.connected) {
    s.events.emit('disconnected', { reason: 'renewal' });
    s.swapping = closeClient(previous, true).then(() => {
      s.swapping = undefined;
      if (!s.stopped && s.client === undefined) connect(s);
    });
  } else {
    previous?.end(true);
    connect(s);
  }
}

function renew(s: State): Promise<CertificateInfo> {
  s.renewal ??= (async () => {
    const previous = s.certificate;
    s.identity = await renewIdentity(s.identity, { store: s.store });
    s.certificate = certificateInfo(s.identity.certPem);
    s.events.emit('renewed', { certificate: s.certificate, previous });
    reconnectWithNewIdentity(s);
    return s.certificate;
  })().finally(() => {
    s.renewal = undefined;
  });
  return s.renewal;
}

async function renewIfDue(s: State): Promise<void> {
  if (s.stopped || !renewalDue(s.certificate, s.clock.now(), s.settings.renewThreshold)) return;
  try {
    await renew(s);
  } catch (err) {
    // Retried at the next check; the current certificate stays in use until then.
    s.events.emit('error', new Error(`certificate renewal failed: ${asError(err).message}`, { cause: err }));
  }
}

/**
 * Next check: when renewal becomes due, or after `renewCheckIntervalMs` if sooner. The periodic
 * check retries a failed renewal and catches clock jumps (a device without a real-time clock
 * often learns the time from NTP only after it has started).
 */
function scheduleRenewalCheck(s: State): void {
  clearTimeout(s.renewTimer);
  if (s.stopped) return;
  const { certificate } = s;
  const { renewCheckIntervalMs, renewThreshold } = s.settings;
  const lifetime = certificate.notAfter - certificate.notBefore;
  const untilDue = certificate.notAfter - lifetime * renewThreshold - s.clock.now();
  const delay = untilDue >= 0 ? Math.min(renewCheckIntervalMs, untilDue + 1) : renewCheckIntervalMs;
  s.renewTimer = setTimeout(
    () => void renewIfDue(s).then(() => scheduleRenewalCheck(s)),
    Math.min(delay, MAX_TIMER_MS),
  );
}

async function stopAgent(s: State): Promise<void> {
  s.stopped = true;
  clearTimeout(s.renewTimer);
  clearInterval(s.heartbeatTimer);
  clearTimeout(s.reconnectTimer);
  await s.renewal?.catch(() => undefined);
  await s.firmware?.idle();
  await s.commands?.stop();
  await s.swapping;
  const current = s.client;
  s.client = undefined;
  if (current === undefined) return;
  const wasConnected = current.connected;
  await closeClient(current, wasConnected);
  if (wasConnected) s.events.emit('disconnected', { reason: 'stopped' });
}

/**
 * Loads the identity in `dir`, then connects to the broker with the device certificate (mutual
 * TLS), publishes heartbeats, reconnects with exponential backoff and renews the certificate
 * before it expires. Resolves once the identity is loaded; connecting happens in the background,
 * so subscribe to events right after the `await`.
 *
 * @example
 * ```ts
 * const agent = await startAgent({ dir: '/var/lib/bulwark', mqttUrl: 'mqtts://localhost:18883' });
 * agent.on('connected', ({ url }) => console.log(`connected to ${url}`));
 * agent.on('error', (err) => console.error(err.message));
 * await agent.waitFor('heartbeat');
 * await agent.stop();
 * ```
 */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const settings = settingsOf(options);
  const clock = options.clock ?? systemClock;
  const store = openIdentityStore(options.dir);
  const identity = await store.load();
  const s: State = {
    settings,
    clock,
    backoff: createBackoff(options.backoff, options.random),
    store,
    mqttUrl: parseMqttUrl(options.mqttUrl ?? identity.mqttUrl ?? defaultMqttUrl(identity.serverUrl)),
    events: createEmitter<AgentEvents>(),
    startedAt: clock.now(),
    firmware: undefined,
    commands: undefined,
    identity,
    certificate: certificateInfo(identity.certPem),
    client: undefined,
    connectedAt: null,
    running: false,
    stopped: false,
    renewal: undefined,
    swapping: undefined,
    reconnectTimer: undefined,
    heartbeatTimer: undefined,
    renewTimer: undefined,
    seq: 0,
  };
  s.firmware =
    options.firmware &&
    createFirmwareAgent({
      options: options.firmware,
      dir: options.dir,
      identity: () => s.identity,
      client: () => s.client,
      onStatus: (status) => s.events.emit('firmware', status),
      onError: (err) => s.events.emit('error', err),
    });
  const commands = commandsOf(s, options);
  s.commands = commands;
  const reporter = createSecurityReporter({
    dir: options.dir,
    identity: () => s.identity,
    client: () => s.client,
    now: () => s.clock.now(),
  });
  const attestation = attestationOf(s, options);

  // Renew first if due at start, so the agent does not connect only to reconnect right after.
  void renewIfDue(s).then(() => {
    scheduleRenewalCheck(s);
    if (s.stopped) return;
    s.running = true;
    connect(s);
  });

  let stopping: Promise<void> | undefined;
  return {
    deviceId: identity.deviceId,
    mqttUrl: s.mqttUrl,
    get connected() {
      return s.client?.connected ?? false;
    },
    get certificate() {
      return s.certificate;
    },
    on: s.events.on,
    waitFor: s.events.waitFor,
    renewNow: () => renew(s),
    firmware: s.firmware,
    onCommand: commands.router.register,
    reportTamper: reporter.reportTamper,
    reportHealth: reporter.reportHealth,
    stop() {
      stopping ??= (attestation?.stop() ?? Promise.resolve()).then(() => stopAgent(s));
      return stopping;
    },
  };
}

/** The built-in commands read the agent's state; the device's handlers come from `options.commands`. */
function commandsOf(s: State, options: AgentOptions): AgentCommands {
  const { firmware } = s;
  return createAgentCommands({
    view: {
      deviceId: () => s.identity.deviceId,
      now: () => s.clock.now(),
      startedAt: s.startedAt,
      certificate: () => s.certificate,
      connectedSince: () => s.connectedAt,
      firmware: firmware && (() => firmware.installer.current()),
      reboot: options.reboot,
    },
    handlers: options.commands,
    client: () => s.client,
    onResult: (outcome) => s.events.emit('command', outcome),
    onError: (err) => s.events.emit('error', err),
  });
}

/** Attestation runs over HTTPS, beside the MQTT session: a device held by attestation can still attest. */
function attestationOf(s: State, options: AgentOptions): AttestSchedule | undefined {
  if (options.attestation === undefined) return undefined;
  return scheduleAttestation({
    dir: options.dir,
    tpm: options.attestation.tpm,
    everyMs: options.attestation.everyMs,
    identity: () => s.identity,
    now: () => s.clock.now(),
    onResult: (outcome) => s.events.emit('attestation', outcome),
    onError: (err) => s.events.emit('error', new Error(`attestation failed: ${err.message}`, { cause: err })),
  });
}

/** DISCONNECT politely when connected, but never hang on a dead link. */
async function closeClient(client: mqtt.MqttClient, graceful: boolean): Promise<void> {
  if (!graceful) {
    await client.endAsync(true);
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const cutShort = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      client.stream.destroy();
      resolve();
    }, defaults.stopTimeoutMs);
  });
  await Promise.race([client.endAsync(false).catch(() => undefined), cutShort]);
  clearTimeout(timer);
}

function describeConnectionError(err: Error & { code?: unknown }): Error {
  // CONNACK return codes (MQTT 3.1.1 §3.2.2.3): 5 is how the broker refuses a revoked or unknown device.
  if (err.code === 5) {
    return new Error(`broker refused the connection (not authorized): ${err.message}`, { cause: err });
  }
  return err;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback;
  if (!(Number.isFinite(result) && result > 0)) {
    throw new BulwarkError('validation_failed', `${name} must be a positive number`);
  }
  return result;
}
