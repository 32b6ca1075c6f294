import type { CheckDefinition, Evidence } from './types.ts';
import { count, humanDuration, isoDate, outcome } from './util.ts';

const retentionLimits: CheckDefinition = {
  id: 'privacy.retention-limits',
  title: 'Personal data is kept no longer than the baseline allows',
  severity: 'high',
  rationale:
    'Personal data must be kept no longer than needed (GDPR Art. 5(1)(e)); a field stored without retention is kept forever.',
  remediation:
    'Set a retention on each field named in its data schema (`bulwark data-schema put FILE`), at most retention.personalDataMax.',
  reads: ['privacy'],
  run({ facts, baseline }) {
    const max = baseline.retention.personalDataMax;
    const fields = facts.privacy.schemas.flatMap((s) =>
      s.personalFields.map((f) => ({ schema: s.name, ...f })),
    );
    const evidence: Evidence[] = fields
      .filter((f) => (f.retentionMs === null ? f.store !== 'none' : f.retentionMs > max))
      .map((f) => ({
        kind: 'data_schema',
        id: f.schema,
        detail: `${f.path} (${f.category}) is kept ${f.retentionMs === null ? 'without a retention limit' : `${humanDuration(f.retentionMs)}, more than ${humanDuration(max)}`}`,
      }));
    return outcome({
      evidence,
      examined: fields.length,
      pass: `all ${count(fields.length, 'personal data field')} are kept at most ${humanDuration(max)}`,
      fail: (e) =>
        `${e.length} of ${fields.length} personal data fields are kept longer than ${humanDuration(max)}`,
    });
  },
};

const telemetryRetention: CheckDefinition = {
  id: 'privacy.telemetry-retention',
  title: 'Stored telemetry is deleted after the baseline retention',
  severity: 'medium',
  rationale: 'Telemetry kept forever grows the data an attacker can take and the personal data it may hold.',
  remediation:
    'Enable the pattern again with a shorter retention (`bulwark telemetry enable <pattern> --retention 90d`), at most retention.telemetryMax.',
  reads: ['privacy'],
  run({ facts, baseline }) {
    const max = baseline.retention.telemetryMax;
    const patterns = facts.privacy.telemetryPatterns;
    const evidence: Evidence[] = patterns
      .filter((p) => p.retentionMs <= 0 || p.retentionMs > max)
      .map((p) => ({
        kind: 'telemetry_pattern',
        id: p.pattern,
        detail:
          p.retentionMs <= 0
            ? 'kept forever'
            : `kept ${humanDuration(p.retentionMs)}, more than ${humanDuration(max)}`,
      }));
    return outcome({
      evidence,
      examined: patterns.length,
      pass: `all ${count(patterns.length, 'telemetry pattern')} are kept at most ${humanDuration(max)}`,
      fail: (e) =>
        `${e.length} of ${patterns.length} telemetry patterns are kept longer than ${humanDuration(max)}`,
    });
  },
};

const overdueRequests: CheckDefinition = {
  id: 'privacy.overdue-requests',
  title: 'Data-subject requests are answered in time',
  severity: 'high',
  rationale:
    'Requests for access, erasure or portability must be answered within one month (GDPR Art. 12(3)).',
  remediation:
    'Run or complete the requests named (`bulwark privacy request run <id>` or `… complete <id>`).',
  reads: ['privacy'],
  run({ facts, now }) {
    const open = facts.privacy.openRequests;
    const evidence: Evidence[] = open
      .filter((r) => r.dueAt < now)
      .map((r) => ({
        kind: 'request',
        id: r.id,
        detail: `${r.kind} request received ${isoDate(r.receivedAt)}, due ${isoDate(r.dueAt)}`,
      }));
    return outcome({
      evidence,
      examined: open.length,
      pass: `none of ${count(open.length, 'open request')} is overdue`,
      fail: (e) => `${e.length} of ${open.length} data-subject requests are overdue`,
    });
  },
};

