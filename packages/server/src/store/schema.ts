import type { Kysely, Transaction } from 'kysely';

/** Times are epoch milliseconds; ids are made by the application. No dialect-specific types. */
export interface DevicesTable {
  id: string;
  group_name: string | null;
  status: string;
  attributes: string;
  created_at: number;
  updated_at: number;
  enrolled_at: number | null;
  revoked_at: number | null;
  /** Set while the device is quarantined (it keeps only its quarantine topics). */
  quarantined_at?: number | null;
  /** Its last MQTT connect or disconnect (from the events; 0009). */
  last_seen_at?: number | null;
  /** Since when it is connected; null when it has no session. */
  connected_at?: number | null;
  /** Live MQTT sessions (a takeover briefly counts two). */
  sessions?: number | null;
  /** notAfter of its newest certificate not revoked. */
  cert_expires_at?: number | null;
}

export interface EnrollmentTokensTable {
  id: string;
  device_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface CertificatesTable {
  serial: string;
  kind: string;
  device_id: string | null;
  subject: string;
  fingerprint: string;
  not_before: number;
  not_after: number;
  pem: string;
  issued_at: number;
  revoked_at: number | null;
  revocation_reason: string | null;
  /** The application a `kind: 'app'` certificate was issued to (0012). */
  app_name?: string | null;
}

export interface PkiMaterialTable {
  name: string;
  cert_pem: string;
  sealed_key: string;
  created_at: number;
}

export interface AuditLogTable {
  seq: number;
  ts: number;
  type: string;
  actor: string;
  subject: string | null;
  data: string;
  prev_hash: string;
  hash: string;
  /** HMAC of `hash` under a key derived from the master key: rows cannot be forged without it. */
  mac: string;
}

/** An event recorded with its change, waiting for the relay to append it to the audit log. */
export interface EventOutboxTable {
  id: string;
  type: string;
  actor: string;
  subject: string | null;
  /** The event's data as canonical JSON. */
  data: string;
  created_at: number;
}

export interface AuditAnchorTable {
  id: number;
  seq: number;
  hash: string;
  mac: string;
}

export interface UsersTable {
  id: string;
  username: string;
  role: string;
  /** JSON array of device groups the user is limited to; null = all groups. */
  groups: string | null;
  password_hash: string | null;
  previous_password_hash: string | null;
  setup_secret_hash: string | null;
  setup_expires_at: number | null;
  /** Sealed with the master key. */
  totp_secret: string | null;
  /** A TOTP enrolment's new secret (sealed), until a code of it is confirmed and it replaces `totp_secret`. */
  totp_pending_secret: string | null;
  totp_enabled: number;
  totp_last_step: number | null;
  disabled_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface RecoveryCodesTable {
  id: string;
  user_id: string;
  code_hash: string;
  created_at: number;
  used_at: number | null;
}

export interface WebauthnCredentialsTable {
  id: string;
  user_id: string;
  public_key: string;
  counter: number;
  transports: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

export interface SessionsTable {
  id_hash: string;
  user_id: string;
  state: string;
  csrf_token: string;
  challenge: string | null;
  address: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  last_used_at: number | null;
  last_used_address: string | null;
  revoked_at: number | null;
}

export interface AuthThrottleTable {
  key: string;
  failures: number;
  locked_until: number;
  updated_at: number;
}

export interface PoliciesTable {
  name: string;
  version: number;
  document: string;
  description: string | null;
  created_at: number;
  updated_at: number;
}

export interface PolicyVersionsTable {
  name: string;
  version: number;
  document: string;
  actor: string;
  created_at: number;
}

export interface PolicyAttachmentsTable {
  policy: string;
  /** all | group | zone | device */
  target_kind: string;
  target: string;
  created_at: number;
}

export interface SegmentationTable {
  name: string;
  definition: string;
  updated_at: number;
}

export interface FirmwareReleasesTable {
  id: string;
  name: string;
  version: string;
  filename: string;
  /** The TUF target path: `{name}/{version}/{filename}`. */
  target_path: string;
  /** JSON array of hardware/model ids the image fits. */
  hardware_ids: string;
  security_version: number;
  release_notes: string | null;
  end_of_support: number;
  size: number;
  sha256: string;
  /** draft (no artifact yet) | ready | retired */
  status: string;
  /** The CycloneDX JSON document as uploaded (validated). */
  sbom: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
  uploaded_at: number | null;
  retired_at: number | null;
  /** JSON {bank: {index: hex}}: the reference (golden) PCR values measured boot of this image yields. */
  reference_values: string | null;
}

export interface FirmwareSbomComponentsTable {
  release_id: string;
  idx: number;
  name: string;
  version: string | null;
  purl: string | null;
}

export interface FirmwareAdvisoriesTable {
  /** The OSV id (GHSA-…, CVE-…, OSV-…). */
  id: string;
  modified: number;
  summary: string;
  /** JSON array of aliases. */
  aliases: string;
  /** critical | high | medium | low | none | unknown */
  severity: string;
  /** CVSS base score × 10 (an integer keeps the column portable). */
  score_tenths: number | null;
  cvss_vector: string | null;
  /** The OSV `affected` array, JSON. */
  affected: string;
  withdrawn: number | null;
  imported_at: number;
}

export interface FirmwareReleaseVulnerabilitiesTable {
  release_id: string;
  advisory_id: string;
  purl: string;
  component_version: string;
}

export interface FirmwareDeviceStateTable {
  device_id: string;
  hardware_id: string;
  target_path: string | null;
  release_id: string | null;
  version: string | null;
  security_version: number;
  reported_at: number;
  /** When the installed image last changed (first report, or an update). */
  installed_at: number;
}

export interface TufMetadataTable {
  role: string;
  version: number;
  /** The exact bytes served (canonical JSON). */
  body: string;
  expires_at: number;
  created_at: number;
}

export interface TufKeysTable {
  keyid: string;
  /** snapshot | timestamp: only online keys are held by the server. */
  role: string;
  /** PKCS#8 PEM sealed with the master key. */
  sealed_key: string;
  /** pending (named in an unpublished root) | active | retired */
  status: string;
  created_at: number;
}

export interface TufPendingTable {
  role: string;
  body: string;
  created_by: string;
  created_at: number;
}

export interface FirmwareRolloutsTable {
  id: string;
  release_id: string;
  /** JSON: which devices (groups, ids, attributes). */
  selector: string;
  /** JSON: phases, gates, retries, maintenance window. */
  settings: string;
  /** running | paused | waiting_approval | completed | aborted */
  status: string;
  current_phase: number;
  phase_started_at: number;
  phase_done_at: number | null;
  pause_reason: string | null;
  /** Failures in the current phase an operator accepted when resuming; the gate counts only new ones. */
  accepted_failures: number;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface FirmwareRolloutDevicesTable {
  rollout_id: string;
  device_id: string;
  phase: number;
  position: number;
  /** pending | sent | in_progress | succeeded | failed | skipped */
  status: string;
  step: string | null;
  attempts: number;
  reason: string | null;
  detail: string | null;
  sent_at: number | null;
  next_attempt_at: number | null;
  updated_at: number;
}

export interface BansTable {
  id: string;
  /** address (IP or CIDR) | device | certificate (serial, lowercase hex) */
  kind: string;
  value: string;
  reason: string;
  actor: string;
  /** `manual` or `automatic:<rule>`; null for bans made before 0007 (by hand). */
  origin?: string | null;
  created_at: number;
  expires_at: number | null;
}

/** One retained message per topic [MQTT-3.3.1-5], charged to the device that published it (0007). */
/** An application principal (0012): a backend that reads fleet data and commands devices. */
export interface AppsTable {
  name: string;
  /** fideslang data-use key; null: the app may not be granted device data. */
  purpose: string | null;
  zone: string | null;
  description: string | null;
  status: string;
  created_at: number;
  updated_at: number;
  revoked_at: number | null;
}

/** An app's MQTT password (user name = app name), stored as its sha256 (0012). */
export interface AppTokensTable {
  id: string;
  app: string;
  token_hash: string;
  created_at: number;
  created_by: string;
  expires_at: number | null;
  last_used_at: number | null;
  last_used_from: string | null;
  revoked_at: number | null;
}

/** Delivery to an app per node, as the broker last reported it (0012). */
export interface AppDeliveryStatsTable {
  app: string;
  node: string;
  messages: number;
  bytes: number;
  dropped: number;
  queued_bytes: number;
  connections: number;
  updated_at: number;
}

/** A topic pattern whose messages are stored, and for how long (0012). */
export interface TelemetryPatternsTable {
  pattern: string;
  retention_ms: number;
  created_at: number;
  updated_at: number;
  created_by: string;
}

/** A stored device message (0012). `id` sorts in arrival order. */
export interface TelemetryMessagesTable {
  id: string;
  device_id: string;
  topic: string;
  pattern: string;
  received_at: number;
  /** base64 */
  payload: string;
  bytes: number;
  /** The data subject (privacy/) the message is about, when its data schema names one. */
  subject_id: string | null;
  /** The data schema (privacy/) the payload matched; the payload is in the form the schema keeps. */
  data_schema: string | null;
}

/** A persistent MQTT session (broker/mqtt-sessions.ts). */
export interface MqttSessionsTable {
  client_id: string;
  /** Session expiry interval; null: never. */
  expiry_sec: number | null;
  /** JSON: the core's Subscription objects. */
  subscriptions: string;
  /** JSON: inbound QoS 2 packet ids whose PUBREL has not come (null: none). */
  received: string | null;
  /** When its last connection ended; null while connected. */
  disconnected_at: number | null;
  updated_at: number;
}

/** A QoS 1/2 message kept for one or more persistent sessions. */
export interface MqttMessagesTable {
  id: number;
  topic: string;
  /** base64 */
  payload: string;
  qos: number;
  retain: number;
  /** JSON: MQTT 5 message properties (correlation data as base64). */
  properties: string | null;
  expires_at: number | null;
  origin: string | null;
}

/** A message kept for a session: queued, or (QoS 2) sent with its packet id. */
export interface MqttSessionMessagesTable {
  client_id: string;
  message_id: number;
  qos: number;
  retain: number;
  /** JSON array of subscription identifiers. */
  subscription_ids: string | null;
  packet_id: number | null;
  phase: string | null;
}

export interface RetainedMessagesTable {
  topic: string;
  device_id: string;
  qos: number;
  /** base64 */
  payload: string;
  /** Payload plus topic bytes: what counts against the quotas. */
  bytes: number;
  updated_at: number;
  /** The data subject (privacy/) the message is about, when its data schema names one. */
  subject_id: string | null;
  /** The data schema (privacy/) the payload matched; the payload is in the form the schema keeps. */
  data_schema: string | null;
}

/** A data schema (privacy/): classified fields of the payloads on one topic pattern. */
export interface PrivacySchemasTable {
  name: string;
  topic: string;
  version: number;
  /** The schema document as JSON (protocol's dataSchemaDocument). */
  document: string;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

/** A data subject: a person (fideslang data subject `kind`), by the id the fleet's data names them with. */
export interface PrivacySubjectsTable {
  id: string;
  kind: string;
  created_at: number;
  updated_at: number;
  /** GDPR Art. 18: while set, the subject's data is kept but delivered to no one. */
  restricted_at: number | null;
}

/** A data subject's devices and user accounts. */
export interface PrivacySubjectLinksTable {
  subject_id: string;
  link_kind: 'device' | 'user';
  ref: string;
  created_at: number;
}

/** The current consent of a subject for one purpose (its history is in the audit log). */
export interface PrivacyConsentsTable {
  subject_id: string;
  purpose: string;
  notice_version: string;
  status: 'given' | 'withdrawn';
  created_at: number;
  updated_at: number;
}

/** A data-subject request and its deadline (GDPR Art. 12). */
export interface PrivacyRequestsTable {
  id: string;
  /** Null once the subject was erased (the request stays as the record of what was done). */
  subject_id: string | null;
  kind: 'access' | 'rectification' | 'erasure' | 'restriction';
  status: 'open' | 'completed' | 'rejected';
  received_at: number;
  due_at: number;
  completed_at: number | null;
  overdue_at: number | null;
  /** JSON: counts per module (never the data). */
  result: string | null;
  note: string | null;
  created_by: string;
}

/** A data key per subject (`person:<id>` or `device:<id>`), wrapped with the master key: erased to shred. */
export interface PrivacySubjectKeysTable {
  subject: string;
  key_id: string;
  wrapped_key: string;
  created_at: number;
}

/** The pseudonymisation key of one period, wrapped; deleted after the kept periods (tokens unlinkable). */
export interface PrivacyPseudonymKeysTable {
  period: number;
  wrapped_key: string;
  created_at: number;
}

/**
 * Personal values named by audit entries (events/): the entry holds a reference, this table the value and
 * whose it is. Erasing a person deletes their rows; the hash chain covers the references, so it still verifies.
 */
export interface AuditPersonalTable {
  ref: string;
  owner: string;
  value: string;
  created_at: number;
}

export interface SecurityProfilesTable {
  id: string;
  name: string;
  /** The profile as JSON (behaviours, baselines, built-in detector settings, responses). */
  document: string;
  version: number;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

export interface SecurityProfileAttachmentsTable {
  profile_id: string;
  /** all | group | zone | device */
  kind: string;
  target: string;
  created_at: number;
}

export interface AlertsTable {
  id: string;
  /** detector + subject: at most one alert per key is not resolved. */
  dedupe_key: string;
  detector: string;
  /** `device:<id>`, `address:<ip>`, `user:<name>` */
  subject: string;
  device_id: string | null;
  /** low | medium | high | critical */
  severity: string;
  /** open | acknowledged | resolved */
  status: string;
  title: string;
  /** JSON: what triggered the alert (metric, window, value, threshold, samples) */
  evidence: string;
  occurrences: number;
  first_seen: number;
  last_seen: number;
  assignee: string | null;
  /** JSON array of { at, by, text } */
  notes: string;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  resolved_at: number | null;
  resolved_by: string | null;
  resolution: string | null;
  updated_at: number;
  /** JSON array of the responses run for it: { at, action, automatic, actor, ok, detail? } (0009). */
  responses?: string | null;
}

/** Detector state that survives restarts (learned baselines, what a device was seen doing). */
export interface MonitorStateTable {
  key: string;
  state: string;
  updated_at: number;
}

export interface NotificationChannelsTable {
  id: string;
  name: string;
  /** webhook | syslog */
  kind: string;
  /** json | rfc5424 | cef */
  format: string;
  /** URL for webhooks, host:port for syslog */
  target: string;
  /** JSON: transport settings (tls, ca, timeouts) */
  settings: string;
  /** The webhook signing secret, sealed with the secret box. */
  secret_sealed: string | null;
  /** JSON: which events the channel receives */
  filter: string;
  enabled: number;
  /** The last audit-log seq delivered (or skipped by the filter). */
  cursor: number;
  lease_owner: string | null;
  lease_until: number | null;
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  last_delivered_at: number | null;
  created_at: number;
  updated_at: number;
}

/** Facts about the store itself (0010): `master_key_check`, the master key check value. */
export interface StoreMetaTable {
  name: string;
  value: string;
  created_at: number;
}

/** Every applied version of the organisation baseline (the YAML as applied). */
export interface ComplianceBaselinesTable {
  version: number;
  name: string;
  document: string;
  sha256: string;
  applied_at: number;
  applied_by: string;
}

export interface ComplianceRunsTable {
  id: string;
  trigger: 'manual' | 'schedule' | 'baseline';
  started_at: number;
  finished_at: number;
  baseline_version: number;
  /** JSON: counts and scores per standard (compliance/). */
  summary: string;
  created_by: string;
}

/** One check's outcome in one run, with its evidence snapshot (JSON list). */
export interface ComplianceResultsTable {
  run_id: string;
  check_id: string;
  status: 'pass' | 'fail' | 'error';
  severity: string;
  summary: string;
  examined: number;
  evidence: string;
}

/** Files attached to manual attestations, by content hash (base64; bounded in size). */
export interface ComplianceEvidenceFilesTable {
  sha256: string;
  media_type: string;
  size: number;
  content: string;
  created_at: number;
}

export interface ComplianceAttestationsTable {
  id: string;
  standard: string;
  clause: string;
  statement: string;
  owner: string;
  /** JSON: [{ name, sha256, size, mediaType }]. */
  files: string;
  review_at: number;
  expires_at: number;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
}

export interface ComplianceWaiversTable {
  id: string;
  check_id: string;
  reason: string;
  approver: string;
  expires_at: number;
  created_at: number;
  created_by: string;
  /** Null while pending: in force only once the approver approved it. */
  approved_at: number | null;
  approved_by: string | null;
  revoked_at: number | null;
}

export interface Database {
  bulk_operations: BulkOperationsTable;
  risk_assets: RiskAssetsTable;
  risk_taras: RiskTarasTable;
  risk_register: RiskRegisterTable;
  risk_history: RiskHistoryTable;
  risk_kev: RiskKevTable;
  risk_epss: RiskEpssTable;
  devices: DevicesTable;
  enrollment_tokens: EnrollmentTokensTable;
  certificates: CertificatesTable;
  apps: AppsTable;
  app_tokens: AppTokensTable;
  app_delivery_stats: AppDeliveryStatsTable;
  telemetry_patterns: TelemetryPatternsTable;
  telemetry_messages: TelemetryMessagesTable;
  pki_material: PkiMaterialTable;
  audit_log: AuditLogTable;
  audit_anchor: AuditAnchorTable;
  event_outbox: EventOutboxTable;
  users: UsersTable;
  recovery_codes: RecoveryCodesTable;
  webauthn_credentials: WebauthnCredentialsTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  auth_throttle: AuthThrottleTable;
  policies: PoliciesTable;
  policy_versions: PolicyVersionsTable;
  policy_attachments: PolicyAttachmentsTable;
  zones: SegmentationTable;
  conduits: SegmentationTable;
  firmware_releases: FirmwareReleasesTable;
  firmware_sbom_components: FirmwareSbomComponentsTable;
  firmware_advisories: FirmwareAdvisoriesTable;
  firmware_release_vulnerabilities: FirmwareReleaseVulnerabilitiesTable;
  firmware_device_state: FirmwareDeviceStateTable;
  tuf_metadata: TufMetadataTable;
  tuf_keys: TufKeysTable;
  tuf_pending: TufPendingTable;
  firmware_rollouts: FirmwareRolloutsTable;
  firmware_rollout_devices: FirmwareRolloutDevicesTable;
  bans: BansTable;
  retained_messages: RetainedMessagesTable;
  mqtt_sessions: MqttSessionsTable;
  mqtt_messages: MqttMessagesTable;
  mqtt_session_messages: MqttSessionMessagesTable;
  security_profiles: SecurityProfilesTable;
  security_profile_attachments: SecurityProfileAttachmentsTable;
  alerts: AlertsTable;
  monitor_state: MonitorStateTable;
  notification_channels: NotificationChannelsTable;
  store_meta: StoreMetaTable;
  privacy_schemas: PrivacySchemasTable;
  privacy_subjects: PrivacySubjectsTable;
  privacy_subject_links: PrivacySubjectLinksTable;
  privacy_consents: PrivacyConsentsTable;
  privacy_requests: PrivacyRequestsTable;
  privacy_subject_keys: PrivacySubjectKeysTable;
  privacy_pseudonym_keys: PrivacyPseudonymKeysTable;
  audit_personal: AuditPersonalTable;
  compliance_baselines: ComplianceBaselinesTable;
  compliance_runs: ComplianceRunsTable;
  compliance_results: ComplianceResultsTable;
  compliance_evidence_files: ComplianceEvidenceFilesTable;
  compliance_attestations: ComplianceAttestationsTable;
  compliance_waivers: ComplianceWaiversTable;
  attestation_keys: AttestationKeysTable;
  attestation_nonces: AttestationNoncesTable;
  attestation_results: AttestationResultsTable;
  security_reports: SecurityReportsTable;
  security_report_state: SecurityReportStateTable;
  physical_sites: PhysicalSitesTable;
  physical_access: PhysicalAccessTable;
}

/** A device's TPM attestation key (attestation/): `pending` until its credential is activated, then `bound`. */
export interface AttestationKeysTable {
  device_id: string;
  /** base64 TPM2B_PUBLIC */
  ek_public: string;
  /** hex SHA-256 of the EK's TPMT_PUBLIC: the TPM's hardware identity. */
  ek_hash: string;
  /** base64 TPM2B_PUBLIC */
  ak_public: string;
  /** hex TPM name of the AK */
  ak_name: string;
  /** `rsa-2048`, `ecc-p256`, … */
  algorithm: string;
  status: 'pending' | 'bound';
  challenge_id: string | null;
  /** hex SHA-256 of the credential the device must return. */
  challenge_hash: string | null;
  challenge_expires_at: number | null;
  registered_at: number;
  bound_at: number | null;
}

export interface AttestationNoncesTable {
  /** hex */
  nonce: string;
  device_id: string;
  pcr_selection: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface AttestationResultsTable {
  id: string;
  device_id: string;
  at: number;
  tier: 'affirming' | 'warning' | 'contraindicated';
  reason: string;
  detail: string;
  /** `name@version` of the release whose reference values were used. */
  release_ref: string | null;
  pcr_selection: string | null;
  /** JSON number[] */
  mismatched_pcrs: string;
}

export interface SecurityReportsTable {
  id: string;
  device_id: string;
  kind: 'tamper' | 'health';
  /** JSON string[] */
  reasons: string;
  seq: number;
  reported_at: number;
  received_at: number;
  /** JSON: the verified report */
  report: string;
}

export interface SecurityReportStateTable {
  device_id: string;
  last_seq: number;
  /** JSON: the last health report's security fields */
  health: string;
  lat: number | null;
  lon: number | null;
  located_at: number | null;
  updated_at: number;
}

export interface PhysicalSitesTable {
  name: string;
  description: string | null;
  owner: string;
  /** JSON string[]: device groups located at the site */
  groups: string;
  updated_at: number;
  updated_by: string;
}

export interface PhysicalAccessTable {
  id: string;
  site: string;
  person: string;
  /** The privacy data subject the record is about (GDPR requests find it by this id), or null. */
  subject: string | null;
  role: string | null;
  granted_by: string;
  granted_at: number;
  review_at: number;
  expires_at: number | null;
}

/** An inventory asset's annotations (owner, requirements), or a manual asset (kind `manual`). */
export interface RiskAssetsTable {
  /** `<kind>:<name>`, e.g. `zone:plant-a`, `firmware:pc200-fw`, `manual:historian` */
  id: string;
  kind: string;
  name: string;
  owner: string | null;
  description: string | null;
  /** JSON { confidentiality, integrity, availability, authenticity }: low | medium | high */
  requirements: string;
  /** JSON string[]: device groups a manual asset covers */
  groups: string;
  updated_at: number;
  updated_by: string;
}

export interface RiskTarasTable {
  id: string;
  item: string;
  version: number;
  /** The TARA document as saved (JSON). */
  document: string;
  /** Its evaluation (JSON TaraResult). */
  result: string;
  saved_at: number;
  saved_by: string;
}

export interface RiskRegisterTable {
  /** R-<n> */
  id: string;
  /** What the risk comes from: `tara:<tara>/<threat>`, `zone:<zone>`, `manual:<id>` (one risk each). */
  source_key: string;
  title: string;
  /** JSON: the source (kind, tara and threat, zone) */
  source: string;
  /** JSON string[]: inventory asset ids in scope */
  assets: string;
  owner: string | null;
  treatment: string;
  /** JSON string[] */
  controls: string;
  /** JSON string[]: compliance check ids implementing the treatment */
  checks: string;
  /** YYYY-MM-DD */
  due: string | null;
  /** open | treating | accepted | closed */
  status: string;
  impact: string;
  base_feasibility: string;
  base_risk: number;
  feasibility: string;
  risk: number;
  /** 1 while the live value is raised by the threshold or more above the assessed one (an alert is open). */
  raised: number;
  /** JSON RiskFactor[]: the live inputs that moved the feasibility */
  factors: string;
  assessed_at: number;
  review_due_at: number;
  reminded_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface RiskHistoryTable {
  id: string;
  risk_id: string;
  /** 1, 2, … per risk: the order of its history. */
  seq: number;
  at: number;
  actor: string;
  /** created | assessed | raised | lowered | updated | reviewed | closed | reopened */
  change: string;
  from_risk: number | null;
  to_risk: number | null;
  /** JSON: what changed */
  detail: string;
}

export interface RiskKevTable {
  cve: string;
  vendor: string;
  product: string;
  name: string;
  /** YYYY-MM-DD */
  date_added: string;
  due_date: string | null;
  /** Known | Unknown */
  ransomware: string | null;
  imported_at: number;
}

export interface RiskEpssTable {
  cve: string;
  /** Probability of exploitation in the next 30 days, 0..1 */
  score: number;
  percentile: number;
  score_date: string | null;
  imported_at: number;
}

/** A bulk device action and its dual-control state (operations/). */
export interface BulkOperationsTable {
  id: string;
  /** revoke | quarantine | release | lost | decommission */
  action: string;
  /** pending | running | executed | rejected | cancelled | expired */
  status: string;
  /** JSON: how the devices were chosen ({ kind: ids } | { kind: group, group } | { kind: zone, zone }) */
  selection: string;
  /** JSON string[]: the devices it resolved to when requested (what runs) */
  device_ids: string;
  /** JSON string[]: their groups when requested ('' for none), for who may see the request */
  device_groups: string;
  count: number;
  reason: string | null;
  revocation_reason: string | null;
  /** 1 when a lost device was reported stolen */
  stolen: number;
  requested_by: string;
  requested_at: number;
  needs_approval: number;
  threshold: number;
  expires_at: number | null;
  decided_by: string | null;
  decided_at: number | null;
  decision_note: string | null;
  executed_at: number | null;
  /** JSON: per device { deviceId, outcome, message? }, once executed */
  results: string;
}

export type Db = Kysely<Database>;
/** A database handle or an open transaction: store functions take it first. */
export type DbOrTx = Kysely<Database> | Transaction<Database>;
/** A transaction in progress (a change and its events, see the event bus's `atomically`). */
export type Tx = Transaction<Database>;
