import mqtt from 'mqtt';
import { BulwarkError, topics, type FirmwareStatus, type Heartbeat } from '@bulwark/protocol';
import { createBackoff, type BackoffOptions } from './backoff.ts';
import { certificateInfo, type CertificateInfo } from './certificate.ts';
import { createFirmwareAgent, type AgentFirmwareOptions, type FirmwareAgent } from './firmware-agent.ts';
import { buildHeartbeat } from './heartbeat.ts';
import { openIdentityStore, type DeviceIdentity } from './identity-store.ts';
import { DEFAULT_RENEW_THRESHOLD, renewIdentity, renewalDue } from './renewal.ts';
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
}

/** A running device agent. */
export interface Agent {
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
  const heartbeatIntervalMs = positive(
    'heartbeatIntervalMs',
    options.heartbeatIntervalMs,
    defaults.heartbeatIntervalMs,
  );
  const renewCheckIntervalMs = positive(
    'renewCheckIntervalMs',
    options.renewCheckIntervalMs,
    defaults.renewCheckIntervalMs,
  );
  const connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, defaults.connectTimeoutMs);
  const keepaliveS = positive('keepaliveS', options.keepaliveS, defaults.keepaliveS);
  const renewThreshold = options.renewThreshold ?? DEFAULT_RENEW_THRESHOLD;
  if (!(renewThreshold > 0 && renewThreshold < 1)) {
    throw new BulwarkError('validation_failed', 'renewThreshold must be between 0 and 1');
  }
  const clock = options.clock ?? systemClock;
  const backoff = createBackoff(options.backoff, options.random);

  const store = openIdentityStore(options.dir);
  let identity: DeviceIdentity = await store.load();
  let certificate = certificateInfo(identity.certPem);
  const mqttUrl = parseMqttUrl(options.mqttUrl ?? identity.mqttUrl ?? defaultMqttUrl(identity.serverUrl));

  const listeners = new Map<AgentEvent, Set<(payload: never) => void>>();
  let client: mqtt.MqttClient | undefined;
  /** False until the first connection attempt, so a renewal at start does not connect twice. */
  let running = false;
  let stopped = false;
  let stopping: Promise<void> | undefined;
  let renewal: Promise<CertificateInfo> | undefined;
  /** The old connection closing after a renewal, before the new one opens. */
  let swapping: Promise<void> | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let seq = 0;
  const startedAt = clock.now();
  const firmware =
    options.firmware &&
    createFirmwareAgent({
      options: options.firmware,
      dir: options.dir,
      identity: () => identity,
      client: () => client,
      onStatus: (status) => emit('firmware', status),
      onError: (err) => emit('error', err),
    });

  function emit<E extends AgentEvent>(event: E, payload: AgentEvents[E]): void {
    for (const listener of listeners.get(event) ?? []) {
      try {
        (listener as (payload: AgentEvents[E]) => void)(payload);
      } catch (err) {
        // A faulty listener must not break the connection loop; report it unless it is the error
        // listener itself (which would recurse).
        if (event !== 'error') emit('error', asError(err));
      }
    }
  }

  function on<E extends AgentEvent>(event: E, listener: (payload: AgentEvents[E]) => void): () => void {
    let set = listeners.get(event);
    if (set === undefined) listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  function connect(): void {
    let current: mqtt.MqttClient;
    try {
      current = mqtt.connect(mqttUrl, {
        protocolVersion: 4,
        clientId: identity.deviceId,
        clean: true,
        key: identity.keyPem,
        cert: identity.certPem,
        ca: identity.caPem,
        rejectUnauthorized: true,
        // mqtt.js would retry at a fixed period; we retry ourselves with exponential backoff.
        reconnectPeriod: 0,
        connectTimeout: connectTimeoutMs,
        keepalive: keepaliveS,
      });
    } catch (err) {
      emit('error', asError(err));
      scheduleReconnect();
      return;
    }
    client = current;
    let sessionUp = false;
    let lastError: Error | undefined;

    current.on('connect', () => {
      if (client !== current) return;
      sessionUp = true;
      backoff.reset();
      emit('connected', { url: mqttUrl, clientId: identity.deviceId, certificate });
      publishHeartbeat(current);
      heartbeatTimer = setInterval(() => publishHeartbeat(current), heartbeatIntervalMs);
      firmware?.onConnect(current);
    });
    current.on('message', (topic, payload) => {
      if (client === current) firmware?.onMessage(topic, payload);
    });
    current.on('error', (err) => {
      lastError = err;
      if (client === current) emit('error', describeConnectionError(err));
    });
    current.on('close', () => {
      // Ends this client's resources; with reconnectPeriod 0 it would not reconnect anyway.
      current.end(true);
      if (client !== current) return; // replaced after renewal, or stopped
      client = undefined;
      clearInterval(heartbeatTimer);
      if (sessionUp) emit('disconnected', { reason: 'lost', error: lastError });
      if (!stopped) scheduleReconnect();
    });
  }

  function scheduleReconnect(): void {
    const delayMs = backoff.next();
    emit('reconnecting', { attempt: backoff.attempts, delayMs });
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (!stopped) connect();
    }, delayMs);
  }

  function publishHeartbeat(current: mqtt.MqttClient): void {
    let beat: Heartbeat;
    try {
      beat = buildHeartbeat({ seq: seq++, startedAt, now: clock.now(), certNotAfter: certificate.notAfter });
    } catch (err) {
      emit('error', asError(err));
      return;
    }
    current.publish(topics.heartbeat(identity.deviceId), JSON.stringify(beat), { qos: 1 }, (err) => {
      if (err === undefined || err === null) emit('heartbeat', beat);
      // A publish cut short by a lost connection is reported by `disconnected`, not as an error.
      else if (client === current && current.connected) emit('error', err);
    });
  }

  /** Swaps the connection for one with the renewed identity, without waiting for backoff. */
  function reconnectWithNewIdentity(): void {
    if (!running || stopped) return;
    const previous = client;
    client = undefined;
    clearInterval(heartbeatTimer);
    clearTimeout(reconnectTimer);
    reconnectTimer = undefined;
    backoff.reset();
    if (previous?.connected) {
      emit('disconnected', { reason: 'renewal' });
      swapping = closeClient(previous, true).then(() => {
        swapping = undefined;
        if (!stopped && client === undefined) connect();
      });
    } else {
      previous?.end(true);
      connect();
    }
  }

  function renew(): Promise<CertificateInfo> {
    renewal ??= (async () => {
      const previous = certificate;
      identity = await renewIdentity(identity, { store });
      certificate = certificateInfo(identity.certPem);
      emit('renewed', { certificate, previous });
      reconnectWithNewIdentity();
      return certificate;
    })().finally(() => {
      renewal = undefined;
    });
    return renewal;
  }

  async function renewIfDue(): Promise<void> {
    if (stopped || !renewalDue(certificate, clock.now(), renewThreshold)) return;
    try {
      await renew();
    } catch (err) {
      // Retried at the next check; the current certificate stays in use until then.
      emit('error', new Error(`certificate renewal failed: ${asError(err).message}`, { cause: err }));
    }
  }

  /**
   * Next check: when renewal becomes due, or after `renewCheckIntervalMs` if sooner. The periodic
   * check retries a failed renewal and catches clock jumps (a device without a real-time clock
   * often learns the time from NTP only after it has started).
   */
  function scheduleRenewalCheck(): void {
    clearTimeout(renewTimer);
    if (stopped) return;
    const lifetime = certificate.notAfter - certificate.notBefore;
    const untilDue = certificate.notAfter - lifetime * renewThreshold - clock.now();
    const delay = untilDue >= 0 ? Math.min(renewCheckIntervalMs, untilDue + 1) : renewCheckIntervalMs;
    renewTimer = setTimeout(
      () => void renewIfDue().then(scheduleRenewalCheck),
      Math.min(delay, MAX_TIMER_MS),
    );
  }

  // Renew first if due at start, so the agent does not connect only to reconnect right after.
  void renewIfDue().then(() => {
    scheduleRenewalCheck();
    if (stopped) return;
    running = true;
    connect();
  });

  return {
    deviceId: identity.deviceId,
    mqttUrl,
    get connected() {
      return client?.connected ?? false;
    },
    get certificate() {
      return certificate;
    },
    on,
    waitFor(event, { timeoutMs = 30_000, filter } = {}) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          reject(new Error(`no "${event}" event within ${timeoutMs} ms`));
        }, timeoutMs);
        const off = on(event, (payload) => {
          if (filter !== undefined && !filter(payload)) return;
          clearTimeout(timer);
          off();
          resolve(payload);
        });
      });
    },
    renewNow: () => renew(),
    firmware,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearTimeout(renewTimer);
        clearInterval(heartbeatTimer);
        clearTimeout(reconnectTimer);
        await renewal?.catch(() => undefined);
        await firmware?.idle();
        await swapping;
        const current = client;
        client = undefined;
        if (current === undefined) return;
        const wasConnected = current.connected;
        await closeClient(current, wasConnected);
        if (wasConnected) emit('disconnected', { reason: 'stopped' });
      })();
      return stopping;
    },
  };
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

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
