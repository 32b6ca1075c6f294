import { z } from 'zod';
import { topics } from './topics.ts';

/**
 * Physical and boot state a device reports on its own topics, signed with its device key so that nothing
 * on the broker path can forge one (issue 17). The MQTT payload is `{"jws": "<JWS compact>"}` (RFC 7515):
 * the JWS payload is the JSON report below, its protected header `{"alg": "ES256" | "ES384" | "RS256",
 * "kid": "<serial of the device certificate whose key signed it>"}`. The server verifies the signature with
 * that certificate's public key, that the certificate is the device's own and unrevoked, that `deviceId` is
 * the session's, that `ts` is within {@link SECURITY_REPORT_MAX_SKEW_MS} of its clock and that `seq` is higher
 * than the last accepted one (no replay).
 */
export const securityTopics = {
  /** `devices/{id}/security/tamper`: something happened to the device's physical or boot integrity. */
  tamper: (id: string) => `${topics.devicePrefix(id)}security/tamper`,
  /** `devices/{id}/security/health`: the device's current physical and boot state, periodically. */
  health: (id: string) => `${topics.devicePrefix(id)}security/health`,
} as const;

export const SECURITY_REPORT_MAX_BYTES = 8192;
/** How far a report's `ts` may be from the server's clock. */
export const SECURITY_REPORT_MAX_SKEW_MS = 300_000;

export const tamperReasons = [
  'enclosure-opened',
  'debug-port-enabled',
  'secure-boot-disabled',
  'unexpected-reboot',
  'location-jump',
  'other',
] as const;
export type TamperReason = (typeof tamperReasons)[number];

const common = {
  /** The reporting device (must be the MQTT session's device). */
  deviceId: z.string().min(1).max(64),
  /** When the device observed it (epoch ms). */
  ts: z.number().int().nonnegative(),
  /** Strictly increasing per device across tamper and health reports (replay protection). */
  seq: z.number().int().nonnegative(),
};

export const geoLocationSchema = z
  .object({
    lat: z.number().min(-90).max(90),
    lon: z.number().min(-180).max(180),
    /** Accuracy radius in metres, when known. */
    accuracyM: z.number().nonnegative().max(1_000_000).optional(),
  })
  .strict();
export type GeoLocation = z.infer<typeof geoLocationSchema>;

/** The JWS payload of a tamper report. */
export const tamperReportSchema = z
  .object({
    ...common,
    kind: z.literal('tamper'),
    reason: z.enum(tamperReasons),
    detail: z.string().max(512).optional(),
    location: geoLocationSchema.optional(),
  })
  .strict();
export type TamperReport = z.infer<typeof tamperReportSchema>;

/** The JWS payload of a health report: what is known now; absent fields are unknown. */
export const healthReportSchema = z
  .object({
    ...common,
    kind: z.literal('health'),
    secureBoot: z.boolean().optional(),
    debugPortEnabled: z.boolean().optional(),
    enclosureClosed: z.boolean().optional(),
    bootCount: z.number().int().nonnegative().optional(),
    /** Why the device last rebooted, as it knows it (`power-on`, `watchdog`, `update`, …). */
    lastBootReason: z.string().max(64).optional(),
    location: geoLocationSchema.optional(),
  })
  .strict();
export type HealthReport = z.infer<typeof healthReportSchema>;

export const securityReportSchema = z.discriminatedUnion('kind', [tamperReportSchema, healthReportSchema]);
export type SecurityReport = z.infer<typeof securityReportSchema>;

/** The MQTT payload on both topics. */
export const signedReportSchema = z
  .object({
    jws: z
      .string()
      .min(1)
      .max(SECURITY_REPORT_MAX_BYTES)
      .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'must be a JWS in compact serialization'),
  })
  .strict();
export type SignedReport = z.infer<typeof signedReportSchema>;

/** The JWS algorithm for each device key type (packages/device keys.ts). */
export const jwsAlgorithmFor = { 'ec-p256': 'ES256', 'ec-p384': 'ES384', 'rsa-2048': 'RS256' } as const;
