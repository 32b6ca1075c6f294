import { z } from 'zod';
import { durationMs } from '../common.ts';
import { pcrValues } from './attestation.ts';
import { contract, noContent, raw } from './contract.ts';

/**
 * Firmware management under `/api/v1/firmware`: releases and their artifacts, TUF signing, staged rollouts
 * and stale devices. The vulnerability operations on the same paths are risk's (`api.risk`).
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const { releases } = api.firmware.listReleases.response[200].parse(await res.json());
 * ```
 */

/** `draft`: metadata only, artifact not uploaded yet. `ready`: artifact stored and verified. `retired`: withdrawn. */
export const releaseStatuses = ['draft', 'ready', 'retired'] as const;
export const rolloutStatuses = ['running', 'paused', 'waiting_approval', 'completed', 'aborted'] as const;
export const rolloutDeviceStatuses = [
  'pending',
  'sent',
  'in_progress',
  'succeeded',
  'failed',
  'skipped',
] as const;
export const tufRoles = ['root', 'targets', 'snapshot', 'timestamp'] as const;

const int = z.number().int();
const ref = z.string().max(200).describe('a release or rollout id (a release also by name@version)');
const params = z.object({ id: ref });
const anyJson = z.record(z.string(), z.unknown());
const limit = z.coerce.number().int().min(1).max(1000).default(100);

/**
 * A duration as rollouts and stale checks have always taken it: milliseconds as a number (or digits), or a
 * number and a unit of the one grammar (`30s`, `10m`, `24h`, `7d`). Zero is allowed (no soak, no delay).
 */
export function lenientDuration(name: string) {
  return z.union([z.string().max(16), z.number().int().nonnegative()]).transform((value, ctx) => {
    const ms = typeof value === 'number' ? value : textDurationMs(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `${name} must be a duration such as 30s, 10m, 24h` });
      return z.NEVER;
    }
    return ms;
  });
}

function textDurationMs(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    const ms = Math.round(Number(trimmed));
    return Number.isSafeInteger(ms) ? ms : undefined;
  }
  return durationMs(trimmed.replace(/^(\d+(?:\.\d+)?)\s+/, '$1'));
}

// --- releases -------------------------------------------------------------------------------------

/** Digest size in bytes of each PCR bank (TPM 2.0 Library, Part 2, TPMI_ALG_HASH). */
export const pcrDigestSizes = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 } as const;
const pcrBanks = ['sha1', 'sha256', 'sha384', 'sha512'] as const;

/**
 * A release's reference (golden) PCR values, `{ "sha256": { "7": "<hex>" } }`: what measured boot of this
 * image yields, compared with a device's TPM quote (RFC 9334 reference values). Each value is exactly its
 * bank's digest size; at least one PCR.
 */
export const releaseReferenceValues = pcrValues.superRefine((values, ctx) => {
  let count = 0;
  for (const bank of pcrBanks) {
    const size = pcrDigestSizes[bank];
    for (const [index, hex] of Object.entries(values[bank] ?? {})) {
      count++;
      if (hex.length !== size * 2)
        ctx.addIssue({
          code: 'custom',
          path: [bank, index],
          message: `a ${bank} PCR value is ${size * 2} hex characters (${size} bytes), not ${hex.length}`,
        });
    }
  }
  if (count === 0) ctx.addIssue({ code: 'custom', message: 'reference values must name at least one PCR' });
});

export const release = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  filename: z.string(),
  targetPath: z.string(),
  hardwareIds: z.array(z.string()),
  securityVersion: int,
  releaseNotes: z.string().nullable(),
  endOfSupport: int,
  size: int,
  sha256: z.string(),
  status: z.enum(releaseStatuses),
  hasSbom: z.boolean(),
  sbomComponents: int,
  signed: z
    .boolean()
    .describe('the current signed targets metadata lists this image: devices can install it'),
  createdBy: z.string(),
  createdAt: int,
  updatedAt: int,
  uploadedAt: int.nullable(),
  retiredAt: int.nullable(),
  referenceValues: pcrValues
    .nullable()
    .describe(
      'reference (golden) PCR values measured boot of this image yields; null when none were recorded',
    ),
});