const controllerNamed: CheckDefinition = {
  id: 'privacy.controller-named',
  title: 'The data controller is named with a contact',
  severity: 'medium',
  rationale:
    'The record of processing activities names the controller and how to reach it (GDPR Art. 30(1)(a)).',
  remediation: 'Set privacy.controller.name and privacy.controller.contact in the configuration.',
  reads: ['privacy'],
  needs: 'operator',
  run({ facts }) {
    const { name, contact } = facts.privacy.controller;
    const evidence: Evidence[] = [];
    if (!name)
      evidence.push({ kind: 'setting', id: 'privacy.controller.name', detail: 'no controller named' });
    if (!contact)
      evidence.push({ kind: 'setting', id: 'privacy.controller.contact', detail: 'no controller contact' });
    return outcome({
      evidence,
      examined: 1,
      pass: `the controller is ${name ?? ''} (${contact ?? ''})`,
      fail: () => 'the data controller is not named with a contact',
    });
  },
};

const unclassifiedTelemetry: CheckDefinition = {
  id: 'privacy.unclassified-telemetry',
  title: 'Stored telemetry is classified by a data schema',
  severity: 'medium',
  rationale:
    'Data stored without a schema may hold personal data nobody classified, so no retention, transform or request reaches it.',
  remediation:
    'Describe the topics with a data schema (`bulwark data-schema put FILE`) or stop storing them (`bulwark telemetry disable <pattern>`).',
  reads: ['privacy'],
  run({ facts }) {
    const patterns = facts.privacy.telemetryPatterns;
    const evidence: Evidence[] = patterns
      .filter((p) => !p.classified)
      .map((p) => ({
        kind: 'telemetry_pattern',
        id: p.pattern,
        detail: 'stored but no data schema classifies it',
      }));
    return outcome({
      evidence,
      examined: patterns.length,
      pass: `all ${count(patterns.length, 'telemetry pattern')} are classified`,
      fail: (e) => `${e.length} of ${patterns.length} stored telemetry patterns are unclassified`,
    });
  },
};

const purposeDeclared: CheckDefinition = {
  id: 'apps.purpose-declared',
  title: 'Every application declares its purpose',
  severity: 'medium',
  rationale:
    'Data is released to an application only for a declared purpose (GDPR Art. 5(1)(b), purpose limitation).',
  remediation: 'Declare the purpose (`bulwark app update <name> --purpose <data use>`).',
  reads: ['apps'],
  run({ facts }) {
    const active = facts.apps.apps.filter((a) => a.status === 'active');
    const evidence: Evidence[] = active
      .filter((a) => !a.purpose)
      .map((a) => ({ kind: 'app', id: a.name, detail: 'no declared purpose' }));
    return outcome({
      evidence,
      examined: active.length,
      pass: `all ${count(active.length, 'active app')} declare a purpose`,
      fail: (e) => `${e.length} of ${active.length} active apps declare no purpose`,
    });
  },
};

const tokenExpiry: CheckDefinition = {
  id: 'apps.token-expiry',
  title: 'Application tokens expire',
  severity: 'medium',
  rationale: 'A token that never expires keeps working after it leaks or the app is forgotten.',
  remediation:
    'Create new tokens with an expiry (`bulwark app token <name> --ttl 90d`, then `bulwark app token-revoke <name> <id>`), within accounts.apiTokenMaxLifetime.',
  reads: ['apps'],
  run({ facts, baseline }) {
    const max = baseline.accounts.apiTokenMaxLifetime;
    const tokens = facts.apps.apps
      .filter((a) => a.status === 'active')
      .flatMap((a) => a.tokens.map((t) => ({ app: a.name, ...t })));
    const evidence: Evidence[] = tokens
      .filter((t) => t.expiresAt === null || t.expiresAt - t.createdAt > max)
      .map((t) => ({
        kind: 'api_token',
        id: t.id,
        detail: `of app ${t.app}: ${t.expiresAt === null ? 'never expires' : `valid ${humanDuration(t.expiresAt - t.createdAt)}, more than ${humanDuration(max)}`}`,
      }));
    return outcome({
      evidence,
      examined: tokens.length,
      pass: `all ${count(tokens.length, 'app token')} expire within ${humanDuration(max)}`,
      fail: (e) =>
        `${e.length} of ${tokens.length} app tokens never expire or live longer than ${humanDuration(max)}`,
    });
  },
};

export const privacyChecks: readonly CheckDefinition[] = [
  retentionLimits,
  telemetryRetention,
  overdueRequests,
  controllerNamed,
  unclassifiedTelemetry,
];

export const appChecks: readonly CheckDefinition[] = [purposeDeclared, tokenExpiry];
