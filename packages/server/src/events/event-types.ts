/**
 * Every security-relevant thing that happens is one of these, on one bus, in one audit log. Each type names
 * the groups it belongs to; the groups (what matters to access, the alert lifecycle, what rates a warning)
 * are derived from here, never copied into lists elsewhere (`eventsIn`).
 */
export const eventCatalog = {
  'platform.started': {},
  'platform.stopped': {},
  'config.loaded': {},
  'pki.initialized': {},
  'pki.server_certificate_issued': {},
  'device.added': { groups: ['access'] },
  'device.updated': { groups: ['access', 'device-access'], personal: ['changes.attributes'] },
  'device.disabled': {},
  'device.enabled': {},
  'device.revoked': {},
  'enrollment.token_issued': {},
  'enrollment.refused': { groups: ['guessing', 'warning'] },
  'certificate.issued': {},
  'certificate.revoked': {},
  'mqtt.connected': {},
  'mqtt.reauthenticated': {},
  'mqtt.disconnected': {},
  'mqtt.connect_refused': { groups: ['guessing', 'warning'] },
  'mqtt.publish_denied': { groups: ['warning'] },
  'mqtt.subscribe_denied': { groups: ['warning'] },
  'mqtt.session_dropped': {},
  'mqtt.identity_conflict': {},
  'mqtt.retained_refused': { groups: ['warning'] },
  'mqtt.delivery_dropped': { groups: ['warning'] },
  'tls.handshake_failed': { groups: ['guessing', 'warning'] },
  'user.created': {},
  'user.updated': {},
  'user.setup_completed': { personal: ['address'] },
  'auth.sign_in_succeeded': { personal: ['address'] },
  'auth.sign_in_failed': { groups: ['guessing', 'warning'], personal: ['address'] },
  'auth.second_factor_succeeded': { personal: ['address'] },
  'auth.second_factor_failed': { groups: ['warning'], personal: ['address'] },
  'auth.locked_out': { groups: ['warning'], personal: ['address'] },
  'auth.factor_enrolled': { personal: ['name'] },
  'auth.factor_removed': { personal: ['name'] },
  'auth.recovery_codes_generated': {},
  'auth.recovery_code_used': {},
  'auth.signed_out': {},
  'api_token.created': {},
  'api_token.revoked': {},
  'api_token.used_from_new_address': { personal: ['address', 'previous'] },
  'policy.updated': { groups: ['access'] },
  'policy.deleted': { groups: ['access'] },
  'policy.attached': { groups: ['access'] },
  'policy.detached': { groups: ['access'] },
  'zone.updated': { groups: ['access'] },
  'zone.deleted': { groups: ['access'] },
  'conduit.updated': { groups: ['access'] },
  'conduit.deleted': { groups: ['access'] },
  'device.quarantined': { groups: ['access', 'device-access'] },
  'device.released': { groups: ['access', 'device-access'] },
  'firmware.release_created': {},
  'firmware.release_uploaded': {},
  'firmware.upload_refused': { groups: ['warning'] },
  'firmware.release_retired': {},
  'firmware.release_discarded': {},
  'firmware.tuf_key_created': {},
  'firmware.tuf_metadata_prepared': {},
  'firmware.tuf_metadata_published': {},
  'firmware.tuf_metadata_refused': { groups: ['warning'] },
  'firmware.update_succeeded': {},
  'firmware.update_failed': { groups: ['warning'] },
  'rollout.created': {},
  'rollout.phase_started': {},
  'rollout.waiting_approval': {},
  'rollout.approved': {},
  'rollout.paused': {},
  'rollout.resumed': {},
  'rollout.aborted': {},
  'rollout.completed': {},
  'vulnerability.advisories_imported': {},
  'vulnerability.exposure_alert': { groups: ['warning'] },
  'firewall.ban_created': {},
  'firewall.ban_removed': {},
  'firewall.connection_refused': { groups: ['warning'] },
  'firewall.temporary_ban': { groups: ['warning'] },
  'firewall.throttled': { groups: ['warning'] },
  'firewall.disconnected': {},
  'device.metrics_rejected': { groups: ['warning'] },
  'monitor.profile_updated': { groups: ['profile'] },
  'monitor.profile_deleted': { groups: ['profile'] },
  'monitor.profile_attached': { groups: ['profile'] },
  'monitor.profile_detached': { groups: ['profile'] },
  'alert.raised': { groups: ['alert'] },
  'alert.acknowledged': { groups: ['alert'] },
  'alert.assigned': { groups: ['alert'] },
  'alert.noted': { groups: ['alert'] },
  'alert.resolved': { groups: ['alert'] },
  'response.executed': { groups: ['alert'] },
  'response.failed': { groups: ['alert', 'warning'] },
  'notification.channel_created': {},
  'notification.channel_updated': {},
  'notification.channel_deleted': {},
  'notification.channel_failing': { groups: ['warning'] },
  'notification.channel_recovered': {},
  'app.added': { groups: ['access'] },
  'app.updated': { groups: ['access'] },
  'app.revoked': {},
  'app.token_created': {},
  'app.token_revoked': {},
  'app.certificate_issued': {},
  'app.delivery_dropped': { groups: ['warning'] },
  'device.command_sent': {},
  'device.command_result': {},
  'device.command_timed_out': { groups: ['warning'] },
  'telemetry.pattern_set': {},
  'telemetry.pattern_removed': {},
  'telemetry.retention_applied': {},
  'privacy.schema_set': {},
  'privacy.schema_removed': {},
  'privacy.payload_refused': { groups: ['warning'] },
  'privacy.subject_added': { personal: ['users'] },
  'privacy.subject_updated': { personal: ['changes.addUsers', 'changes.removeUsers'] },
  'privacy.consent_given': {},
  'privacy.consent_withdrawn': {},
  'privacy.request_received': {},
  'privacy.request_completed': {},
  'privacy.request_overdue': { groups: ['warning'] },
  'privacy.retention_applied': {},
  'privacy.decrypted': {},
  'privacy.telemetry_exported': {},
  'privacy.pseudonym_key_rotated': {},
  'compliance.baseline_applied': {},
  'compliance.run_completed': {},
  'compliance.check_regressed': { groups: ['warning'] },
  'compliance.check_recovered': {},
  'compliance.attestation_recorded': {},
  'compliance.attestation_revoked': {},
  'compliance.waiver_granted': {},
  'compliance.waiver_approved': {},
  'compliance.waiver_revoked': {},
  'compliance.report_generated': {},
  // Physical security (attestation/, issue 17).
  'device.lost': { groups: ['access', 'device-access'] },
  'device.found': { groups: ['access', 'device-access'] },
  'device.decommissioned': { groups: ['access', 'device-access'] },
  'device.lost_seen': { groups: ['warning'] },
  'device.tamper_reported': { groups: ['warning'] },
  'device.location_jump': { groups: ['warning'] },
  'device.security_report_rejected': { groups: ['warning'] },
  'attestation.key_registered': {},
  'attestation.key_bound': { groups: ['access', 'device-access'] },
  'attestation.key_refused': { groups: ['warning'] },
  'attestation.key_removed': { groups: ['access', 'device-access'] },
  'attestation.verified': { groups: ['access', 'device-access'] },
  'attestation.failed': { groups: ['access', 'device-access', 'warning'] },
  'attestation.overdue': { groups: ['access', 'device-access', 'warning'] },
  'physical.site_updated': {},
  'physical.access_granted': { personal: ['person'] },
  'physical.access_revoked': { personal: ['person'] },
  'risk.asset_updated': {},
  'risk.asset_deleted': {},
  'risk.tara_saved': {},
  'risk.created': {},
  'risk.updated': {},
  'risk.reviewed': {},
  'risk.changed': {},
  'risk.raised': { groups: ['warning'] },
  'risk.lowered': {},
  'risk.review_due': { groups: ['warning'] },
  'risk.feed_imported': {},
  'operations.requested': {},
  'operations.approved': {},
  'operations.rejected': {},
  'operations.cancelled': {},
  'operations.expired': {},
  'operations.executed': {},
} as const satisfies Record<keyof EventData, EventMeta>;

