import type { CheckDefinition, Evidence } from './types.ts';
import { count, isoDate, outcome } from './util.ts';

/**
 * Risk assessment (issue 18): a TARA kept with the fleet and re-assessed on time (ISO/SAE 21434 clause 15,
 * NIST SP 800-82 RA-3), and every risk in the register owned, within its due date and decided again when live
 * facts raised it (ISO/SAE 21434 15.9 risk treatment decision).
 */

const taraRecorded: CheckDefinition = {
  id: 'risk.tara-recorded',
  title: 'A TARA is kept with the fleet and re-assessed on time',
  severity: 'medium',
  rationale:
    'A threat analysis done once and filed away stops describing the fleet; ISO/SAE 21434 clause 15 and NIST SP 800-82 RA-3 ask for an assessment of the item as it is, updated at a set frequency. Bulwark refuses a TARA with a step missing (assets, damage and threat scenarios, impact, attack paths, feasibility, risk value, treatment), so a saved one has every work product.',
  remediation:
    "Save the TARA with the fleet (`bulwark risk tara FILE --save ID`), and re-assess the risks named (`bulwark risk review ID --note …`, or save the TARA again); the interval is the baseline's risk.reassessEvery.",
  reads: ['risk'],
  needs: 'operator',
  run({ facts, now }) {
    const { taras, risks } = facts.risk;
    const due = risks.filter((r) => r.status !== 'closed' && r.reviewDueAt <= now);
    const evidence: Evidence[] =
      taras.length === 0
        ? [{ kind: 'tara', id: 'none', detail: 'no TARA is saved with the fleet' }]
        : due.map((r) => ({
            kind: 'risk',
            id: r.id,
            detail: `due for re-assessment since ${isoDate(r.reviewDueAt)}: ${r.title}`,
          }));
    return outcome({
      evidence,
      examined: taras.length + risks.length,
      pass: `${count(taras.length, 'TARA')} saved; every open risk of ${risks.length} re-assessed on time`,
      fail: () =>
        taras.length === 0
          ? 'no TARA is saved with the fleet'
          : `${due.length} open risks are past their re-assessment date`,
    });
  },
};

const treatmentCurrent: CheckDefinition = {
  id: 'risk.treatment-current',
  title: 'Every open risk has an owner, is within its due date, and was decided at its current value',
  severity: 'medium',
  rationale:
    'A treatment decision (avoid, reduce, share, retain) holds for the risk value it was taken at: a risk that live facts raised (a critical or known-exploited vulnerability on deployed firmware, a failing control, an open alert, a zone below its target) needs a new decision, and a risk nobody owns or past its due date is not being treated (ISO/SAE 21434 15.9, NIST SP 800-82 RA-3, IEC 62443-3-2 ZCR 5).',
  remediation:
    'Give each risk named an owner and a due date (`bulwark risk update ID --owner … --due YYYY-MM-DD`), treat what raised it (see `bulwark risk show ID`), or record the decision again (`bulwark risk review ID --note …`, `--status accepted` with a reason).',
  reads: ['risk'],
  run({ facts, now }) {
    const open = facts.risk.risks.filter((r) => r.status !== 'closed');
    const evidence: Evidence[] = open.flatMap((r): Evidence[] => {
      const why = [
        ...(r.owner === null ? ['no owner'] : []),
        ...(r.dueAt !== null && r.dueAt < now ? [`past its due date ${isoDate(r.dueAt)}`] : []),
        ...(r.raised && r.status !== 'accepted'
          ? [`raised from ${r.baseRisk} to ${r.risk} since it was assessed`]
          : []),
      ];
      return why.length ? [{ kind: 'risk', id: r.id, detail: `${why.join('; ')}: ${r.title}` }] : [];
    });
    return outcome({
      evidence,
      examined: open.length,
      pass: `all ${count(open.length, 'open risk')} owned, within their due dates, decided at their current value`,
      fail: (e) => `${e.length} of ${open.length} open risks need a treatment decision`,
    });
  },
};

export const riskChecks: readonly CheckDefinition[] = [taraRecorded, treatmentCurrent];
