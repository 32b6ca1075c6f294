import type { Database } from './schema.ts';

/**
 * Each table has one owning module (the folder under `packages/server/src`): only the owner writes it,
 * every other module asks the owner's door (DESIGN.md, rule 2). `store/ownership.test.ts` enforces it.
 * A new table does not compile until it has an owner here.
 */
export const tableOwners = {
  devices: 'devices',
  enrollment_tokens: 'devices',
  certificates: 'pki',
  pki_material: 'pki',
  audit_log: 'events',
  audit_anchor: 'events',
  event_outbox: 'events',
  users: 'users',
  recovery_codes: 'users',
  webauthn_credentials: 'users',
  sessions: 'users',
  api_tokens: 'users',
  auth_throttle: 'users',
  policies: 'access',
  policy_versions: 'access',
  policy_attachments: 'access',
  zones: 'access',
  conduits: 'access',
  firmware_releases: 'firmware',
  firmware_sbom_components: 'firmware',
  // Vulnerability matching moves out of firmware into `risk/` (issue 13, point 3); its tables go with it.
  firmware_advisories: 'risk',
  firmware_release_vulnerabilities: 'risk',
  firmware_device_state: 'firmware',
  tuf_metadata: 'firmware',
  tuf_keys: 'firmware',
  tuf_pending: 'firmware',
  firmware_rollouts: 'firmware',
  firmware_rollout_devices: 'firmware',
  bans: 'firewall',
  retained_messages: 'broker',
  security_profiles: 'monitor',
  security_profile_attachments: 'monitor',
  alerts: 'monitor',
  monitor_state: 'monitor',
  notification_channels: 'notify',
  store_meta: 'store',
  apps: 'apps',
  app_tokens: 'apps',
  app_delivery_stats: 'apps',
  telemetry_patterns: 'telemetry',
  telemetry_messages: 'telemetry',
  privacy_schemas: 'privacy',
  privacy_subjects: 'privacy',
  privacy_subject_links: 'privacy',
  privacy_consents: 'privacy',
  privacy_requests: 'privacy',
  privacy_subject_keys: 'privacy',
  privacy_pseudonym_keys: 'privacy',
  audit_personal: 'events',
} as const satisfies Record<keyof Database, string>;

export type TableName = keyof typeof tableOwners;
export type TableOwner = (typeof tableOwners)[TableName];