/**
 * - `access`: compiled device access may differ afterwards (live sessions are recompiled);
 * - `device-access`: of those, the ones about one device (only its sessions);
 * - `alert`: the alert lifecycle (the alert streams follow these);
 * - `profile`: security profiles changed (detector settings reload);
 * - `guessing`: a refused credential (counted by the credential-guessing detector);
 * - `warning`: refusals, denials and failures, worth a warning even when nothing rates them.
 */
export const eventGroups = ['access', 'device-access', 'alert', 'profile', 'guessing', 'warning'] as const;
export type EventGroup = (typeof eventGroups)[number];

interface EventMeta {
  groups?: readonly EventGroup[];
  /**
   * Data fields holding personal data (dotted paths, `changes.attributes`): the audit log stores them sealed
   * (personal.ts), so erasing their owner leaves the chain verifiable. Add paths, never remove one: entries
   * already sealed at a path are unsealed only while the catalog names it.
   */
  personal?: readonly string[];
}

export type EventType = keyof typeof eventCatalog;
export const eventTypes = Object.keys(eventCatalog) as readonly EventType[];

type GroupsOf<T extends EventType> = (typeof eventCatalog)[T] extends { groups: readonly (infer G)[] }
  ? G
  : never;
/** The event types of a group, as a type. */
export type EventsIn<G extends EventGroup> = {
  [T in EventType]: G extends GroupsOf<T> ? T : never;
}[EventType];

