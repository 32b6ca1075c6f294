import { subjectIdOf } from '../doors.ts';
import { defineDetector } from './detector.ts';

/*
 * Fleet-level events that are alerts in their own right: a ban (the firewall's, or one made by hand), a
 * rollout that paused itself (its failure gate tripped) and firmware that devices run being exposed to a
 * critical or high advisory.
 */

/** Every ban is an alert: who is locked out, why, by whom (an operator or a firewall rule) and until when. */
export const firewallBan = defineDetector({
  name: 'firewall_ban',
  consumes: ['firewall.ban_created', 'firewall.ban_removed'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    if (entry.type === 'firewall.ban_removed') {
      ctx.clear({ detector: 'firewall_ban', subject, resolution: 'ban lifted' });
      return;
    }
    const data = entry.data;
    const automatic = data.origin === 'automatic';
    ctx.raise({
      detector: 'firewall_ban',
      subject,
      deviceId: data.kind === 'device' ? data.value : null,
      severity: automatic ? 'medium' : 'low',
      title: `${data.kind} ${data.value} banned (${automatic ? `automatic: ${String(data.rule)}` : 'manual'}): ${data.reason}`,
      evidence: {
        kind: data.kind,
        value: data.value,
        reason: data.reason,
        origin: automatic ? 'automatic' : 'manual',
        rule: data.rule ?? null,
        expiresAt: data.expiresAt ?? null,
        banId: data.id ?? null,
      },
      at: entry.ts,
    });
  },
});

/** A rollout whose failure gate tripped; resolved when it resumes, is aborted or completes. */
export const rolloutPaused = defineDetector({
  name: 'rollout_paused',
  consumes: ['rollout.paused', 'rollout.resumed', 'rollout.aborted', 'rollout.completed'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    if (entry.type !== 'rollout.paused') {
      ctx.clear({
        detector: 'rollout_paused',
        subject,
        resolution: entry.type.replace('rollout.', 'rollout '),
      });
      return;
    }
    const data = entry.data;
    if (!data.automatic) return;
    ctx.raise({
      detector: 'rollout_paused',
      subject,
      deviceId: null,
      severity: 'high',
      title: `Rollout ${subjectIdOf(subject, 'rollout') ?? ''} paused itself: ${data.reason}`,
      at: entry.ts,
      evidence: {
        reason: data.reason,
        phase: data.phase,
        failureRate: data.failureRate ?? null,
        threshold: data.threshold ?? null,
      },
    });
  },
});

/** An advisory (critical or high) affects firmware that devices run. */
export const vulnerableFirmware = defineDetector({
  name: 'vulnerable_firmware',
  consumes: ['vulnerability.exposure_alert'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    const data = entry.data;
    const severity = data.severity.toLowerCase();
    const advisory = subjectIdOf(subject, 'advisory') ?? '';
    ctx.raise({
      detector: 'vulnerable_firmware',
      subject,
      deviceId: null,
      severity: severity === 'critical' ? 'critical' : 'high',
      title: `${advisory} (${severity}) affects firmware that ${data.devices} device(s) run`,
      at: entry.ts,
      evidence: { advisory, score: data.score ?? null, releases: data.releases, devices: data.devices },
    });
  },
});

/**
 * A data-subject request past its deadline (GDPR Art. 12(3): one month); resolved when it is completed or
 * rejected. The alert names the request, never the person.
 */
export const privacyRequestOverdue = defineDetector({
  name: 'privacy_request_overdue',
  consumes: ['privacy.request_overdue', 'privacy.request_completed'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    if (entry.type === 'privacy.request_completed') {
      ctx.clear({ detector: 'privacy_request_overdue', subject, resolution: `request ${entry.data.status}` });
      return;
    }
    const data = entry.data;
    const days = Math.max(1, Math.floor((entry.ts - data.dueAt) / 86_400_000));
    ctx.raise({
      detector: 'privacy_request_overdue',
      subject,
      deviceId: null,
      severity: 'high',
      title: `Privacy request ${data.requestId} (${data.kind}) is past its deadline (GDPR Art. 12(3)): due ${new Date(data.dueAt).toISOString().slice(0, 10)}`,
      at: entry.ts,
      evidence: {
        requestId: data.requestId,
        kind: data.kind,
        receivedAt: data.receivedAt,
        dueAt: data.dueAt,
        daysLate: days,
      },
    });
  },
});

/**
 * A compliance check that passed in the run before fails now (compliance/); resolved when a later run finds
 * it passing again. One alert per check (subject `check:<id>`), with the check's severity.
 */
export const complianceRegression = defineDetector({
  name: 'compliance_regression',
  consumes: ['compliance.check_regressed', 'compliance.check_recovered'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    if (entry.type === 'compliance.check_recovered') {
      ctx.clear({
        detector: 'compliance_regression',
        subject,
        resolution: `check passes again (run ${entry.data.runId})`,
      });
      return;
    }
    const data = entry.data;
    ctx.raise({
      detector: 'compliance_regression',
      subject,
      deviceId: null,
      severity: data.severity,
      title: `Compliance check ${data.check} fails again: ${data.title} (${data.summary})`,
      at: entry.ts,
      evidence: {
        runId: data.runId,
        check: data.check,
        summary: data.summary,
        evidence: data.evidence,
        clauses: data.clauses,
      },
    });
  },
});
