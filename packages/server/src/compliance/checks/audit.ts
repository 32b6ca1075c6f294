import type { CheckDefinition, Evidence } from './types.ts';
import { count, isoDate, outcome } from './util.ts';

const HOUR = 3_600_000;

const chainIntact: CheckDefinition = {
  id: 'audit.chain-intact',
  title: 'The audit log hash chain verifies end to end',
  severity: 'critical',
  rationale:
    'A broken chain means audit entries were altered or removed: the log can no longer prove what happened (IEC 62443-3-3 SR 2.8, SR 3.9).',
  remediation:
    'Run `bulwark audit-log verify` to locate the break, preserve the database for investigation, and compare with the exported copy (SIEM, syslog).',
  reads: ['audit'],
  run({ facts }) {
    const { chain } = facts.audit;
    const evidence: Evidence[] = chain.ok
      ? []
      : [
          {
            kind: 'audit',
            id: chain.brokenAt === null ? 'chain' : `entry ${chain.brokenAt}`,
            detail: chain.reason ?? 'the hash chain does not verify',
          },
        ];
    return outcome({
      evidence,
      examined: chain.entries,
      pass: `all ${chain.entries} audit entries verify`,
      fail: () => `the audit chain is broken${chain.brokenAt === null ? '' : ` at entry ${chain.brokenAt}`}`,
    });
  },
};

const exported: CheckDefinition = {
  id: 'audit.exported',
  title: 'The audit log is delivered to a channel outside the platform',
  severity: 'high',
  rationale:
    'A copy outside the platform survives its compromise and feeds the organisation’s monitoring (SIEM) (NIST SP 800-82 AU-4, AU-6).',
  remediation:
    'Add a syslog/CEF or webhook channel for the audit log (`bulwark notify add …`), or set audit.requireExport: false in the baseline.',
  reads: ['audit'],
  needs: 'operator',
  run({ facts, baseline }) {
    const channels = facts.audit.exporters.filter((e) => e.enabled);
    const evidence: Evidence[] =
      baseline.audit.requireExport && channels.length === 0
        ? [
            {
              kind: 'baseline',
              id: 'audit.requireExport',
              detail: 'no enabled channel delivers the audit log',
            },
          ]
        : [];
    return outcome({
      evidence,
      examined: facts.audit.exporters.length,
      pass:
        channels.length > 0
          ? `${count(channels.length, 'enabled channel')} deliver the audit log`
          : 'the baseline does not require an audit export',
      fail: () => 'no enabled channel delivers the audit log',
    });
  },
};

const exportHealthy: CheckDefinition = {
  id: 'audit.export-healthy',
  title: 'Audit export channels keep up',
  severity: 'medium',
  rationale: 'A channel that falls behind or keeps failing silently stops the off-platform copy.',
  remediation:
    'Check the channel with `bulwark notify test <name>` and fix its destination; the backlog is delivered once it works.',
  reads: ['audit'],
  run({ facts, baseline, now }) {
    const channels = facts.audit.exporters.filter((e) => e.enabled);
    const max = baseline.audit.maxExportLag;
    const evidence: Evidence[] = [];
    for (const c of channels) {
      const stale = c.lastDeliveredAt === null || c.lastDeliveredAt < now - HOUR;
      if (c.lag > max)
        evidence.push({
          kind: 'channel',
          id: c.name,
          detail: `${c.kind}: ${c.lag} entries behind (at most ${max})`,
        });
      else if (c.failures > 0 && c.lag > 0 && stale)
        evidence.push({
          kind: 'channel',
          id: c.name,
          detail: `${c.kind}: ${count(c.failures, 'failure')}, ${c.lag} entries waiting, ${c.lastDeliveredAt === null ? 'nothing delivered yet' : `last delivery ${isoDate(c.lastDeliveredAt)}`}`,
        });
    }
    return outcome({
      evidence,
      examined: channels.length,
      pass: `${count(channels.length, 'enabled channel')}, none failing or more than ${max} entries behind`,
      fail: (e) => `${e.length} of ${channels.length} audit channels are failing or behind`,
    });
  },
};

export const auditChecks: readonly CheckDefinition[] = [chainIntact, exported, exportHealthy];