/** The event types of a group, from the catalog. */
export function eventsIn<G extends EventGroup>(group: G): ReadonlySet<EventsIn<G>> {
  return new Set(eventTypes.filter((t): t is EventsIn<G> => isIn(group, t)));
}

/** Is this event type in the group? (narrows the type) */
export function isIn<G extends EventGroup>(group: G, type: EventType): type is EventsIn<G> {
  return (eventCatalog[type] as EventMeta).groups?.includes(group) ?? false;
}

/** The data fields of an event type that hold personal data (see `EventMeta.personal`). */
export function personalFieldsOf(type: string): readonly string[] {
  const meta: EventMeta | undefined = (eventCatalog as Record<string, EventMeta>)[type];
  return meta?.personal ?? [];
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json | undefined };

/** A listener a node bound at its start (platform.started), as the compliance checks read it. */
interface StartedListener {
  name: 'mqtt' | 'mqtt-dev' | 'https' | 'https-device';
  /** The port the listener got. */
  port: number;
  transport: 'tls' | 'tcp';
  authentication: 'mutual-tls' | 'mutual-tls-or-app-token' | 'app-token' | 'user-sign-in' | 'none';
  /** The lowest TLS version the listener accepts (Node's default when the options set none); null for plaintext. */
  minTlsVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' | null;
}

