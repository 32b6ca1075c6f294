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

export interface Database {
  devices: DevicesTable;
  enrollment_tokens: EnrollmentTokensTable;
  certificates: CertificatesTable;
  pki_material: PkiMaterialTable;
  audit_log: AuditLogTable;
  audit_anchor: AuditAnchorTable;
  users: UsersTable;
  recovery_codes: RecoveryCodesTable;
  webauthn_credentials: WebauthnCredentialsTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  auth_throttle: AuthThrottleTable;
}

export type Db = Kysely<Database>;
/** A database handle or an open transaction: store functions take it first. */
export type DbOrTx = Kysely<Database> | Transaction<Database>;
