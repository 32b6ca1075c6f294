/** Every security-relevant thing that happens is one of these, on one bus, in one audit log. */
export const eventTypes = [
  'platform.started',
  'platform.stopped',
  'config.loaded',
  'pki.initialized',
  'pki.server_certificate_issued',
  'device.added',
  'device.updated',
  'device.disabled',
  'device.enabled',
  'device.revoked',
  'enrollment.token_issued',
  'enrollment.refused',
  'certificate.issued',
  'certificate.revoked',
  'mqtt.connected',
  'mqtt.disconnected',
  'mqtt.connect_refused',
  'mqtt.publish_denied',
  'mqtt.subscribe_denied',
  'mqtt.session_dropped',
  'tls.handshake_failed',
  'user.created',
  'user.updated',
  'user.setup_completed',
  'auth.sign_in_succeeded',
  'auth.sign_in_failed',
  'auth.second_factor_succeeded',
  'auth.second_factor_failed',
  'auth.locked_out',
  'auth.factor_enrolled',
  'auth.factor_removed',
  'auth.recovery_codes_generated',
  'auth.recovery_code_used',
  'auth.signed_out',
  'api_token.created',
  'api_token.revoked',
  'api_token.used_from_new_address',
] as const;
export type EventType = (typeof eventTypes)[number];

type Json = string | number | boolean | null | Json[] | { [key: string]: Json | undefined };

/** The data each event carries. Adding an event type does not compile until its data is declared. */
export interface EventData {
  'platform.started': { mqttPort: number; httpsPort: number; store: string; version: string };
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
  'mqtt.disconnected': { remoteAddress: string; reason: string };
  'mqtt.connect_refused': { remoteAddress: string; reason: string; returnCode: number; certSerial?: string };
  'mqtt.publish_denied': { topic: string; reason: string };
  'mqtt.subscribe_denied': { topic: string; reason: string };
  'mqtt.session_dropped': { reason: string; trigger: string };
  'tls.handshake_failed': {
    listener: 'mqtt' | 'https';
    remoteAddress: string;
    reason: string;
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
  'auth.factor_removed': { factor: 'totp' | 'webauthn' };
  'auth.recovery_codes_generated': { count: number };
  'auth.recovery_code_used': { remaining: number };
  'auth.signed_out': { everywhere: boolean; sessions: number };
  'api_token.created': { tokenId: string; name: string; role: string; expiresAt: number };
  'api_token.revoked': { tokenId: string };
  'api_token.used_from_new_address': { tokenId: string; address: string; previous: string | null };
}

export interface SecurityEvent<T extends EventType = EventType> {
  type: T;
  /** Who did it: `system`, `cli`, `device:<id>`, `user:<name>`, `anonymous@<address>`. */
  actor: string;
  /** What it was done to, e.g. `device:<id>`. */
  subject?: string | undefined;
  data: EventData[T];
}

/** An event as the audit log holds it. */
export interface AuditEntry {
  seq: number;
  ts: number;
  type: EventType;
  actor: string;
  subject: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}
