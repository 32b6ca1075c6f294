import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from './duration.ts';

const port = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be an integer')
  .min(0, 'must be between 0 and 65535 (0 = ephemeral)')
  .max(65535, 'must be between 0 and 65535 (0 = ephemeral)');

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'must be a positive duration such as 90s, 15m, 24h or 7d' });
    return z.NEVER;
  }
  return ms;
});

/** A duration in whole seconds (the unit MQTT counts these in), within the protocol's bounds. */
const seconds = (bounds: { min: number; max: number }) =>
  duration.transform((ms, ctx) => {
    const sec = ms / 1000;
    if (!Number.isInteger(sec) || sec < bounds.min || sec > bounds.max) {
      ctx.addIssue({
        code: 'custom',
        message: `must be whole seconds between ${bounds.min} s and ${bounds.max} s, such as 60s, 15m or 7d`,
      });
      return z.NEVER;
    }
    return sec;
  });

const byteUnits: Record<string, number> = {
  '': 1,
  k: 1e3,
  kib: 1024,
  m: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gib: 1024 ** 3,
};
const byteSize = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const match = typeof value === 'number' ? null : /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = byteUnits[match?.[2]?.toLowerCase() ?? ''];
  const bytes = typeof value === 'number' ? value : match && unit ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a positive size in bytes, or with a unit: 512MiB, 2GiB',
    });
    return z.NEVER;
  }
  return bytes;
});

const hostList = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((h) => h.trim()).filter(Boolean))
  .pipe(
    z.array(
      z.string().regex(/^[A-Za-z0-9.*:-]{1,253}$/, 'must be host names or IP addresses separated by commas'),
    ),
  );