const releaseTags = ['firmware releases'] as const;

export const listReleases = contract({
  method: 'GET',
  path: '/api/v1/firmware/releases',
  summary: 'List releases, newest first',
  tags: releaseTags,
  access: 'firmware:read',
  query: z.object({
    name: z.string().max(64).optional(),
    status: z.enum(releaseStatuses).optional(),
    limit,
  }),
  response: { 200: z.object({ releases: z.array(release) }) },
});

export const createRelease = contract({
  method: 'POST',
  path: '/api/v1/firmware/releases',
  summary:
    'Create a release (metadata, declared size and SHA-256, optional CycloneDX SBOM); upload its artifact next',
  tags: releaseTags,
  access: 'firmware:write',
  body: z.object({
    name: z.string().max(64),
    version: z.string().max(64),
    filename: z.string().max(128).optional(),
    hardwareIds: z.array(z.string().max(128)).min(1).max(64),
    securityVersion: z.number().int().min(0),
    releaseNotes: z.string().max(65_536).optional(),
    endOfSupport: z.union([z.string().max(40), z.number().int()]),
    size: z.number().int().min(1),
    sha256: z.string().max(64),
    sbom: anyJson.optional(),
    referenceValues: releaseReferenceValues.optional(),
  }),
  response: { 201: release },
});

export const showRelease = contract({
  method: 'GET',
  path: '/api/v1/firmware/releases/:id',
  summary: 'A release by id or name@version',
  tags: releaseTags,
  access: 'firmware:read',
  params,
  response: { 200: release },
});

/** The artifact is the raw request body (`application/octet-stream`), streamed to disk: no JSON body schema. */
export const uploadArtifact = contract({
  method: 'PUT',
  path: '/api/v1/firmware/releases/:id/artifact',
  summary:
    'Upload the artifact (Content-Type: application/octet-stream), streamed to disk; checked against the declared size and SHA-256',
  tags: releaseTags,
  access: 'firmware:write',
  params,
  response: { 200: release },
});

export const releaseSbom = contract({
  method: 'GET',
  path: '/api/v1/firmware/releases/:id/sbom',
  summary: 'The CycloneDX SBOM as uploaded',
  tags: releaseTags,
  access: 'firmware:read',
  params,
  response: { 200: raw('application/vnd.cyclonedx+json', 'the CycloneDX SBOM, as uploaded') },
});

export const retireRelease = contract({
  method: 'POST',
  path: '/api/v1/firmware/releases/:id/retire',
  summary: 'Retire a release: no new rollout may use it and devices can no longer download it',
  tags: releaseTags,
  access: 'firmware:write',
  params,
  body: z.object({ reason: z.string().max(256).optional() }).default({}),
  response: { 200: release },
});

export const discardRelease = contract({
  method: 'DELETE',
  path: '/api/v1/firmware/releases/:id',
  summary: 'Discard a draft (a release without artifact)',
  tags: releaseTags,
  access: 'firmware:write',
  params,
  response: { 204: noContent },
});

// --- TUF ------------------------------------------------------------------------------------------

const tufTags = ['firmware signing (TUF)'] as const;
const metadata = z.object({ metadata: anyJson });
const published = z.object({ role: z.enum(tufRoles), version: int });
/** A public key: PEM/hex text or a TUF key object. */
const key = z.union([z.string().max(4096), anyJson]);

export const tufStatus = contract({
  method: 'GET',
  path: '/api/v1/firmware/tuf',
  summary: 'TUF repository status: role versions, expiries, keys, pending metadata',
  tags: tufTags,
  access: 'firmware:read',
  response: {
    200: z.object({
      initialized: z.boolean(),
      targetsValid: z.boolean(),
      pending: z.array(z.enum(tufRoles)),
      roles: z.record(
        z.string(),
        z.object({ version: int, expires: int, keyids: z.array(z.string()), threshold: int }),
      ),
    }),
  },
});

