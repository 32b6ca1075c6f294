import { z } from 'zod';
import { DEVICE_TOPIC_ROOT } from './topics.ts';

/**
 * Firmware updates: the MQTT topics and payloads between the server and a device's updater, and the
 * HTTPS paths of the TUF repository. Every topic is inside the device's own subtree `devices/{id}/#`.
 *
 * @example
 * ```ts
 * import { firmwareTopics, firmwareStatusSchema } from '@bulwark/protocol';
 * client.publish(firmwareTopics.status('pump-17'), JSON.stringify({ step: 'downloading', target, ts: Date.now() }));
 * ```
 */
export const firmwareTopics = {
  /** Server → device: install this target (the device verifies everything through TUF). */
  command: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/firmware/command`,
  /** Device → server: one step of an update. */
  status: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/firmware/status`,
  /** Device → server: what the device runs now (sent at every connect). */
  state: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/firmware/state`,
} as const;

/** The steps a device reports, in order; an update ends in `succeeded` or `failed`. */
export const firmwareSteps = [
  'available',
  'downloading',
  'verifying',
  'installing',
  'rebooting',
  'succeeded',
  'failed',
] as const;
export type FirmwareStep = (typeof firmwareSteps)[number];

/**
 * Why a device refused or failed an update. The attack cases of TUF each have their own reason, so the
 * server (and an operator) can tell a tampered artifact from a flaky download.
 */
export const firmwareFailureReasons = [
  /** The artifact's length or hash differs from the signed targets metadata. */
  'artifact_modified',
  /** The requested target is not in the signed targets metadata. */
  'target_not_signed',
  /** A metadata file is past its expiry (freeze attack). */
  'metadata_expired',
  /** A metadata version is lower than one already trusted (rollback attack). */
  'metadata_rollback',
  /** Metadata lacks a threshold of valid signatures from the keys the trusted root names. */
  'metadata_signature_invalid',
  /** Other metadata problems (wrong type, snapshot mismatch, missing file). */
  'metadata_invalid',
  /** The target's security version is lower than the installed one (anti-rollback). */
  'security_version_lower',
  /** The target does not list this device's hardware id. */
  'hardware_mismatch',
  /** The download failed (network, server error). */
  'download_failed',
  /** Writing the inactive slot failed, or it did not verify after writing. */
  'install_failed',
  /** The new image did not pass its boot check; the previous slot is active again. */
  'boot_check_failed',
  /** Another update is already running. */
  'busy',
  'internal',
] as const;
export type FirmwareFailureReason = (typeof firmwareFailureReasons)[number];

const targetPath = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[A-Za-z0-9._+-]+(\/[A-Za-z0-9._+-]+)*$/, 'must be a relative target path')
  .refine((p) => !p.split('/').some((part) => part === '.' || part === '..'), 'must not contain . or ..');

/** Server → device on {@link firmwareTopics.command}. */
export const firmwareCommandSchema = z.object({
  type: z.literal('install'),
  /** TUF target path, e.g. `pump-fw/1.4.0/pump-fw-1.4.0.bin`. */
  target: targetPath,
  rolloutId: z.string().max(64).optional(),
  /** Lets the device ignore a command it already answered. */
  attempt: z.number().int().min(1).max(1000).optional(),
});
export type FirmwareCommand = z.infer<typeof firmwareCommandSchema>;

/** Device → server on {@link firmwareTopics.status}. */
export const firmwareStatusSchema = z.object({
  step: z.enum(firmwareSteps),
  target: targetPath,
  rolloutId: z.string().max(64).optional(),
  attempt: z.number().int().min(1).max(1000).optional(),
  reason: z.enum(firmwareFailureReasons).optional(),
  /** Human-readable detail of a failure, for the operator. */
  detail: z.string().max(512).optional(),
  ts: z.number().int().nonnegative(),
});
export type FirmwareStatus = z.infer<typeof firmwareStatusSchema>;

/** Device → server on {@link firmwareTopics.state}: what the active slot holds. */
export const firmwareStateSchema = z.object({
  hardwareId: z.string().max(128),
  /** The installed target path, or null for the factory image. */
  target: targetPath.nullable(),
  version: z.string().max(64).nullable(),
  securityVersion: z.number().int().nonnegative(),
  ts: z.number().int().nonnegative(),
});
export type FirmwareState = z.infer<typeof firmwareStateSchema>;

/**
 * Where the TUF repository is served (HTTPS, client certificate of an enrolled device required).
 * With consistent snapshots the client asks for `{version}.root.json`, `timestamp.json`,
 * `{version}.snapshot.json`, `{version}.targets.json` and `targets/{dir}/{sha256}.{file}`.
 */
export const tufPaths = {
  metadata: '/tuf/metadata/',
  targets: '/tuf/targets/',
} as const;
