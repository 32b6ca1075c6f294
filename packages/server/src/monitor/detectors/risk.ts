import { subjectIdOf } from '../doors.ts';
import { defineDetector } from './detector.ts';

/*
 * The risk register's alerts (risk/): a risk whose live value rose the baseline's threshold or more above its
 * assessed value (a critical or known-exploited vulnerability on deployed firmware, a failing control, an open
 * alert in scope, a zone below its target level), and a risk due for re-assessment. One alert per risk
 * (subject `risk:<id>`) and kind.
 */

/** The alert severity of a live risk value (ISO/SAE 21434 Annex H values 1-5). */
export function riskSeverity(value: number): 'critical' | 'high' | 'medium' | 'low' {
  if (value >= 5) return 'critical';
  if (value === 4) return 'high';
  if (value === 3) return 'medium';
  return 'low';
}

/** Raised while the live value stays raised; cleared when it falls back (risk.lowered). */
export const riskRaised = defineDetector({
  name: 'risk_raised',
  consumes: ['risk.raised', 'risk.lowered'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    const id = subjectIdOf(subject, 'risk') ?? '';
    if (entry.type === 'risk.lowered') {
      ctx.clear({
        detector: 'risk_raised',
        subject,
        resolution: `risk ${id} back to ${entry.data.to} (assessed ${entry.data.base})`,
      });
      return;
    }
    const data = entry.data;
    ctx.raise({
      detector: 'risk_raised',
      subject,
      deviceId: null,
      severity: riskSeverity(data.to),
      title: `Risk ${id} rose from ${data.base} to ${data.to}: ${data.title}`,
      at: entry.ts,
      evidence: { risk: id, from: data.from, to: data.to, assessed: data.base, factors: data.factors },
    });
  },
});

/** A risk past its re-assessment date (baseline risk.reassessEvery); cleared when it is reviewed. */
export const riskReviewDue = defineDetector({
  name: 'risk_review_due',
  consumes: ['risk.review_due', 'risk.reviewed'],
  onEvent(entry, ctx) {
    const subject = entry.subject ?? '';
    const id = subjectIdOf(subject, 'risk') ?? '';
    if (entry.type === 'risk.reviewed') {
      ctx.clear({ detector: 'risk_review_due', subject, resolution: `risk ${id} re-assessed` });
      return;
    }
    const data = entry.data;
    ctx.raise({
      detector: 'risk_review_due',
      subject,
      deviceId: null,
      severity: 'low',
      title: `Risk ${id} is due for re-assessment since ${new Date(data.reviewDueAt).toISOString().slice(0, 10)}: ${data.title}`,
      at: entry.ts,
      evidence: { risk: id, reviewDueAt: data.reviewDueAt, owner: data.owner },
    });
  },
});