const schema = z
  .object({
    dataDir: z.string().min(1, 'must not be empty'),
    database: z
      .object({
        url: z
          .string()
          .regex(
            /^postgres(ql)?:\/\//,
            'must be a postgres:// URL (leave unset for the embedded SQLite store)',
          )
          .optional(),
      })
      .strict()
      .default({}),
    masterKey: z
      .string()
      .regex(/^(?:[0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)$/, 'must be 32 bytes as 64 hex characters or base64')
      .optional(),
    bind: z.string().min(1).optional(),
    mqtt: z
      .object({
        port: port.default(8883),
        /** A TLS handshake not finished in this time is closed (stalled ClientHellos, bare TCP connections). */
        handshakeTimeout: duration.default(10_000),
        /** A connection whose CONNECT has not arrived in this time (after the handshake) is closed. */
        connectTimeout: duration.default(10_000),
        /**
         * Largest CONNECT packet (client id, Will, credentials), refused at its fixed header. Other packets are
         * bounded by firewall.maxPayloadBytes plus the longest topic.
         */
        maxConnectSize: byteSize.default(16 * 1024),
        /**
         * TLS clients without a certificate may authenticate as an app with its credentials (MQTT user name =
         * app name, password = an app token). Off: such clients are refused at the handshake, as before.
         */
        appPasswords: z.boolean().default(true),
        /** Bytes an app connection may hold unsent; beyond, messages to it are dropped and counted. */
        appQueueSize: byteSize.default(8 * 1024 * 1024),
        /**
         * QoS 1 and 2 PUBLISHes a client may have unacknowledged at the server (MQTT 5 Receive Maximum, sent
         * in the CONNACK; a client over it is disconnected with 0x93).
         */
        receiveMaximum: z.coerce
          .number({ error: 'must be a number' })
          .int('must be an integer')
          .min(1, 'must be between 1 and 65535 (MQTT 5 Receive Maximum)')
          .max(65_535, 'must be between 1 and 65535 (MQTT 5 Receive Maximum)')
          .default(100),
        /**
         * Messages waiting for one client (offline, or behind its in-flight window); beyond, they are dropped
         * and counted (`mqtt.delivery_dropped`).
         */
        maxQueuedMessages: z.coerce
          .number({ error: 'must be a number' })
          .int('must be an integer')
          .min(1, 'must be between 1 and 1000000')
          .max(1_000_000, 'must be between 1 and 1000000')
          .default(1000),
        /**
         * The longest a persistent session (3.1.1 clean session 0, MQTT 5 session expiry) is kept offline; a
         * longer session expiry a client asks for is cut to this.
         */
        maxSessionExpiry: seconds({ min: 1, max: 0xfffffffe }).default(7 * 86_400),
        /** Topic aliases an MQTT 5 client may use towards the server (0: none). */
        topicAliasMaximum: z.coerce
          .number({ error: 'must be a number' })
          .int('must be an integer')
          .min(0, 'must be between 0 and 65535 (0: no topic aliases)')
          .max(65_535, 'must be between 0 and 65535 (0: no topic aliases)')
          .default(16),
        /**
         * The longest keep alive granted: a client asking for more (or for none, 0) is told this one (MQTT 5
         * Server Keep Alive). Unset: the client's own keep alive.
         */
        maxKeepAlive: seconds({ min: 1, max: 65_535 }).optional(),
        /**
         * For development and protocol-conformance testing only: a plaintext listener without
         * authentication (the client id is the identity, policy group `anonymous`). Never on by default;
         * setting its port (file, BULWARK_MQTT_DEV_PORT or --mqtt-dev-port) is the explicit choice.
         */
        devListener: z
          .object({
            port,
            authentication: z
              .literal('none', {
                error: 'must be "none": this listener has no authentication',
              })
              .default('none'),
          })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    https: z
      .object({
        port: port.default(8443),
        /**
         * The mutual-TLS device listener, for what devices authenticate to with their certificate (EST
         * simplereenroll, the TUF firmware repository): the only one that asks clients for a certificate, so
         * browsers on the main port are never prompted (TLS 1.3 cannot ask per route).
         */
        devicePort: port.default(8444),
        /** A TLS handshake not finished in this time is closed (stalled or slow-loris clients). */
        handshakeTimeout: duration.default(10_000),
      })
      .strict()
      .prefault({}),
    pki: z
      .object({
        hostnames: hostList.default([]),
        deviceCertValidity: duration.default(90 * 86_400_000),
        enrollmentTokenTtl: duration.default(86_400_000),
      })
      .strict()
      .default({ hostnames: [], deviceCertValidity: 90 * 86_400_000, enrollmentTokenTtl: 86_400_000 }),
    auth: z
      .object({
        /** 2FA is always mandatory for admin and security-officer; this makes it mandatory for everyone. */
        require2faForAll: z
          .union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')])
          .default(false),
        sessionIdle: duration.default(30 * 60_000),
        sessionAbsolute: duration.default(12 * 3_600_000),
        setupSecretTtl: duration.default(24 * 3_600_000),
        /** Failures (per account and per source address) before the account or address is locked. */
        lockoutThreshold: z.coerce.number().int().min(3, 'must be at least 3').max(100).default(10),
        lockoutDuration: duration.default(15 * 60_000),
        /** From this many failures on, each further attempt waits backoffBase × 2^(failures − backoffAfter). */
        backoffAfter: z.coerce.number().int().min(1).max(100).default(3),
        backoffBase: duration.default(1000),
        /** Managing factors and credentials needs a second factor verified this recently (step-up). */
        stepUpWindow: duration.default(5 * 60_000),
        /** WebAuthn relying party id (a host name); the origin is https://<rpId>:<https port>. */
        webauthnRpId: z
          .string()
          .regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name')
          .default('localhost'),
        /** Origins allowed for WebAuthn besides https://<rpId>:<https port>. */
        webauthnOrigins: z
          .union([z.string(), z.array(z.string())])
          .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((h) => h.trim()).filter(Boolean))
          .pipe(
            z.array(
              z
                .string()
                .regex(
                  /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/,
                  'must be https:// origins separated by commas',
                ),
            ),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    firmware: z
      .object({
        /** Largest firmware artifact accepted, in bytes (or with a unit: 512MiB, 2GiB). */
        maxArtifactSize: byteSize.default(2 * 1024 ** 3),
        /** How often rollouts advance (send commands, check gates and soak times). */
        rolloutInterval: duration.default(5000),
        /** A device that was sent an update and reports nothing for this long counts as a failed attempt. */
        deviceTimeout: duration.default(3_600_000),
        rootExpiry: duration.default(365 * 86_400_000),
        targetsExpiry: duration.default(90 * 86_400_000),
        snapshotExpiry: duration.default(7 * 86_400_000),
        timestampExpiry: duration.default(86_400_000),
        /** Devices whose installed firmware is older than this are reported as not updated. */
        maxAge: duration.default(365 * 86_400_000),
      })
      .strict()
      .prefault({}),
    firewall: z
      .object({
        connectRate: z.coerce.number().positive().default(20),
        connectBurst: z.coerce.number().int().positive().default(50),
        maxConnectionsPerAddress: z.coerce.number().int().positive().default(200),
        failureThreshold: z.coerce.number().int().min(1).default(10),
        banDuration: duration.default(10 * 60_000),
        flapThreshold: z.coerce.number().int().min(2).default(20),
        /** Sessions of one identity taken over by another connection of it within a minute: a cloned identity. */
        takeoverThreshold: z.coerce.number().int().min(2).default(5),
        publishRate: z.coerce.number().positive().default(100),
        publishBurst: z.coerce.number().int().positive().default(200),
        byteRate: z.coerce.number().positive().default(1_000_000),
        throttlesBeforeDisconnect: z.coerce.number().int().min(0).default(5),
        maxPayloadBytes: z.coerce
          .number()
          .int()
          .positive()
          .max(268_435_455)
          .default(256 * 1024),
        maxSubscriptions: z.coerce.number().int().positive().default(100),
        maxTopicLength: z.coerce.number().int().positive().max(65_535).default(256),
        maxTopicLevels: z.coerce.number().int().min(2).max(100).default(16),
        /** Retained messages (Principle 8): per device, count and bytes (payload + topic), and in total. */
        retainedPerDevice: z.coerce.number().int().min(0).default(100),
        retainedBytesPerDevice: byteSize.default(1024 ** 2),
        retainedTotal: z.coerce.number().int().min(0).default(100_000),
        retainedBytesTotal: byteSize.default(256 * 1024 ** 2),
      })
      .strict()
      .prefault({}),
    monitor: z
      .object({
        /** How often windows close, datapoints are evaluated and silent devices are looked for. */
        tickInterval: duration.default(1000),
        /** How often learned baselines and novelty profiles are saved (and at shutdown). */
        saveInterval: duration.default(60_000),
        /** One datapoint of a learned baseline covers this long. */
        baselineInterval: duration.default(60_000),
        /** A device heard from before and silent this long raises `device_silent` (profiles may override). */
        silentAfter: duration.default(15 * 60_000),
        /**
         * A new installation gets the security profile `default`, attached to all devices: the built-in
         * detectors, and an automatic quarantine for a device that floods (secure by default). An operator
         * may change, detach or delete it; it is made once, when the store is created.
         */
        defaultProfile: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    notifications: z
      .object({
        /** How often channels look for new events to deliver. */
        pollInterval: duration.default(500),
        /** First retry after a failed delivery; doubles up to retryMax. Nothing is ever skipped. */
        retryBase: duration.default(1000),
        retryMax: duration.default(5 * 60_000),
        /** One delivery attempt (HTTP request, syslog connect + write). */
        timeout: duration.default(10_000),
      })
      .strict()
      .prefault({}),
    telemetry: z
      .object({
        /** How often the telemetry store deletes messages older than their pattern's retention. */
        retentionInterval: duration.default(60_000),
      })
      .strict()
      .prefault({}),
    privacy: z
      .object({
        /** The period of a pseudonymisation key: a subject's tokens are equal within one, unlinkable across. */
        pseudonymKeyPeriod: duration.default(30 * 86_400_000),
        /** Periods whose pseudonymisation keys are kept (1: only the current one). */
        pseudonymKeysKept: z.coerce.number().int().min(1, 'must be at least 1').max(120).default(1),
        /** Days to answer a data-subject request (GDPR Art. 12(3): one month). */
        requestDeadlineDays: z.coerce.number().int().min(1).max(90).default(30),
        /** How often data past its data schema's retention is deleted from every store that holds it. */
        retentionInterval: duration.default(3_600_000),
        /** How often open data-subject requests are checked against their deadline. */
        requestCheckInterval: duration.default(3_600_000),
        /** The controller named by the record of processing activities (GDPR Art. 30(1)(a)). */
        controller: z
          .object({
            name: z.string().min(1).max(200).optional(),
            contact: z.string().min(1).max(200).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    attestation: z
      .object({
        /** The PCRs every quote must cover (tpm2-tools selection syntax). */
        pcrs: z
          .string()
          .regex(
            /^(sha1|sha256|sha384|sha512):(?:[0-9]|1[0-9]|2[0-3])(?:,(?:[0-9]|1[0-9]|2[0-3]))*$/,
            'must be a PCR selection such as sha256:0,1,2,3,4,5,6,7',
          )
          .default('sha256:0,1,2,3,4,5,6,7'),
        /** A device with a bound key and no good (affirming or warning) verdict younger than this is overdue (held). */
        maxAge: duration.default(86_400_000),
        /** How long a nonce, and a credential-activation challenge, stays valid. */
        nonceTtl: duration.default(300_000),
        /** How often overdue devices are looked for. */
        checkInterval: duration.default(60_000),
      })
      .strict()
      .prefault({}),
    physical: z
      .object({
        /** Two located reports further apart than this speed allows are a location jump (an alert). */
        maxSpeedKmh: z.coerce.number().positive().max(100_000).default(900),
      })
      .strict()
      .prefault({}),
    compliance: z
      .object({
        /** How often the server runs every compliance check. */
        interval: duration.default(3_600_000),
        /** Off: runs only on demand and after a baseline change. */
        scheduled: z
          .union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')])
          .default(true),
        /**
         * A directory of framework files (`<id>.json`, the file's `id` equal to its name): one named after a
         * built-in standard replaces its mapping of clauses to checks (remap a clause), any other id
         * (/^[a-z0-9][a-z0-9.-]{1,62}$/) adds a framework, run and reported like the six; no code change
         * (docs/compliance.md).
         */
        frameworksDir: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    risk: z
      .object({
        /** How often the server re-evaluates the register besides after each relevant event (and sends reminders). */
        reassessInterval: duration.default(300_000),
      })
      .strict()
      .prefault({}),
    events: z
      .object({ tailInterval: duration.default(200) })
      .strict()
      .default({ tailInterval: 200 }),
    logLevel: z.enum(['silent', 'error', 'warn', 'info', 'debug']).default('info'),
  })
  .strict();

export type Config = Readonly<
  z.output<typeof schema> & { /** Where the settings came from. */ source: string }
>;
export type ConfigInput = z.input<typeof schema>;

/** Environment variables Bulwark reads, and the configuration key each one sets. */
export const envKeys = {
  BULWARK_DATA: 'dataDir',
  BULWARK_DATABASE_URL: 'database.url',
  BULWARK_MASTER_KEY: 'masterKey',
  BULWARK_BIND: 'bind',
  BULWARK_MQTT_PORT: 'mqtt.port',
  BULWARK_MQTT_DEV_PORT: 'mqtt.devListener.port',
  BULWARK_MQTT_HANDSHAKE_TIMEOUT: 'mqtt.handshakeTimeout',
  BULWARK_HTTPS_PORT: 'https.port',
  BULWARK_DEVICE_PORT: 'https.devicePort',
  BULWARK_HOSTNAMES: 'pki.hostnames',
  BULWARK_DEVICE_CERT_VALIDITY: 'pki.deviceCertValidity',
  BULWARK_ENROLLMENT_TOKEN_TTL: 'pki.enrollmentTokenTtl',
  BULWARK_EVENTS_TAIL_INTERVAL: 'events.tailInterval',
  BULWARK_FIRMWARE_MAX_ARTIFACT_SIZE: 'firmware.maxArtifactSize',
  BULWARK_LOG_LEVEL: 'logLevel',
  BULWARK_REQUIRE_2FA_FOR_ALL: 'auth.require2faForAll',
  BULWARK_COMPLIANCE_INTERVAL: 'compliance.interval',
  BULWARK_COMPLIANCE_FRAMEWORKS: 'compliance.frameworksDir',
  BULWARK_WEBAUTHN_RP_ID: 'auth.webauthnRpId',
  BULWARK_WEBAUTHN_ORIGINS: 'auth.webauthnOrigins',
} as const;

const keyToEnv = Object.fromEntries(Object.entries(envKeys).map(([env, key]) => [key, env])) as Record<
  string,
  string
>;

export interface LoadConfigOptions {
  /** A YAML or JSON file; `BULWARK_CONFIG` names one when this is unset. */
  file?: string | undefined;
  /** Values from command-line flags, applied last (dotted keys). */
  overrides?: Record<string, unknown>;
  /** The environment; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

function readFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError(
      'config_invalid',
      `cannot read configuration file ${file}: ${(err as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text); // YAML is a superset of JSON, so one parser reads both
  } catch (err) {
    throw new BulwarkError(
      'config_invalid',
      `configuration file ${file} is not valid YAML/JSON: ${(err as Error).message}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BulwarkError('config_invalid', `configuration file ${file} must hold a mapping of keys`);
  }
  return parsed as Record<string, unknown>;
}

/** Keys Bulwark no longer reads, each refused with what to do instead (rather than as an unknown key). */
const removedKeys: Record<string, string> = {
  'mqtt.core':
    "removed: Bulwark's own MQTT 3.1.1 and 5.0 core is the only MQTT engine (aedes is gone); delete this key",
};

/** The problems of a mapping's unknown keys: a removed key says so by its full name, the rest are listed. */
function unknownKeys(parent: string, keys: readonly string[]): string[] {
  const full = (k: string) => (parent ? `${parent}.${k}` : k);
  const removed = keys.filter((k) => removedKeys[full(k)] !== undefined);
  const unknown = keys.filter((k) => removedKeys[full(k)] === undefined);
  return [
    ...removed.map((k) => `${full(k)}: ${removedKeys[full(k)]}`),
    ...(unknown.length > 0 ? [`${parent || '(root)'}: unknown key(s) ${unknown.join(', ')}`] : []),
  ];
}

/**
 * Builds the configuration once: defaults < file < BULWARK_* environment < flags. Any invalid value
 * stops start-up with a message naming the key (and the variable that set it) and what is allowed.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? env.BULWARK_CONFIG;
  const raw: Record<string, unknown> = file ? readFile(file) : {};
  for (const [name, key] of Object.entries(envKeys)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, key, value);
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) setPath(raw, key, value);
  }
  if (raw.dataDir === undefined) raw.dataDir = '.bulwark';

  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      const key = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') return unknownKeys(key, issue.keys);
      const from = keyToEnv[key] && env[keyToEnv[key]] !== undefined ? ` (from ${keyToEnv[key]})` : '';
      return [`${key || '(root)'}${from}: ${issue.message}`];
    });
    throw new BulwarkError('config_invalid', `invalid configuration: ${problems.join('; ')}`);
  }
  const config = {
    ...result.data,
    dataDir: path.resolve(result.data.dataDir),
    source: file ? `file ${path.resolve(file)}, environment and flags` : 'defaults, environment and flags',
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Configuration for tests and embedded use: defaults plus the given values, nothing from the environment. */
export function testConfig(overrides: Record<string, unknown>): Config {
  return loadConfig({ env: {}, overrides });
}

/** The settings worth recording, flattened to dotted keys, with secrets left out. */
export function describeConfig(config: Config): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  const walk = (node: unknown, prefix: string) => {
    if (node === undefined) return;
    if (typeof node === 'object' && node !== null && !Array.isArray(node)) {
      for (const [k, v] of Object.entries(node)) walk(v, prefix ? `${prefix}.${k}` : k);
      return;
    }
    out[prefix] = Array.isArray(node) ? node.join(',') : (node as string | number);
  };
  const { source: _source, ...settings } = config;
  walk(settings, '');
  if (config.masterKey) out.masterKey = '(from BULWARK_MASTER_KEY)';
  if (config.database.url) out['database.url'] = redactDatabaseUrl(config.database.url);
  return out;
}

/** A database URL safe to print or record: the password, in the user part or as a query parameter, masked. */
export function redactDatabaseUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    for (const key of [...url.searchParams.keys()]) {
      if (/pass|secret|key/i.test(key)) url.searchParams.set(key, '***');
    }
    return url.toString();
  } catch {
    return '(unparseable database URL)';
  }
}
