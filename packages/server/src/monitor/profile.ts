import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from '../config/index.ts';

export const severities = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];
export const severityRank: Record<Severity, number> = { low: 0, medium: 1, high: 2, critical: 3 };

/**
 * Metrics a behaviour can watch. The first group is measured by the broker on every message and
 * connection; the second is what devices report on `devices/{id}/metrics`; `custom:<name>` names a
 * device's custom metric.
 */
export const numericMetrics = [
  'messages_sent',
  'messages_received',
  'bytes_sent',
  'bytes_received',
  'message_size',
  'authorization_failures',
  /** Payloads refused for breaking their topic's data schema (privacy). */
  'schema_violations',
  'connection_attempts',
  'disconnects',
  'disconnect_duration',
  'distinct_topics',
  'distinct_source_addresses',
  'subscriptions',
  'bytes_in',
  'bytes_out',
  'packets_in',
  'packets_out',
  'established_connections',
] as const;
export type NumericMetric = (typeof numericMetrics)[number];

/** Metrics that are sets of values, watched against an allow-list. */
export const setMetrics = [
  'source_address',
  'listening_tcp_ports',
  'listening_udp_ports',
  'destinations',
] as const;
export type SetMetric = (typeof setMetrics)[number];

export const statistics = ['sum', 'max', 'min', 'avg', 'latest', 'p50', 'p90', 'p99'] as const;
export type Statistic = (typeof statistics)[number];
export const operators = ['gt', 'gte', 'lt', 'lte'] as const;
export type Operator = (typeof operators)[number];

/** Metrics counted per event: their natural statistic is the sum over the window. */
const counted = new Set<string>([
  'messages_sent',
  'messages_received',
  'bytes_sent',
  'bytes_received',
  'authorization_failures',
  'schema_violations',
  'connection_attempts',
  'disconnects',
  'bytes_in',
  'bytes_out',
  'packets_in',
  'packets_out',
]);