/** The data each event carries. Adding an event type does not compile until its data is declared. */
export interface EventData {
  /** `listeners`: what the node bound, described from the options handed to tls/https and the ports it got. */
  'platform.started': {
    mqttPort: number;
    httpsPort: number;
    store: string;
    version: string;
    listeners: StartedListener[];
  };
  'platform.stopped': { reason: string };
  /** At every start: the effective settings (secrets redacted) and the keys changed since the last start. */
  'config.loaded': { source: string; settings: Record<string, Json>; changed: string[] };
  'pki.initialized': { rootSerial: string; issuingSerial: string; algorithm: string };
  'pki.server_certificate_issued': { serial: string; hostnames: string[]; notAfter: number };
  'device.added': { group: string | null };
  'device.updated': { changes: Record<string, Json> };
  'device.disabled': { reason?: string };
  'device.enabled': Record<string, never>;
  'device.revoked': { revokedCertificates: string[]; reason?: string };
  'enrollment.token_issued': { tokenId: string; expiresAt: number };
  'enrollment.refused': {
    operation: string;
    reason: string;
    code: string;
    remoteAddress?: string;
    suppressed?: number;
  };
  'certificate.issued': {
    serial: string;
    operation: 'simpleenroll' | 'simplereenroll';
    keyAlgorithm: string;
    notAfter: number;
    remoteAddress?: string;
  };
  'certificate.revoked': { serial: string; reason: string };
  'mqtt.connected': { remoteAddress: string; certSerial: string };
  /** An app session re-authenticated (MQTT 5 AUTH) with another token of its app: it now holds that token. */
  'mqtt.reauthenticated': { clientId: string; tokenId: string };
  'mqtt.disconnected': { remoteAddress: string; reason: string };
  'mqtt.connect_refused': {
    remoteAddress: string;
    reason: string;
    /** The CONNACK return code sent; absent when the connection was closed without one (malformed, too large, timed out). */
    returnCode?: number;
    certSerial?: string;
    /** Refusals from this address left unrecorded since the last recorded one (rate-limited before authentication). */
    suppressed?: number;
  };
  'mqtt.publish_denied': { topic: string; reason: string };
  'mqtt.subscribe_denied': { topic: string; reason: string };
  'mqtt.session_dropped': { reason: string; trigger: string };
  /** Sessions of one identity kept taking each other over: two agents run with it (a cloned device). */
  'mqtt.identity_conflict': {
    remoteAddresses: string[];
    takeovers: number;
    windowMs: number;
    certSerial: string;
  };
  /** A retained PUBLISH over the device's or the broker's retained quota: delivered, not retained. */
  'mqtt.retained_refused': { topic: string; bytes: number; reason: string; suppressed?: number };
  /**
   * Messages the broker dropped for one session since the last such event (at most one per `windowMs` per
   * client id): its queue full, too large for the client, or expired while waiting.
   */
  'mqtt.delivery_dropped': { dropped: number; windowMs: number; clientId: string };
  'tls.handshake_failed': {
    listener: 'mqtt' | 'https';
    remoteAddress: string;
    reason: string;
    /** The client certificate's serial, when the refusal came after the handshake (unknown certificate). */
    certSerial?: string;
    suppressed?: number;
  };
  'user.created': { role: string; groups: string[] | null };
  'user.updated': { changes: Record<string, Json> };
  'user.setup_completed': { address: string };
  'auth.sign_in_succeeded': { address: string; method: 'password' | 'setup'; next: string };
  'auth.sign_in_failed': { address: string; reason: string };
  'auth.second_factor_succeeded': { address: string; method: 'totp' | 'recovery_code' | 'webauthn' };
  'auth.second_factor_failed': {
    address: string;
    method: 'totp' | 'recovery_code' | 'webauthn';
    reason: string;
  };
  'auth.locked_out': { address: string; scope: 'account' | 'address'; until: number };
  'auth.factor_enrolled': { factor: 'totp' | 'webauthn'; name?: string };
  'auth.factor_removed': { factor: 'totp' | 'webauthn'; name?: string };
  'auth.recovery_codes_generated': { count: number };
  'auth.recovery_code_used': { remaining: number };
  'auth.signed_out': { everywhere: boolean; sessions: number };
  'api_token.created': { tokenId: string; name: string; role: string; expiresAt: number };
  'api_token.revoked': { tokenId: string };
  'api_token.used_from_new_address': { tokenId: string; address: string; previous: string | null };
  'policy.updated': { version: number; warnings: string[] };
  'policy.deleted': { version: number };
  'policy.attached': { kind: string; target: string };
  'policy.detached': { kind: string; target: string };
  'zone.updated': { securityLevel: number };
  'zone.deleted': Record<string, never>;
  'conduit.updated': { from: string; to: string; topics: string[] };
  'conduit.deleted': Record<string, never>;
  'device.quarantined': { reason?: string };
  'device.released': Record<string, never>;
  'firmware.release_created': {
    name: string;
    version: string;
    securityVersion: number;
    hardwareIds: string[];
    sbomComponents: number;
  };
  'firmware.release_uploaded': { name: string; version: string; size: number; sha256: string };
  /** An upload refused (size, hash, truncation); nothing of it was kept. */
  'firmware.upload_refused': { name: string; version: string; code: string; reason: string };
  'firmware.release_retired': { name: string; version: string; reason?: string };
  'firmware.release_discarded': { name: string; version: string };
  'firmware.tuf_key_created': { role: string; keyid: string };
  /** Unsigned metadata prepared for offline signing (targets, or a root for key rotation). */
  'firmware.tuf_metadata_prepared': { role: string; version: number };
  'firmware.tuf_metadata_published': { role: string; version: number; expires: number; keyids: string[] };
  'firmware.tuf_metadata_refused': { role: string; reason: string };
  'firmware.update_succeeded': { target: string; rolloutId?: string; attempt?: number };
  'firmware.update_failed': {
    target: string;
    reason: string;
    detail?: string;
    rolloutId?: string;
    attempt?: number;
  };
  'rollout.created': { releaseId: string; target: string; devices: number; phases: number[] };
  'rollout.phase_started': { phase: number; percent: number; devices: number };
  'rollout.waiting_approval': { phase: number };
  'rollout.approved': { phase: number };
  /** `automatic`: a gate tripped (this event is the alert). */
  'rollout.paused': {
    reason: string;
    phase: number;
    automatic: boolean;
    failureRate?: number;
    threshold?: number;
  };
  'rollout.resumed': { phase: number };
  'rollout.aborted': { reason?: string };
  'rollout.completed': { succeeded: number; failed: number; skipped: number };
  'vulnerability.advisories_imported': {
    imported: number;
    unchanged: number;
    matches: number;
    source: string;
  };
  /** A critical (or high) advisory affects releases that devices run. */
  'vulnerability.exposure_alert': {
    advisoryId: string;
    severity: string;
    score: number | null;
    releases: string[];
    devices: number;
  };
  'firewall.ban_created': {
    /** Absent in entries from before bans had ids in events. */
    id?: string;
    kind: string;
    value: string;
    reason: string;
    expiresAt: number | null;
    /** manual: an operator or a response; automatic: the firewall rule named in `rule`. */
    origin?: 'manual' | 'automatic';
    rule?: string;
  };
  'firewall.ban_removed': { id?: string; kind: string; value: string; origin?: 'manual' | 'automatic' };
  'firewall.connection_refused': { remoteAddress: string; reason: string; suppressed?: number };
  /** No longer emitted (0007: every ban is stored, `firewall.ban_created`); kept for older entries. */
  'firewall.temporary_ban': {
    scope: 'address' | 'device';
    remoteAddress: string;
    reason: string;
    until: number;
  };
  'firewall.throttled': { reason: string; waitMs: number; suppressed?: number };
  'firewall.disconnected': { reason: string; remoteAddress: string };
  /** A device's report on `devices/{id}/metrics` did not match the schema; nothing of it was kept. */
  'device.metrics_rejected': { reason: string; suppressed?: number };
  'monitor.profile_updated': { version: number; behaviours: number };
  'monitor.profile_deleted': { version: number };
  'monitor.profile_attached': { kind: string; target: string };
  'monitor.profile_detached': { kind: string; target: string };
  /** A detector fired; `subject` is what it is about (a device, an address, a user). */
  'alert.raised': {
    alertId: string;
    detector: string;
    severity: string;
    title: string;
    evidence: Record<string, Json>;
  };
  'alert.acknowledged': { alertId: string; detector: string };
  'alert.assigned': { alertId: string; assignee: string | null };
  'alert.noted': { alertId: string; text: string };
  /** `automatic`: the behaviour cleared (or the alert was superseded) without an operator. */
  'alert.resolved': { alertId: string; detector: string; automatic: boolean; resolution: string };
  'response.executed': {
    alertId: string;
    action: string;
    automatic: boolean;
    detector: string;
    severity: string;
    title: string;
    detail?: string;
  };
  'response.failed': { alertId: string; action: string; automatic: boolean; reason: string };
  'notification.channel_created': { name: string; kind: string; format: string; target: string };
  'notification.channel_updated': { name: string; changes: string[] };
  'notification.channel_deleted': { name: string };
  /** Deliveries to a channel started failing; they are retried (nothing is skipped) until it recovers. */
  'notification.channel_failing': { name: string; error: string; pendingFromSeq: number };
  'notification.channel_recovered': { name: string; failedForMs: number; attempts: number };
  /** An application principal (subject `app:<name>`); `purpose` is a fideslang data-use key. */
  'app.added': { purpose: string | null; zone: string | null; grants: string[] };
  'app.updated': { changes: Record<string, Json> };
  /** Its certificates and tokens were revoked with it; its live sessions end within 1 s. */
  'app.revoked': { reason?: string; revokedCertificates: string[]; revokedTokens: number };
  'app.token_created': { tokenId: string; expiresAt: number | null };
  'app.token_revoked': { tokenId: string };
  'app.certificate_issued': { serial: string; notAfter: number };
  /** Messages to the app were dropped because its connection did not keep up (bounded queue). */
  'app.delivery_dropped': { dropped: number; queuedBytes: number; windowMs: number; clientId: string };
  /** A command to the device (subject), by the platform (`via: platform`) or an app over MQTT. */
  'device.command_sent': {
    commandId: string;
    name: string;
    issuedAt: number;
    expiresAt: number | null;
    via: 'platform' | 'mqtt';
    /** The command's `data` (what the device receives), when the platform sent it. */
    data?: Json;
  };
  /** The device's answer on `devices/{id}/commands/{name}/result`. */
  'device.command_result': {
    commandId: string;
    name: string;
    status: 'ok' | 'failed' | 'refused';
    message?: string;
    result?: Json;
  };
  'device.command_timed_out': { commandId: string; name: string; timeoutMs: number; online: boolean };
  'telemetry.pattern_set': { pattern: string; retentionMs: number };
  'telemetry.pattern_removed': { pattern: string; deleted: number };
  'telemetry.retention_applied': { pattern: string; deleted: number; before: number };
  /** A data schema was stored (subject none; `name` is the schema's). `changes` lists what differs. */
  'privacy.schema_set': {
    name: string;
    topic: string;
    version: number;
    fields: number;
    personal: number;
    changes: string[];
  };
  'privacy.schema_removed': { name: string; topic: string };
  /** A device message did not match its topic's data schema: refused, never forwarded or stored. */
  'privacy.payload_refused': { topic: string; schema: string; reason: string };
  /** Subject `person:<id>` (sealed in the audit log: erased with the person). */
  'privacy.subject_added': { kind: string; devices: string[]; users: string[] };
  'privacy.subject_updated': { changes: Record<string, Json> };
  'privacy.consent_given': { purpose: string; noticeVersion: string };
  'privacy.consent_withdrawn': { purpose: string; noticeVersion: string };
  /** Subject `request:<id>`: a data-subject request (GDPR Art. 15-18) and its deadline (Art. 12). */
  'privacy.request_received': {
    requestId: string;
    kind: 'access' | 'rectification' | 'erasure' | 'restriction';
    receivedAt: number;
    dueAt: number;
  };
  /**
   * Subject `request:<id>`. For an erasure this is the receipt: counts per module, keys destroyed and audit
   * values erased; never the data, never the person's id.
   */
  'privacy.request_completed': {
    requestId: string;
    kind: 'access' | 'rectification' | 'erasure' | 'restriction';
    status: 'completed' | 'rejected';
    counts: Record<string, number>;
    note?: string;
  };
  'privacy.request_overdue': {
    requestId: string;
    kind: 'access' | 'rectification' | 'erasure' | 'restriction';
    receivedAt: number;
    dueAt: number;
  };
  /** One store's retention run for one data schema: what was past `before` and deleted. */
  'privacy.retention_applied': { schema: string; store: string; deleted: number; before: number };
  /** Encrypted values were decrypted for a caller whose purpose the fields allow. */
  'privacy.decrypted': { values: number; purpose: string; refused: number };
  /** A de-identified telemetry export passed its k-anonymity check. */
  'privacy.telemetry_exported': { schema: string; rows: number; k: number; quasiIdentifiers: string[] };
  'privacy.pseudonym_key_rotated': { period: number; deletedPeriods: number };
  /**
   * Subject `baseline`: the organisation baseline (compliance/) was applied as `version`; `changes` is the diff
   * from the version before (dotted paths, JSON values; `before`/`after` absent when the path was added/removed).
   */
  'compliance.baseline_applied': {
    version: number;
    name: string;
    sha256: string;
    changes: { path: string; before?: Json; after?: Json }[];
  };
  /** Subject `compliance_run:<id>`: a run finished; scores per standard (0..1, null: no applicable clause). */
  'compliance.run_completed': {
    runId: string;
    trigger: 'manual' | 'schedule' | 'baseline';
    baselineVersion: number;
    checks: { pass: number; fail: number; error: number; waived: number };
    scores: Record<string, number | null>;
    regressions: string[];
    recoveries: string[];
  };
  /** Subject `check:<id>`: a check that passed in the run before fails now (raises an alert). */
  'compliance.check_regressed': {
    runId: string;
    check: string;
    title: string;
    severity: 'critical' | 'high' | 'medium' | 'low';
    summary: string;
    /** Clause ids per standard the check evidences. */
    clauses: Record<string, string[]>;
    evidence: number;
  };
  /** Subject `check:<id>`: a check that failed in the run before passes now (resolves the alert). */
  'compliance.check_recovered': { runId: string; check: string; title: string };
  /** Subject `attestation:<id>`: a manual clause attested by its owner, with evidence files. */
  'compliance.attestation_recorded': {
    attestationId: string;
    standard: string;
    clause: string;
    owner: string;
    reviewAt: number;
    expiresAt: number;
    files: { name: string; sha256: string; size: number }[];
  };
  'compliance.attestation_revoked': {
    attestationId: string;
    standard: string;
    clause: string;
    reason: string;
  };
  /** Subject `waiver:<id>`: asks to accept a failing check until `expiresAt`; pending until `approver` approves. */
  'compliance.waiver_granted': {
    waiverId: string;
    check: string;
    reason: string;
    approver: string;
    expiresAt: number;
  };
  /** Subject `waiver:<id>`: the named approver approved it (actor); in force from now until it expires. */
  'compliance.waiver_approved': { waiverId: string; check: string; approver: string };
  'compliance.waiver_revoked': { waiverId: string; check: string; reason: string };
  /** A report left the platform (who took which standard, in which form). */
  'compliance.report_generated': { standard: string; format: 'html' | 'json' | 'oscal'; runId: string };

