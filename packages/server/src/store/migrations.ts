import { sql, type Kysely, type Migration } from 'kysely';

// Portable types only (text, integer, bigint): the same migrations run on SQLite and PostgreSQL.
export const migrations: Record<string, Migration> = {
  '0001_foundation': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('group_name', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attributes', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('enrolled_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('devices_group_idx').on('devices').column('group_name').execute();

      await db.schema
        .createTable('enrollment_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('enrollment_tokens_device_idx')
        .on('enrollment_tokens')
        .column('device_id')
        .execute();

      await db.schema
        .createTable('certificates')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('device_id', 'text', (c) => c.references('devices.id'))
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('not_before', 'bigint', (c) => c.notNull())
        .addColumn('not_after', 'bigint', (c) => c.notNull())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('revocation_reason', 'text')
        .execute();
      await db.schema.createIndex('certificates_device_idx').on('certificates').column('device_id').execute();

      await db.schema
        .createTable('pki_material')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('cert_pem', 'text', (c) => c.notNull())
        .addColumn('sealed_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('audit_log')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('ts', 'bigint', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('subject', 'text')
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('mac', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_log_type_idx').on('audit_log').columns(['type', 'seq']).execute();

      await db.schema
        .createTable('audit_anchor')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('mac', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_users': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('username', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('groups', 'text')
        .addColumn('password_hash', 'text')
        .addColumn('previous_password_hash', 'text')
        .addColumn('setup_secret_hash', 'text')
        .addColumn('setup_expires_at', 'bigint')
        .addColumn('totp_secret', 'text')
        .addColumn('totp_enabled', 'integer', (c) => c.notNull())
        .addColumn('totp_last_step', 'bigint')
        .addColumn('disabled_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('recovery_codes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('code_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .execute();
      await db.schema.createIndex('recovery_codes_user_idx').on('recovery_codes').column('user_id').execute();

      await db.schema
        .createTable('webauthn_credentials')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('counter', 'bigint', (c) => c.notNull())
        .addColumn('transports', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('webauthn_credentials_user_idx')
        .on('webauthn_credentials')
        .column('user_id')
        .execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('challenge', 'text')
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_user_idx').on('sessions').column('user_id').execute();

      await db.schema
        .createTable('api_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('last_used_address', 'text')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('api_tokens_user_idx').on('api_tokens').column('user_id').execute();

      await db.schema
        .createTable('auth_throttle')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('failures', 'integer', (c) => c.notNull())
        .addColumn('locked_until', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0003_policy': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('policies')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('policy_versions')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_versions_pk', ['name', 'version'])
        .execute();
      await db.schema
        .createTable('policy_attachments')
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('target_kind', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_attachments_pk', ['policy', 'target_kind', 'target'])
        .execute();
      await db.schema
        .createTable('zones')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('definition', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('conduits')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('definition', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.alterTable('devices').addColumn('quarantined_at', 'bigint').execute();
    },
  },
  '0004_firmware': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('firmware_releases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('filename', 'text', (c) => c.notNull())
        .addColumn('target_path', 'text', (c) => c.notNull().unique())
        .addColumn('hardware_ids', 'text', (c) => c.notNull())
        .addColumn('security_version', 'integer', (c) => c.notNull())
        .addColumn('release_notes', 'text')
        .addColumn('end_of_support', 'bigint', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('sbom', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('uploaded_at', 'bigint')
        .addColumn('retired_at', 'bigint')
        .addUniqueConstraint('firmware_releases_name_version', ['name', 'version'])
        .execute();

      await db.schema
        .createTable('firmware_sbom_components')
        .addColumn('release_id', 'text', (c) => c.notNull().references('firmware_releases.id'))
        .addColumn('idx', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('version', 'text')
        .addColumn('purl', 'text')
        .addPrimaryKeyConstraint('firmware_sbom_components_pk', ['release_id', 'idx'])
        .execute();

      await db.schema
        .createTable('firmware_advisories')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('modified', 'bigint', (c) => c.notNull())
        .addColumn('summary', 'text', (c) => c.notNull())
        .addColumn('aliases', 'text', (c) => c.notNull())
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('score_tenths', 'integer')
        .addColumn('cvss_vector', 'text')
        .addColumn('affected', 'text', (c) => c.notNull())
        .addColumn('withdrawn', 'bigint')
        .addColumn('imported_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('firmware_release_vulnerabilities')
        .addColumn('release_id', 'text', (c) => c.notNull().references('firmware_releases.id'))
        .addColumn('advisory_id', 'text', (c) => c.notNull().references('firmware_advisories.id'))
        .addColumn('purl', 'text', (c) => c.notNull())
        .addColumn('component_version', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('firmware_release_vulnerabilities_pk', ['release_id', 'advisory_id', 'purl'])
        .execute();
      await db.schema
        .createIndex('firmware_release_vulnerabilities_advisory_idx')
        .on('firmware_release_vulnerabilities')
        .column('advisory_id')
        .execute();

      await db.schema
        .createTable('firmware_device_state')
        .addColumn('device_id', 'text', (c) => c.primaryKey().references('devices.id'))
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('target_path', 'text')
        .addColumn('release_id', 'text')
        .addColumn('version', 'text')
        .addColumn('security_version', 'integer', (c) => c.notNull())
        .addColumn('reported_at', 'bigint', (c) => c.notNull())
        .addColumn('installed_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('firmware_device_state_release_idx')
        .on('firmware_device_state')
        .column('release_id')
        .execute();

      await db.schema
        .createTable('tuf_metadata')
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('tuf_metadata_pk', ['role', 'version'])
        .execute();

      await db.schema
        .createTable('tuf_keys')
        .addColumn('keyid', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('sealed_key', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tuf_pending')
        .addColumn('role', 'text', (c) => c.primaryKey())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('firmware_rollouts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('release_id', 'text', (c) => c.notNull().references('firmware_releases.id'))
        .addColumn('selector', 'text', (c) => c.notNull())
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('current_phase', 'integer', (c) => c.notNull())
        .addColumn('phase_started_at', 'bigint', (c) => c.notNull())
        .addColumn('phase_done_at', 'bigint')
        .addColumn('pause_reason', 'text')
        .addColumn('accepted_failures', 'integer', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('firmware_rollout_devices')
        .addColumn('rollout_id', 'text', (c) => c.notNull().references('firmware_rollouts.id'))
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('phase', 'integer', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('step', 'text')
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('detail', 'text')
        .addColumn('sent_at', 'bigint')
        .addColumn('next_attempt_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('firmware_rollout_devices_pk', ['rollout_id', 'device_id'])
        .execute();
      await db.schema
        .createIndex('firmware_rollout_devices_device_idx')
        .on('firmware_rollout_devices')
        .column('device_id')
        .execute();
    },
  },
  '0005_firewall': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('bans')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .execute();
    },
  },
  '0006_monitor': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('security_profiles')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('security_profile_attachments')
        .addColumn('profile_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('security_profile_attachments_pk', ['profile_id', 'kind', 'target'])
        .execute();
      await db.schema
        .createTable('alerts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('dedupe_key', 'text', (c) => c.notNull())
        .addColumn('detector', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('device_id', 'text')
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('evidence', 'text', (c) => c.notNull())
        .addColumn('occurrences', 'integer', (c) => c.notNull())
        .addColumn('first_seen', 'bigint', (c) => c.notNull())
        .addColumn('last_seen', 'bigint', (c) => c.notNull())
        .addColumn('assignee', 'text')
        .addColumn('notes', 'text', (c) => c.notNull())
        .addColumn('acknowledged_at', 'bigint')
        .addColumn('acknowledged_by', 'text')
        .addColumn('resolved_at', 'bigint')
        .addColumn('resolved_by', 'text')
        .addColumn('resolution', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('alerts_dedupe_idx')
        .on('alerts')
        .columns(['dedupe_key', 'status'])
        .execute();
      await db.schema
        .createIndex('alerts_status_idx')
        .on('alerts')
        .columns(['status', 'last_seen'])
        .execute();
      await db.schema.createIndex('alerts_device_idx').on('alerts').column('device_id').execute();
      await db.schema
        .createTable('monitor_state')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('notification_channels')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('secret_sealed', 'text')
        .addColumn('filter', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('cursor', 'bigint', (c) => c.notNull())
        .addColumn('lease_owner', 'text')
        .addColumn('lease_until', 'bigint')
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('last_delivered_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0009_device_ops': {
    async up(db: Kysely<unknown>) {
      // What an operator sees about a device without asking the broker (the CLI runs in its own process):
      // when it was last heard, whether it is connected now, and when its certificate expires.
      for (const column of ['last_seen_at', 'connected_at', 'cert_expires_at'])
        await db.schema.alterTable('devices').addColumn(column, 'bigint').execute();
      await db.schema.alterTable('devices').addColumn('sessions', 'integer').execute();
      await sql`update devices set cert_expires_at = (select max(c.not_after) from certificates c
        where c.device_id = devices.id and c.revoked_at is null)`.execute(db);
      // The responses run for an alert (JSON array), so the alert names them and quarantine can hold it open.
      await db.schema.alterTable('alerts').addColumn('responses', 'text').execute();
    },
  },
  '0007_bans_retained': {
    async up(db: Kysely<unknown>) {
      // Who imposed a ban: `manual` or `automatic:<rule>` (null: a ban from before, made by hand).
      await db.schema.alterTable('bans').addColumn('origin', 'text').execute();
      await db.schema.createIndex('bans_identity_idx').on('bans').columns(['kind', 'value']).execute();
      // Retained messages [MQTT-3.3.1-5], so they survive a restart; the payload as base64 (portable text).
      await db.schema
        .createTable('retained_messages')
        .addColumn('topic', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('qos', 'integer', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('bytes', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('retained_messages_device_idx')
        .on('retained_messages')
        .column('device_id')
        .execute();
    },
  },
  '0010_store_meta': {
    async up(db: Kysely<unknown>) {
      // Facts about the store itself, e.g. the master key check value (secrets/master-key.ts).
      await db.schema
        .createTable('store_meta')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0011_event_outbox': {
    async up(db: Kysely<unknown>) {
      // Events committed with the change they record (events/outbox.ts), until the relay moves them into
      // the audit log. `id` is made by the application and sorts in the order the events were recorded.
      await db.schema
        .createTable('event_outbox')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('subject', 'text')
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0012_apps_and_telemetry': {
    async up(db: Kysely<unknown>) {
      // Applications as principals (apps/), their MQTT tokens and delivery counters; certificates issued
      // to an app; the optional telemetry store (telemetry/).
      await db.schema.alterTable('certificates').addColumn('app_name', 'text').execute();
      await db.schema
        .createTable('apps')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('purpose', 'text')
        .addColumn('zone', 'text')
        .addColumn('description', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createTable('app_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .addColumn('last_used_from', 'text')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('app_tokens_app_idx').on('app_tokens').column('app').execute();
      await db.schema
        .createTable('app_delivery_stats')
        .addColumn('app', 'text', (c) => c.notNull())
        .addColumn('node', 'text', (c) => c.notNull())
        .addColumn('messages', 'bigint', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addColumn('dropped', 'bigint', (c) => c.notNull())
        .addColumn('queued_bytes', 'bigint', (c) => c.notNull())
        .addColumn('connections', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('app_delivery_stats_pk', ['app', 'node'])
        .execute();
      await db.schema
        .createTable('telemetry_patterns')
        .addColumn('pattern', 'text', (c) => c.primaryKey())
        .addColumn('retention_ms', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('telemetry_messages')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('pattern', 'text', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('bytes', 'integer', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('telemetry_messages_device_idx')
        .on('telemetry_messages')
        .columns(['device_id', 'received_at'])
        .execute();
      await db.schema
        .createIndex('telemetry_messages_pattern_idx')
        .on('telemetry_messages')
        .columns(['pattern', 'received_at'])
        .execute();
    },
  },
  '0013_privacy': {
    async up(db: Kysely<unknown>) {
      // Privacy (privacy/): data schemas, data subjects and their links, consents, requests, data keys
      // (crypto-shredding) and pseudonymisation keys; the subject and schema of stored and retained
      // messages; personal values named by audit entries (events/), erasable without breaking the chain.
      for (const table of ['telemetry_messages', 'retained_messages']) {
        await db.schema.alterTable(table).addColumn('subject_id', 'text').execute();
        await db.schema.alterTable(table).addColumn('data_schema', 'text').execute();
      }
      await db.schema
        .createIndex('telemetry_messages_subject_idx')
        .on('telemetry_messages')
        .column('subject_id')
        .execute();
      await db.schema
        .createIndex('telemetry_messages_schema_idx')
        .on('telemetry_messages')
        .columns(['data_schema', 'received_at'])
        .execute();
      await db.schema
        .createTable('privacy_schemas')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('topic', 'text', (c) => c.notNull().unique())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('privacy_subjects')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('restricted_at', 'bigint')
        .execute();
      await db.schema
        .createTable('privacy_subject_links')
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('link_kind', 'text', (c) => c.notNull())
        .addColumn('ref', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('privacy_subject_links_pk', ['subject_id', 'link_kind', 'ref'])
        .execute();
      await db.schema
        .createIndex('privacy_subject_links_ref_idx')
        .on('privacy_subject_links')
        .columns(['link_kind', 'ref'])
        .execute();
      await db.schema
        .createTable('privacy_consents')
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('notice_version', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('privacy_consents_pk', ['subject_id', 'purpose'])
        .execute();
      await db.schema
        .createTable('privacy_requests')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('subject_id', 'text')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addColumn('due_at', 'bigint', (c) => c.notNull())
        .addColumn('completed_at', 'bigint')
        .addColumn('overdue_at', 'bigint')
        .addColumn('result', 'text')
        .addColumn('note', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('privacy_requests_status_idx')
        .on('privacy_requests')
        .columns(['status', 'due_at'])
        .execute();
      await db.schema
        .createTable('privacy_subject_keys')
        .addColumn('subject', 'text', (c) => c.primaryKey())
        .addColumn('key_id', 'text', (c) => c.notNull().unique())
        .addColumn('wrapped_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('privacy_pseudonym_keys')
        .addColumn('period', 'bigint', (c) => c.primaryKey())
        .addColumn('wrapped_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('audit_personal')
        .addColumn('ref', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('audit_personal_owner_value', ['owner', 'value'])
        .execute();
      await db.schema.createIndex('audit_personal_owner_idx').on('audit_personal').column('owner').execute();
    },
  },
  '0014_compliance': {
    async up(db: Kysely<unknown>) {
      // Compliance (compliance/): the organisation baseline (every version kept), runs with their results and
      // evidence, manual attestations with their evidence files, waivers of failing checks.
      await db.schema
        .createTable('compliance_baselines')
        .addColumn('version', 'integer', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('applied_at', 'bigint', (c) => c.notNull())
        .addColumn('applied_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('compliance_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('trigger', 'text', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint', (c) => c.notNull())
        .addColumn('baseline_version', 'integer', (c) => c.notNull())
        .addColumn('summary', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('compliance_runs_finished_idx')
        .on('compliance_runs')
        .column('finished_at')
        .execute();
      await db.schema
        .createTable('compliance_results')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('check_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('summary', 'text', (c) => c.notNull())
        .addColumn('examined', 'integer', (c) => c.notNull())
        .addColumn('evidence', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compliance_results_pk', ['run_id', 'check_id'])
        .execute();
      await db.schema
        .createTable('compliance_evidence_files')
        .addColumn('sha256', 'text', (c) => c.primaryKey())
        .addColumn('media_type', 'text', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('compliance_attestations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('standard', 'text', (c) => c.notNull())
        .addColumn('clause', 'text', (c) => c.notNull())
        .addColumn('statement', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('files', 'text', (c) => c.notNull())
        .addColumn('review_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('compliance_attestations_clause_idx')
        .on('compliance_attestations')
        .columns(['standard', 'clause'])
        .execute();
      await db.schema
        .createTable('compliance_waivers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('check_id', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('approver', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        // Four eyes: a waiver is pending (approved_at null) until its approver approves it.
        .addColumn('approved_at', 'bigint')
        .addColumn('approved_by', 'text')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('compliance_waivers_check_idx')
        .on('compliance_waivers')
        .column('check_id')
        .execute();
    },
  },
  '0015_attestation': {
    async up(db: Kysely<unknown>) {
      // Physical security (attestation/, issue 17): TPM attestation keys bound to endorsement keys, single-use
      // nonces, verdicts, verified tamper and health reports with each device's last seq and location, and
      // sites with who may access them. Firmware releases gain their reference PCR values (firmware/).
      await db.schema
        .createTable('attestation_keys')
        .addColumn('device_id', 'text', (c) => c.primaryKey())
        .addColumn('ek_public', 'text', (c) => c.notNull())
        .addColumn('ek_hash', 'text', (c) => c.notNull())
        .addColumn('ak_public', 'text', (c) => c.notNull())
        .addColumn('ak_name', 'text', (c) => c.notNull())
        .addColumn('algorithm', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        // The credential-activation challenge: its id, the SHA-256 of the expected secret, its deadline.
        .addColumn('challenge_id', 'text')
        .addColumn('challenge_hash', 'text')
        .addColumn('challenge_expires_at', 'bigint')
        .addColumn('registered_at', 'bigint', (c) => c.notNull())
        .addColumn('bound_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('attestation_keys_ek_idx')
        .on('attestation_keys')
        .column('ek_hash')
        .execute();
      await db.schema
        .createTable('attestation_nonces')
        .addColumn('nonce', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('pcr_selection', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('attestation_nonces_device_idx')
        .on('attestation_nonces')
        .column('device_id')
        .execute();
      await db.schema
        .createTable('attestation_results')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('tier', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('release_ref', 'text')
        .addColumn('pcr_selection', 'text')
        .addColumn('mismatched_pcrs', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('attestation_results_device_idx')
        .on('attestation_results')
        .columns(['device_id', 'at'])
        .execute();
      await db.schema
        .createTable('security_reports')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('reasons', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('reported_at', 'bigint', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addColumn('report', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('security_reports_device_idx')
        .on('security_reports')
        .columns(['device_id', 'received_at'])
        .execute();
      // Per device: the last accepted seq (replay protection), the last health state and location.
      await db.schema
        .createTable('security_report_state')
        .addColumn('device_id', 'text', (c) => c.primaryKey())
        .addColumn('last_seq', 'bigint', (c) => c.notNull())
        .addColumn('health', 'text', (c) => c.notNull())
        .addColumn('lat', 'real')
        .addColumn('lon', 'real')
        .addColumn('located_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('physical_sites')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('description', 'text')
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('physical_access')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('site', 'text', (c) => c.notNull())
        .addColumn('person', 'text', (c) => c.notNull())
        .addColumn('subject', 'text')
        .addColumn('role', 'text')
        .addColumn('granted_by', 'text', (c) => c.notNull())
        .addColumn('granted_at', 'bigint', (c) => c.notNull())
        .addColumn('review_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .execute();
      await db.schema.createIndex('physical_access_site_idx').on('physical_access').column('site').execute();
      // Reference values (golden PCRs) a release records when it is published: JSON {bank: {index: hex}}.
      await db.schema.alterTable('firmware_releases').addColumn('reference_values', 'text').execute();
    },
  },
  '0016_risk': {
    async up(db: Kysely<unknown>) {
      // Asset annotations: owner, requirements and description of an inventory asset, or a manual asset.
      await db.schema
        .createTable('risk_assets')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('description', 'text')
        .addColumn('requirements', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('risk_taras')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('item', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('result', 'text', (c) => c.notNull())
        .addColumn('saved_at', 'bigint', (c) => c.notNull())
        .addColumn('saved_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('risk_register')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('source_key', 'text', (c) => c.notNull().unique())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('assets', 'text', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('treatment', 'text', (c) => c.notNull())
        .addColumn('controls', 'text', (c) => c.notNull())
        .addColumn('checks', 'text', (c) => c.notNull())
        .addColumn('due', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('impact', 'text', (c) => c.notNull())
        .addColumn('base_feasibility', 'text', (c) => c.notNull())
        .addColumn('base_risk', 'integer', (c) => c.notNull())
        .addColumn('feasibility', 'text', (c) => c.notNull())
        .addColumn('risk', 'integer', (c) => c.notNull())
        .addColumn('raised', 'integer', (c) => c.notNull())
        .addColumn('factors', 'text', (c) => c.notNull())
        .addColumn('assessed_at', 'bigint', (c) => c.notNull())
        .addColumn('review_due_at', 'bigint', (c) => c.notNull())
        .addColumn('reminded_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('risk_history')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('risk_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('change', 'text', (c) => c.notNull())
        .addColumn('from_risk', 'integer')
        .addColumn('to_risk', 'integer')
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('risk_history_risk_idx')
        .on('risk_history')
        .columns(['risk_id', 'seq'])
        .execute();
      // Offline feeds: the CISA Known Exploited Vulnerabilities catalog and FIRST EPSS scores, by CVE id.
      await db.schema
        .createTable('risk_kev')
        .addColumn('cve', 'text', (c) => c.primaryKey())
        .addColumn('vendor', 'text', (c) => c.notNull())
        .addColumn('product', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('date_added', 'text', (c) => c.notNull())
        .addColumn('due_date', 'text')
        .addColumn('ransomware', 'text')
        .addColumn('imported_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('risk_epss')
        .addColumn('cve', 'text', (c) => c.primaryKey())
        .addColumn('score', 'real', (c) => c.notNull())
        .addColumn('percentile', 'real', (c) => c.notNull())
        .addColumn('score_date', 'text')
        .addColumn('imported_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0017_operations': {
    async up(db: Kysely<unknown>) {
      // Bulk device actions under dual control (operations/): pending requests, decisions, per-device results.
      await db.schema
        .createTable('bulk_operations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('selection', 'text', (c) => c.notNull())
        .addColumn('device_ids', 'text', (c) => c.notNull())
        .addColumn('device_groups', 'text', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('revocation_reason', 'text')
        .addColumn('stolen', 'integer', (c) => c.notNull())
        .addColumn('requested_by', 'text', (c) => c.notNull())
        .addColumn('requested_at', 'bigint', (c) => c.notNull())
        .addColumn('needs_approval', 'integer', (c) => c.notNull())
        .addColumn('threshold', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('decided_by', 'text')
        .addColumn('decided_at', 'bigint')
        .addColumn('decision_note', 'text')
        .addColumn('executed_at', 'bigint')
        .addColumn('results', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('bulk_operations_status_idx')
        .on('bulk_operations')
        .columns(['status', 'requested_at'])
        .execute();
    },
  },
  '0018_users_totp_pending': {
    async up(db: Kysely<unknown>) {
      // A TOTP enrolment's secret waits apart until a code of it is confirmed (users/): starting enrolment
      // again never switches off the TOTP an account has. An enrolment begun before this migration (its
      // secret stored but never enabled) becomes pending.
      await db.schema.alterTable('users').addColumn('totp_pending_secret', 'text').execute();
      await sql`update users set totp_pending_secret = totp_secret, totp_secret = null
        where totp_enabled = 0 and totp_secret is not null`.execute(db);
    },
  },
  '0019_mqtt_sessions': {
    async up(db: Kysely<unknown>) {
      // Persistent MQTT sessions (broker/mqtt-sessions.ts): survive a restart, and a QoS 1/2 message is
      // acknowledged to its publisher once it is here for every persistent session it was routed to.
      await db.schema
        .createTable('mqtt_sessions')
        .addColumn('client_id', 'text', (c) => c.primaryKey())
        // null: never expires
        .addColumn('expiry_sec', 'bigint')
        .addColumn('subscriptions', 'text', (c) => c.notNull())
        // JSON: inbound QoS 2 packet ids whose PUBREL has not come (PUBREC sent): not delivered twice
        .addColumn('received', 'text')
        // null: connected when last written
        .addColumn('disconnected_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // A message once, however many sessions keep it; the payload as base64 (portable text).
      await db.schema
        .createTable('mqtt_messages')
        .addColumn('id', 'bigint', (c) => c.primaryKey())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('qos', 'integer', (c) => c.notNull())
        .addColumn('retain', 'integer', (c) => c.notNull())
        .addColumn('properties', 'text')
        .addColumn('expires_at', 'bigint')
        .addColumn('origin', 'text')
        .execute();
      await db.schema
        .createTable('mqtt_session_messages')
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('message_id', 'bigint', (c) => c.notNull())
        .addColumn('qos', 'integer', (c) => c.notNull())
        .addColumn('retain', 'integer', (c) => c.notNull())
        .addColumn('subscription_ids', 'text')
        .addColumn('packet_id', 'integer')
        .addColumn('phase', 'text')
        .addPrimaryKeyConstraint('mqtt_session_messages_pk', ['client_id', 'message_id'])
        .execute();
      await db.schema
        .createIndex('mqtt_session_messages_message_idx')
        .on('mqtt_session_messages')
        .column('message_id')
        .execute();
    },
  },
};