const durationMs = (min: number, max: number) =>
  z.union([z.number().int(), z.string().max(16)]).transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : parseDuration(v);
    if (ms === undefined || ms < min || ms > max) {
      ctx.addIssue({
        code: 'custom',
        message: `must be a duration between ${min / 1000}s and ${max / 1000}s (e.g. 10s, 5m, 1h)`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** An IPv4 or IPv6 address, or a CIDR block of either: what the address allow-lists hold. */
function isAddressOrCidr(value: string | number): boolean {
  if (typeof value !== 'string') return false;
  const [address = '', bits, extra] = value.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

const behaviourName = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'behaviour names are a-z 0-9 _ -');
const metricName = z
  .string()
  .max(64)
  .refine(
    (m) =>
      (numericMetrics as readonly string[]).includes(m) ||
      (setMetrics as readonly string[]).includes(m) ||
      /^custom:[a-z][a-z0-9_]{0,47}$/.test(m),
    {
      message: `metric must be one of ${[...numericMetrics, ...setMetrics].join(', ')} or custom:<name>`,
    },
  );

/** A rule behaviour, as Device Defender names them: a metric over a window against a threshold or an allow-list. */
export const behaviourSchema = z
  .object({
    name: behaviourName,
    metric: metricName,
    statistic: z.enum(statistics).optional(),
    /** Numeric behaviours: the comparison and threshold. */
    operator: z.enum(operators).optional(),
    threshold: z.number().finite().optional(),
    /** Set behaviours: the allowed values (CIDRs for addresses and destinations, port numbers, strings). */
    allowed: z
      .array(z.union([z.string().max(64), z.number()]))
      .max(1024)
      .optional(),
    window: durationMs(10_000, 3_600_000).default(60_000),
    /** Consecutive breaching windows before the alarm, and clean windows before it clears. */
    toAlarm: z.number().int().min(1).max(100).default(1),
    toClear: z.number().int().min(1).max(100).default(1),
    severity: z.enum(severities).default('medium'),
  })
  .strict()
  .superRefine((b, ctx) => {
    // The broker counts these per message; a window has one figure for them, their sum.
    if (
      (['messages_sent', 'messages_received', 'bytes_sent', 'bytes_received'] as string[]).includes(
        b.metric,
      ) &&
      b.statistic !== undefined &&
      b.statistic !== 'sum'
    )
      ctx.addIssue({ code: 'custom', message: `${b.metric} is counted per window: its statistic is sum` });
    const isSet = (setMetrics as readonly string[]).includes(b.metric);
    if (isSet) {
      if (!b.allowed)
        ctx.addIssue({ code: 'custom', message: `${b.metric} is watched with "allowed" (an allow-list)` });
      if (b.threshold !== undefined || b.operator !== undefined)
        ctx.addIssue({ code: 'custom', message: `${b.metric} takes "allowed", not a threshold` });
      // The engine builds a BlockList from these: anything else threw on every connection or report.
      const bad =
        b.metric === 'source_address' || b.metric === 'destinations'
          ? b.allowed?.find((a) => !isAddressOrCidr(a))
          : undefined;
      if (bad !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['allowed'],
          message: `${b.metric} allows IP addresses and CIDRs (10.0.0.0/8, 2001:db8::/32), not ${JSON.stringify(bad)}`,
        });
    } else if (b.metric.startsWith('custom:') && b.threshold === undefined) {
      // A custom metric is a number (operator and threshold) or a string or set of strings (allowed).
      if (!b.allowed)
        ctx.addIssue({
          code: 'custom',
          message: `${b.metric} needs "operator" and "threshold", or "allowed"`,
        });
    } else {
      if (b.threshold === undefined || b.operator === undefined)
        ctx.addIssue({ code: 'custom', message: `${b.metric} needs "operator" and "threshold"` });
    }
  })
  .transform((b) => ({
    ...b,
    statistic:
      b.statistic ??
      ((counted.has(b.metric) ? 'sum' : b.metric === 'message_size' ? 'max' : 'latest') as Statistic),
    kind:
      (setMetrics as readonly string[]).includes(b.metric) || b.allowed
        ? ('set' as const)
        : ('number' as const),
  }));
export type Behaviour = z.output<typeof behaviourSchema>;

/** Built-in detectors: each can be turned off or tuned per profile. */
export const builtinDetectors = [
  'guessing',
  'cloned_identity',
  'device_silent',
  'new_source_network',
  'new_topic',
  'unusual_hour',
  'topic_scan',
  'payload_flood',
  'firmware_downgrade',
  'baseline_anomaly',
  'tamper_report',
  'location_jump',
  'attestation_failed',
  'lost_device_seen',
] as const;
export type BuiltinDetector = (typeof builtinDetectors)[number];

export const builtinsSchema = z
  .object({
    guessing: z
      .object({
        enabled: z.boolean().default(true),
        identities: z.number().int().min(2).default(5),
        window: durationMs(10_000, 86_400_000).default(300_000),
      })
      .strict()
      .prefault({}),
    cloned_identity: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    device_silent: z
      .object({ enabled: z.boolean().default(true), after: durationMs(10_000, 7 * 86_400_000).optional() })
      .strict()
      .prefault({}),
    new_source_network: z
      .object({ enabled: z.boolean().default(true), warmupConnections: z.number().int().min(1).default(10) })
      .strict()
      .prefault({}),
    new_topic: z
      .object({ enabled: z.boolean().default(true), warmupMessages: z.number().int().min(1).default(1000) })
      .strict()
      .prefault({}),
    unusual_hour: z
      .object({ enabled: z.boolean().default(true), warmupConnections: z.number().int().min(1).default(50) })
      .strict()
      .prefault({}),
    topic_scan: z
      .object({
        enabled: z.boolean().default(true),
        deniedTopics: z.number().int().min(2).default(10),
        window: durationMs(10_000, 3_600_000).default(60_000),
      })
      .strict()
      .prefault({}),
    payload_flood: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    firmware_downgrade: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    baseline_anomaly: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    /** Physical security (issue 17): signed tamper/health reports, location, TPM attestation, lost devices. */
    tamper_report: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    location_jump: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    attestation_failed: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    lost_device_seen: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({});
export type Builtins = z.output<typeof builtinsSchema>;

export const responseActions = ['quarantine', 'revoke', 'ban_address', 'disable_user', 'notify'] as const;
export type ResponseAction = (typeof responseActions)[number];

export const responseSchema = z
  .object({
    action: z.enum(responseActions),
    /** Which detectors (behaviour names or built-in detector names) it answers; `*` for all. */
    detectors: z.array(z.string().max(64)).min(1).default(['*']),
    minSeverity: z.enum(severities).default('low'),
    /** automatic: run when the alert is raised; manual: offered on the alert for an operator to run. */
    mode: z.enum(['automatic', 'manual']).default('manual'),
    /** For ban_address: how long. */
    duration: durationMs(60_000, 365 * 86_400_000).optional(),
  })
  .strict();
export type ResponseRule = z.output<typeof responseSchema>;

export const profileDocumentSchema = z
  .object({
    description: z.string().max(1000).optional(),
    behaviours: z.array(behaviourSchema).max(200).default([]),
    builtins: builtinsSchema,
    responses: z.array(responseSchema).max(50).default([]),
  })
  .strict()
  .superRefine((d, ctx) => {
    const names = new Set<string>();
    for (const b of d.behaviours) {
      if (names.has(b.name)) ctx.addIssue({ code: 'custom', message: `behaviour ${b.name} appears twice` });
      names.add(b.name);
      if ((builtinDetectors as readonly string[]).includes(b.name))
        ctx.addIssue({ code: 'custom', message: `behaviour name ${b.name} is a built-in detector's name` });
    }
  });
export type ProfileDocument = z.output<typeof profileDocumentSchema>;
export type ProfileDocumentInput = z.input<typeof profileDocumentSchema>;

export const attachmentKinds = ['all', 'group', 'zone', 'device'] as const;
export type AttachmentKind = (typeof attachmentKinds)[number];

export interface SecurityProfile {
  id: string;
  name: string;
  version: number;
  document: ProfileDocument;
  /** Built-in detectors this profile sets explicitly (the others keep what less specific profiles say). */
  explicitBuiltins: BuiltinDetector[];
  attachments: { kind: AttachmentKind; target: string }[];
  updatedAt: number;
  updatedBy: string;
}

/** What applies to one device (or to a non-device subject, from profiles attached to `all`). */
export interface EffectiveProfile {
  behaviours: (Behaviour & { profile: string })[];
  builtins: Builtins;
  responses: (ResponseRule & { profile: string })[];
}

const precedence: Record<AttachmentKind, number> = { all: 0, group: 1, zone: 2, device: 3 };

/**
 * Merges the profiles attached to a device: behaviours and responses add up; for built-in detector
 * settings the most specific attachment wins (device over zone over group over all), and so it does for
 * two behaviours of the same name (the name is the alert's detector: two rules under one name shared one
 * alarm, and the calm one resolved the alert of the one still breaching).
 */
export function effectiveProfile(
  profiles: readonly SecurityProfile[],
  target: {
    deviceId?: string | undefined;
    group?: string | null | undefined;
    zone?: string | null | undefined;
  },
): EffectiveProfile {
  const applying: { profile: SecurityProfile; rank: number }[] = [];
  for (const profile of profiles) {
    let rank = -1;
    for (const a of profile.attachments) {
      const hit =
        a.kind === 'all' ||
        (a.kind === 'group' && target.group === a.target) ||
        (a.kind === 'zone' && target.zone === a.target) ||
        (a.kind === 'device' && target.deviceId === a.target);
      if (hit) rank = Math.max(rank, precedence[a.kind]);
    }
    if (rank >= 0) applying.push({ profile, rank });
  }
  applying.sort((a, b) => a.rank - b.rank || a.profile.name.localeCompare(b.profile.name));
  const builtins = builtinsSchema.parse({});
  for (const { profile } of applying)
    for (const d of profile.explicitBuiltins)
      (builtins as Record<string, unknown>)[d] = profile.document.builtins[d];
  const behaviours = new Map<string, Behaviour & { profile: string }>();
  for (const { profile } of applying)
    for (const b of profile.document.behaviours) behaviours.set(b.name, { ...b, profile: profile.name });
  return {
    behaviours: [...behaviours.values()],
    builtins,
    responses: applying.flatMap(({ profile }) =>
      profile.document.responses.map((r) => ({ ...r, profile: profile.name })),
    ),
  };
}