  // --- physical security (attestation/, issue 17); subject `device:<id>` unless said otherwise ---
  /** Reported lost or stolen by an operator (actor): certificates revoked, quarantined for any reappearance. */
  'device.lost': { reason?: string; stolen: boolean; revokedCertificates: string[] };
  /** A lost device is back: `registered` again (re-enrolls with a new token), still quarantined. */
  'device.found': { reason?: string };
  /**
   * Retired: certificates revoked, data erased per module (counts), the row kept so its id is never reused.
   * This entry is the proof (its seq and hash are answered to the operator).
   */
  'device.decommissioned': { reason?: string; revokedCertificates: string[]; erased: Record<string, number> };
  /** A lost device's certificate or TPM was presented again (at most one entry a minute per device). */
  'device.lost_seen': {
    via: 'mqtt' | 'https' | 'tpm';
    remoteAddress: string | null;
    certSerial?: string;
    suppressed?: number;
  };
  /**
   * A verified tamper report, or a verified health report whose security state turned bad (secure boot off,
   * debug port on, enclosure open): `source` says which.
   */
  'device.tamper_reported': {
    reason: string;
    source: 'tamper' | 'health';
    detail?: string;
    reportedAt: number;
    seq: number;
    /** Serial of the certificate whose key signed the report. */
    keyId: string;
    location?: { lat: number; lon: number };
  };
  /** Two located reports further apart than the configured speed allows (physical.maxSpeedKmh). */
  'device.location_jump': {
    from: { lat: number; lon: number; at: number };
    to: { lat: number; lon: number; at: number };
    distanceKm: number;
    speedKmh: number;
    maxSpeedKmh: number;
  };
  /** A tamper or health report refused: unsigned, wrong signature, foreign or revoked key, replayed, stale. */
  'device.security_report_rejected': { kind: 'tamper' | 'health'; reason: string; suppressed?: number };
  /** A TPM attestation key registered (pending until its credential is activated). */
  'attestation.key_registered': { akName: string; ekHash: string; algorithm: string };
  /** The credential was activated: the key lives in the TPM of that endorsement key. */
  'attestation.key_bound': { akName: string; ekHash: string };
  /** A registration or activation refused (bad key attributes, wrong secret, expired challenge, lost TPM). */
  'attestation.key_refused': { reason: string; ekHash?: string };
  'attestation.key_removed': { akName: string; reason: string };
  /** An affirming or warning verdict. */
  'attestation.verified': {
    resultId: string;
    tier: 'affirming' | 'warning';
    reason: string;
    detail: string;
    release: string | null;
  };
  /** A contraindicated verdict: the device is held in quarantine by policy until it attests again. */
  'attestation.failed': {
    resultId: string;
    tier: 'contraindicated';
    reason: string;
    detail: string;
    release: string | null;
    mismatchedPcrs: number[];
  };
  /** A device with a bound key has no affirming verdict younger than attestation.maxAge. */
  'attestation.overdue': { lastAt: number | null; maxAgeMs: number };
  /** Subject `site:<name>`. */
  'physical.site_updated': { owner: string; groups: string[]; created: boolean };
  /**
   * Subject `site:<name>`: `person` is sealed personal data; a record linked to a data subject names neither
   * the person nor the subject id (the record, which an erasure deletes, holds the link).
   */
  'physical.access_granted': {
    accessId: string;
    person?: string;
    role: string | null;
    reviewAt: number;
    expiresAt: number | null;
  };
  /** `person` as on the grant; none when the record was linked to a data subject or erased with them. */
  'physical.access_revoked': { accessId: string; person?: string; reason: string };
  /** An asset's owner, description or requirements were set (a manual asset created or changed). */
  'risk.asset_updated': { kind: string; created: boolean; changes: string[] };
  'risk.asset_deleted': { kind: string };
  /** A TARA was saved (rated); its threat scenarios created, updated or closed register risks. */
  'risk.tara_saved': {
    item: string;
    version: number;
    threats: number;
    created: number;
    updated: number;
    closed: number;
  };
  /** A register risk was created (from a TARA threat scenario, a zone's security-level gap, or by hand). */
  'risk.created': { title: string; source: string; risk: number };
  /** Owner, treatment, due date or status changed by a person (or a TARA re-save). */
  'risk.updated': { changes: string[]; status: string; note?: string };
  /** A person re-assessed the risk: the next review is due after the baseline interval. */
  'risk.reviewed': { reviewDueAt: number; note: string };
  /** The live value moved (a vulnerability, a failing check, an open alert, a zone gap). */
  'risk.changed': { from: number; to: number; base: number; factors: string[] };
  /** The live value rose the baseline's threshold or more above the assessed one. */
  'risk.raised': { title: string; from: number; to: number; base: number; factors: string[] };
  /** It fell back below the threshold. */
  'risk.lowered': { title: string; from: number; to: number; base: number };
  /** The risk is due for re-assessment (the baseline's risk.reassessEvery passed since the last one). */
  'risk.review_due': { title: string; reviewDueAt: number; owner: string | null };
  /** An offline feed was imported: the CISA KEV catalog or FIRST EPSS scores. */
  'risk.feed_imported': { feed: 'kev' | 'epss'; entries: number; version: string | null; source: string };
  /**
   * A bulk device action was asked (subject `operation:<id>`): its selection resolved to `deviceIds`, and
   * whether it waits for a second person (at or above the baseline's approvals.bulkDevices) or runs at once.
   */
  'operations.requested': {
    action: string;
    selection: string;
    count: number;
    deviceIds: string[];
    needsApproval: boolean;
    threshold: number;
    reason?: string;
  };
  /** A second person (not the requester) approved it: it runs now. */
  'operations.approved': { action: string; count: number; requestedBy: string; note?: string };
  /** A second person refused it: nothing runs. */
  'operations.rejected': { action: string; count: number; requestedBy: string; note?: string };
  /** Its requester withdrew it: nothing runs. */
  'operations.cancelled': { action: string; count: number; note?: string };
  /** Nobody approved it in time (the baseline's approvals.expireAfter): nothing runs. */
  'operations.expired': { action: string; count: number; requestedBy: string };
  /** It ran: how many devices it changed, left as they were, or failed on (each device has its own event). */
  'operations.executed': {
    action: string;
    count: number;
    ok: number;
    skipped: number;
    failed: number;
    failedIds: string[];
  };
}

export interface SecurityEvent<T extends EventType = EventType> {
  type: T;
  /** Who did it: `system`, `cli`, `device:<id>`, `user:<name>`, `anonymous@<address>`. */
  actor: string;
  /** What it was done to, e.g. `device:<id>`. */
  subject?: string | undefined;
  data: EventData[T];
}

/** An event as the audit log holds it: a union keyed by `type`, so `entry.type === 'x'` narrows `entry.data`. */
type EntryOfType = {
  [K in EventType]: {
    seq: number;
    ts: number;
    type: K;
    actor: string;
    subject: string | null;
    data: EventData[K];
    prevHash: string;
    hash: string;
  };
};
export type AuditEntry<T extends EventType = EventType> = Extract<EntryOfType[EventType], { type: T }>;

/** Is this entry of that type? (narrows `data` to the type's data) */
export function isEvent<T extends EventType>(entry: AuditEntry, type: T): entry is AuditEntry<T> {
  return entry.type === type;
}

/** The entries of one type, typed. */
export function entriesOf<T extends EventType>(entries: readonly AuditEntry[], type: T): AuditEntry<T>[] {
  return entries.filter((e): e is AuditEntry<T> => isEvent(e, type));
}
