import { z } from 'zod';
import { durationMs } from './common.ts';

/**
 * The organisation baseline (compliance): one YAML document, versioned, holding the parameters every
 * compliance check reads. Durations use the one grammar (`14d`, `12h`, `30m`). Every section and field has a
 * default, so `{ name: x }` is a valid baseline; the defaults are the built-in baseline a fresh install runs
 * against. Applying a baseline the live state does not meet is allowed: the checks then fail with evidence.
 *
 * @example
 * ```yaml
 * name: acme-fleet
 * certificates: { deviceMaxLifetime: 397d, deviceExpiryWarning: 14d, acceptedKeyTypes: [ec-p256, ec-p384] }
 * accounts: { secondFactor: all, dormantAfter: 90d }
 * firmware: { maxAge: 365d, requireStagedRollouts: true, vulnerabilitySeverity: critical }
 * monitoring: { requiredProfiles: { '*': [default] } }
 * zones: { targets: { plant-floor: 3 } }
 * disclosure: { contact: 'mailto:security@acme.example', policyUrl: 'https://acme.example/security' }
 * product: { supportPeriodEnd: 2031-12-31, supportPeriodUrl: 'https://acme.example/support' }
 * ```
 */

const duration = (field: string) =>
  z.string().transform((text, ctx) => {
    const ms = durationMs(text);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${field} "${text}" is not a duration: use a number and a unit, e.g. 30m, 24h, 14d`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** Public key types a certificate may carry, named `<algorithm>-<size or curve>`. */
export const keyTypes = [
  'ec-p256',
  'ec-p384',
  'ec-p521',
  'ed25519',
  'ed448',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
] as const;
export type KeyType = (typeof keyTypes)[number];

/** The standards the compliance engine reports on, by their report id. */
export const standardIds = [
  'etsi-en-303-645',
  'iec-62443-4-2',
  'iec-62443-3-3',
  'nist-800-82',
  'iso-21434',
  'gdpr',
] as const;
export type StandardId = (typeof standardIds)[number];

/**
 * A framework's id: a built-in standard (`standardIds`) or a framework added as `<id>.json` in the server's
 * `compliance.frameworksDir`. Where a value may name a custom framework it is a FrameworkId, checked against the
 * frameworks in force where that matters (a report request, a baseline's `compliance.notApplicable`).
 */
export type FrameworkId = string;
export const frameworkIdPattern = /^[a-z0-9][a-z0-9.-]{1,62}$/;
export const frameworkId = z
  .string()
  .regex(frameworkIdPattern, 'must be a framework id: lower case letters, digits, . - (2..63)');

const contact = z
  .string()
  .regex(/^(mailto:[^\s@]+@[^\s@]+|https:\/\/\S+)$/, 'must be a mailto: address or an https:// URL');

const certificates = z
  .object({
    /** Longest validity a device certificate may be issued with. */
    deviceMaxLifetime: duration('certificates.deviceMaxLifetime').default(397 * 86_400_000),
    /** A device certificate expiring within this window fails (renewal did not happen). */
    deviceExpiryWarning: duration('certificates.deviceExpiryWarning').default(14 * 86_400_000),
    caExpiryWarning: duration('certificates.caExpiryWarning').default(180 * 86_400_000),
    serverExpiryWarning: duration('certificates.serverExpiryWarning').default(30 * 86_400_000),
    acceptedKeyTypes: z
      .array(z.enum(keyTypes))
      .min(1, 'must accept at least one key type')
      .default(['ec-p256', 'ec-p384', 'ec-p521', 'ed25519', 'rsa-3072', 'rsa-4096']),
  })
  .strict()
  .prefault({});

const accounts = z
  .object({
    /** Who must have a second factor: the privileged roles (admin, security-officer) or every account. */
    secondFactor: z.enum(['privileged', 'all']).default('privileged'),
    /** An enabled account not signed in for this long is dormant (created and never used counts from creation). */
    dormantAfter: duration('accounts.dormantAfter').default(90 * 86_400_000),
    /** Failed sign-ins before lockout may be at most this many (lockout on and strict enough). */
    maxLockoutThreshold: z.number().int().min(1).max(100).default(10),
    /** Shortest lockout duration accepted. */
    minLockoutDuration: duration('accounts.minLockoutDuration').default(5 * 60_000),
    /** Longest lifetime of an API token. */
    apiTokenMaxLifetime: duration('accounts.apiTokenMaxLifetime').default(365 * 86_400_000),
    /** At most this many enabled admin accounts (a few named people, no shared admin). */
    maxAdmins: z.number().int().min(1).max(1000).default(5),
  })
  .strict()
  .prefault({});

const sessions = z
  .object({
    maxIdle: duration('sessions.maxIdle').default(30 * 60_000),
    maxAbsolute: duration('sessions.maxAbsolute').default(12 * 3_600_000),
  })
  .strict()
  .prefault({});

const devices = z
  .object({
    /** A device in service not seen on MQTT for this long fails (lost, stolen, or dead). */
    notSeenFor: duration('devices.notSeenFor').default(30 * 86_400_000),
    /** Identity conflicts (two connections with one client id) looked for in this window. */
    conflictWindow: duration('devices.conflictWindow').default(86_400_000),
  })
  .strict()
  .prefault({});

const firmware = z
  .object({
    /** A device whose installed release is older than this fails. */
    maxAge: duration('firmware.maxAge').default(365 * 86_400_000),
    /** Rollouts must have more than one phase (a canary before the fleet). */
    requireStagedRollouts: z.boolean().default(true),
    /** Devices running firmware with a known vulnerability of this severity or above fail. */
    vulnerabilitySeverity: z.enum(['critical', 'high', 'medium', 'low']).default('critical'),
    /** Signed update metadata (TUF) expiring within this window fails. */
    metadataExpiryWarning: duration('firmware.metadataExpiryWarning').default(6 * 3_600_000),
    /** Releases must carry an SBOM (so vulnerabilities can be matched). */
    requireSbom: z.boolean().default(true),
    /** Vulnerability advisories (OSV) must have been imported within this window. */
    advisoryMaxAge: duration('firmware.advisoryMaxAge').default(30 * 86_400_000),
  })
  .strict()
  .prefault({});

const monitoring = z
  .object({
    /**
     * Security profiles each device group must be covered by (`*`: every group). A group is covered by a
     * profile attached to all devices, to the group, or to every device of the group.
     */
    requiredProfiles: z
      .record(z.string().min(1), z.array(z.string().min(1)).min(1))
      .default({ '*': ['default'] }),
    /** Open alerts of this severity or above older than `alertMaxAge` fail. */
    alertSeverity: z.enum(['critical', 'high', 'medium', 'low']).default('critical'),
    alertMaxAge: duration('monitoring.alertMaxAge').default(24 * 3_600_000),
  })
  .strict()
  .prefault({});

const retention = z
  .object({
    /** Longest retention of personal data (data schema fields and stored telemetry). */
    personalDataMax: duration('retention.personalDataMax').default(365 * 86_400_000),
    /** Longest retention of stored telemetry of any kind. */
    telemetryMax: duration('retention.telemetryMax').default(365 * 86_400_000),
  })
  .strict()
  .prefault({});

const zones = z
  .object({
    /** Target security level (IEC 62443 SL-T, 1..4) of zones the baseline does not name. */
    defaultTarget: z.number().int().min(1).max(4).default(1),
    /** Target security level per zone name. */
    targets: z.record(z.string().min(1), z.number().int().min(1).max(4)).default({}),
    /** Every device must be in a zone. */
    requireZoneForEveryDevice: z.boolean().default(false),
  })
  .strict()
  .prefault({});

/** The risk register: how often each risk is re-assessed, and what change of a live risk value alerts. */
const risk = z
  .object({
    /** A risk not re-assessed (reviewed, or its TARA saved again) for this long is due: a reminder alert. */
    reassessEvery: duration('risk.reassessEvery').default(365 * 86_400_000),
    /** A live value this many levels (1-4) or more above the assessed value raises an alert. */
    alertOnIncrease: z.number().int().min(1).max(4).default(1),
  })
  .strict()
  .prefault({});

/** The broker's flood limits may be at most these (per address and per device). */
const firewall = z
  .object({
    maxConnectRate: z.number().positive().default(100),
    maxConnectionsPerAddress: z.number().int().positive().default(1000),
    maxPublishRate: z.number().positive().default(1000),
    maxPayloadBytes: z
      .number()
      .int()
      .positive()
      .default(1024 * 1024),
  })
  .strict()
  .prefault({});

const audit = z
  .object({
    /** The audit log must be delivered to at least one channel (SIEM, syslog, webhook). */
    requireExport: z.boolean().default(true),
    /** A channel this many entries behind counts as not exporting. */
    maxExportLag: z.number().int().min(0).default(10_000),
  })
  .strict()
  .prefault({});

/**
 * Dual control (four eyes) over dangerous bulk actions on devices (revoke, quarantine, release, lost,
 * decommission many at once; IEC 62443-3-3 SR 2.1 RE 4, NIST SP 800-53 AC-5): a bulk action selecting at least
 * `bulkDevices` devices waits for a second person holding the same permission to approve it; below that it runs at
 * once. `0` turns dual control off (every bulk action runs at once); `1` asks for approval of every bulk action.
 * A pending request not approved within `expireAfter` expires.
 */
const approvals = z
  .object({
    bulkDevices: z.number().int().min(0).max(1_000_000).default(10),
    expireAfter: duration('approvals.expireAfter').default(24 * 3_600_000),
  })
  .strict()
  .prefault({});

/** Clauses judged not applicable to this organisation's devices, each with its justification (ETSI 4-1). */
const notApplicable = z
  .record(
    frameworkId,
    z.record(z.string().min(1), z.string().min(10, 'needs a justification (10+ characters)')),
  )
  .default({});

export const baselineDocumentSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be lower case letters, digits, . _ - (max 63)'),
    description: z.string().max(2000).optional(),
    certificates,
    accounts,
    sessions,
    devices,
    firmware,
    monitoring,
    retention,
    zones,
    risk,
    firewall,
    audit,
    approvals,
    disclosure: z
      .object({
        /** Where security researchers report vulnerabilities (ETSI EN 303 645 5.2-1). */
        contact: contact.optional(),
        policyUrl: z
          .string()
          .regex(/^https:\/\/\S+$/, 'must be an https:// URL')
          .optional(),
      })
      .strict()
      .prefault({}),
    product: z
      .object({
        /** The end of the published support period (security updates), YYYY-MM-DD (ETSI 5.3-13). */
        supportPeriodEnd: z
          .union([z.string(), z.date()])
          .transform((v) => (typeof v === 'string' ? v : v.toISOString().slice(0, 10)))
          .pipe(z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date, YYYY-MM-DD'))
          .optional(),
        supportPeriodUrl: z
          .string()
          .regex(/^https:\/\/\S+$/, 'must be an https:// URL')
          .optional(),
      })
      .strict()
      .prefault({}),
    compliance: z
      .object({
        notApplicable,
        /** How long a manual attestation may go without review before it fails. */
        attestationMaxAge: duration('compliance.attestationMaxAge').default(365 * 86_400_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** A baseline as the checks read it: defaults filled in, durations in milliseconds. */
export type Baseline = z.output<typeof baselineDocumentSchema>;
export type BaselineInput = z.input<typeof baselineDocumentSchema>;

/** The built-in baseline: what a fresh install is checked against until one is applied. */
export const DEFAULT_BASELINE_NAME = 'bulwark-default';
