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

export interface Database {
  devices: DevicesTable;
  enrollment_tokens: EnrollmentTokensTable;
  certificates: CertificatesTable;
  pki_material: PkiMaterialTable;
  audit_log: AuditLogTable;
  audit_anchor: AuditAnchorTable;
}

export type Db = Kysely<Database>;
/** A database handle or an open transaction: store functions take it first. */
export type DbOrTx = Kysely<Database> | Transaction<Database>;