export const prepareRoot = contract({
  method: 'POST',
  path: '/api/v1/firmware/tuf/root/prepare',
  summary:
    'Prepare an unsigned root: the first one (root and targets public keys), a key rotation of any role, or a fresh expiry',
  tags: tufTags,
  access: 'firmware:keys',
  body: z
    .object({
      rootKeys: z.array(key).max(20).optional(),
      rootThreshold: z.number().int().min(1).optional(),
      targetsKeys: z.array(key).max(20).optional(),
      targetsThreshold: z.number().int().min(1).optional(),
      rotate: z.enum(tufRoles).optional(),
      keys: z.array(key).max(20).optional(),
      threshold: z.number().int().min(1).optional(),
    })
    .default({}),
  response: { 200: metadata },
});

export const publishRoot = contract({
  method: 'POST',
  path: '/api/v1/firmware/tuf/root',
  summary: 'Publish the pending root, signed by a threshold of the current and the new root keys',
  tags: tufTags,
  access: 'firmware:keys',
  body: anyJson,
  response: { 200: published },
});

export const prepareTargets = contract({
  method: 'POST',
  path: '/api/v1/firmware/tuf/targets/prepare',
  summary: 'Prepare unsigned targets metadata listing every uploaded, unretired release',
  tags: tufTags,
  access: 'firmware:write',
  response: { 200: metadata },
});

export const publishTargets = contract({
  method: 'POST',
  path: '/api/v1/firmware/tuf/targets',
  summary: 'Publish targets metadata signed offline by a threshold of the targets keys',
  tags: tufTags,
  access: 'firmware:write',
  body: anyJson,
  response: { 200: published },
});

export const pendingMetadata = contract({
  method: 'GET',
  path: '/api/v1/firmware/tuf/pending/:role',
  summary: 'Metadata waiting for offline signatures',
  tags: tufTags,
  access: 'firmware:read',
  params: z.object({ role: z.string().max(16) }),
  response: { 200: metadata },
});

// --- rollouts -------------------------------------------------------------------------------------

const rolloutTags = ['firmware rollouts'] as const;

export const selector = z
  .object({
    all: z.boolean().optional(),
    groups: z.array(z.string().max(64)).max(100).optional(),
    zones: z.array(z.string().max(64)).max(100).optional(),
    devices: z.array(z.string().max(64)).max(100_000).optional(),
    attributes: z.record(z.string().max(64), z.string().max(256)).optional(),
  })
  .strict();

/** Daily window (UTC, `HH:MM`) in which commands may be sent; `days` 0 = Sunday … 6 = Saturday. */
export const maintenanceWindow = z.object({
  start: z.string().max(5),
  end: z.string().max(5),
  days: z.array(z.number().int()).max(7).optional(),
});

export const phaseSummary = z.object({
  phase: int,
  percent: z.number(),
  soakMs: int,
  devices: int,
  pending: int,
  inProgress: int,
  succeeded: int,
  failed: int,
  skipped: int,
});

export const rollout = z.object({
  id: z.string(),
  releaseId: z.string(),
  release: z.object({ name: z.string(), version: z.string(), targetPath: z.string() }),
  selector,
  settings: z.object({
    phases: z.array(z.object({ percent: z.number(), soakMs: int })),
    failureThreshold: z.number(),
    maxRetries: int,
    retryDelayMs: int,
    requireApproval: z.boolean(),
    maintenanceWindow: maintenanceWindow.nullable(),
  }),
  status: z.enum(rolloutStatuses),
  currentPhase: int,
  phaseStartedAt: int,
  phaseDoneAt: int.nullable(),
  pauseReason: z.string().nullable(),
  createdBy: z.string(),
  createdAt: int,
  updatedAt: int,
  phases: z.array(phaseSummary),
});

export const rolloutDevice = z.object({
  deviceId: z.string(),
  phase: int,
  status: z.enum(rolloutDeviceStatuses),
  step: z.string().nullable(),
  attempts: int,
  reason: z.string().nullable(),
  detail: z.string().nullable(),
  updatedAt: int,
});

export const listRollouts = contract({
  method: 'GET',
  path: '/api/v1/firmware/rollouts',
  summary: 'List rollouts, newest first, with per-phase counts',
  tags: rolloutTags,
  access: 'firmware:read',
  query: z.object({ status: z.enum(rolloutStatuses).optional(), limit }),
  response: { 200: z.object({ rollouts: z.array(rollout) }) },
});

export const startRollout = contract({
  method: 'POST',
  path: '/api/v1/firmware/rollouts',
  summary:
    'Start a staged rollout of a signed release to a group, device list or attribute filter, in phases with gates',
  tags: rolloutTags,
  access: 'firmware:deploy',
  body: z.object({
    release: z.string().max(200),
    selector,
    phases: z
      .array(
        z.union([z.number(), z.object({ percent: z.number(), soak: lenientDuration('soak').optional() })]),
      )
      .min(1)
      .max(20),
    soak: lenientDuration('soak').optional(),
    failureThreshold: z.number().min(0).max(100).optional(),
    maxRetries: z.number().int().min(0).max(10).optional(),
    retryDelay: lenientDuration('retryDelay').optional(),
    requireApproval: z.boolean().optional(),
    maintenanceWindow: maintenanceWindow.optional(),
  }),
  response: { 201: rollout },
});

export const showRollout = contract({
  method: 'GET',
  path: '/api/v1/firmware/rollouts/:id',
  summary: 'A rollout with status per phase',
  tags: rolloutTags,
  access: 'firmware:read',
  params,
  response: { 200: rollout },
});

export const rolloutDevices = contract({
  method: 'GET',
  path: '/api/v1/firmware/rollouts/:id/devices',
  summary: 'Status per device',
  tags: rolloutTags,
  access: 'firmware:read',
  params,
  query: z.object({
    phase: z.coerce.number().int().min(0).optional(),
    status: z.enum(rolloutDeviceStatuses).optional(),
  }),
  response: { 200: z.object({ devices: z.array(rolloutDevice) }) },
});

const controlBody = z
  .object({ reason: z.string().max(256).optional(), retryFailed: z.boolean().optional() })
  .default({});

function control<const P extends string, const S extends string>(path: P, summary: S) {
  return contract({
    method: 'POST',
    path,
    summary,
    tags: rolloutTags,
    access: 'firmware:deploy',
    params,
    body: controlBody,
    response: { 200: rollout },
  });
}

export const pauseRollout = control(
  '/api/v1/firmware/rollouts/:id/pause',
  'Pause (no further commands are sent)',
);
export const resumeRollout = control(
  '/api/v1/firmware/rollouts/:id/resume',
  'Resume a paused rollout (retryFailed: give failed devices of the phase new attempts)',
);
export const approveRollout = control('/api/v1/firmware/rollouts/:id/approve', 'Approve the next phase');
export const abortRollout = control(
  '/api/v1/firmware/rollouts/:id/abort',
  'Abort: devices not yet updated are skipped',
);

// --- stale devices --------------------------------------------------------------------------------

export const staleDevice = z.object({
  deviceId: z.string(),
  version: z.string().nullable(),
  installedAt: int,
  endOfSupport: int.nullable(),
  reason: z.enum(['older_than_max_age', 'end_of_support_passed']),
});

export const stale = contract({
  method: 'GET',
  path: '/api/v1/firmware/stale',
  summary: 'Devices not updated within the maximum age (firmware.maxAge), or past end of support',
  tags: ['firmware vulnerabilities'],
  access: 'firmware:read',
  query: z.object({ maxAge: lenientDuration('maxAge').optional() }),
  response: { 200: z.object({ devices: z.array(staleDevice) }) },
});
