import type { CheckDefinition, Evidence } from './types.ts';
import { atLeast, count, expiry, humanDuration, isoDate, outcome } from './util.ts';

const knownVulnerabilities: CheckDefinition = {
  id: 'firmware.known-vulnerabilities',
  title: 'No device runs firmware with a known serious vulnerability',
  severity: 'critical',
  rationale:
    'A published vulnerability in deployed firmware is the easiest way into a fleet (ETSI EN 303 645 5.3, IEC 62443-4-2 CR 3.4).',
  remediation:
    'Build a fixed release and roll it out (`bulwark firmware rollout create <release>`); review with `bulwark firmware advisories exposure`.',
  reads: ['vulnerabilities'],
  run({ facts, baseline }) {
    const threshold = baseline.firmware.vulnerabilitySeverity;
    const serious = facts.vulnerabilities.exposures.filter((x) => atLeast(x.severity, threshold));
    const evidence: Evidence[] = serious.flatMap((x) =>
      x.devices.map((device): Evidence => ({
        kind: 'device',
        id: device,
        detail: `runs ${x.releases.join(', ')}, affected by ${x.advisory} (${x.severity}${x.score === null ? '' : ` ${x.score}`})`,
      })),
    );
    return outcome({
      evidence,
      examined: facts.vulnerabilities.exposures.length,
      pass: `no device runs firmware with a known ${threshold}-or-above vulnerability`,
      fail: (e) =>
        `${new Set(e.map((x) => x.id)).size} devices run firmware with ${count(serious.length, `known ${threshold}-or-above advisory`)}`,
    });
  },
};

const REFRESHED = new Set(['timestamp', 'snapshot']);

const metadataExpiry: CheckDefinition = {
  id: 'firmware.metadata-expiry',
  title: 'Signed update metadata is renewed before it expires',
  severity: 'high',
  rationale:
    'Devices refuse updates whose TUF metadata has expired, so an expired role silently stops security updates.',
  remediation:
    'Re-sign the role: targets with `bulwark firmware tuf targets --key <file>`, root with `bulwark firmware tuf rotate` then `bulwark firmware tuf publish <file>`; timestamp and snapshot are re-signed while `bulwark serve` runs. Check `bulwark firmware tuf status`.',
  reads: ['firmware'],
  run({ facts, baseline, now }) {
    const window = baseline.firmware.metadataExpiryWarning;
    const { metadata, autoRefresh } = facts.firmware;
    const evidence: Evidence[] = metadata
      .filter((m) => m.expiresAt < (autoRefresh && REFRESHED.has(m.role) ? now : now + window))
      .map((m) => ({
        kind: 'metadata',
        id: m.role,
        detail: `version ${m.version} ${expiry(m.expiresAt, now)}${m.expiresAt > now ? `, within the ${humanDuration(window)} window` : ''}`,
      }));
    return outcome({
      evidence,
      examined: metadata.length,
      pass: `no TUF role expires within ${humanDuration(window)}${autoRefresh ? ' (timestamp and snapshot are re-signed automatically)' : ''}`,
      fail: (e) => `${e.length} of ${metadata.length} TUF roles expire within ${humanDuration(window)}`,
    });
  },
};

const stagedRollouts: CheckDefinition = {
  id: 'firmware.staged-rollouts',
  title: 'Rollouts start with a canary phase',
  severity: 'medium',
  rationale:
    'A bad update pushed to the whole fleet at once can brick every device; a small first phase catches it.',
  remediation:
    'Abort the rollout (`bulwark firmware rollout abort <id>`) and create it again with a canary phase (`bulwark firmware rollout create <release> --phases 5,25,100`), or set firmware.requireStagedRollouts: false in the baseline.',
  reads: ['firmware'],
  run({ facts, baseline }) {
    const rollouts = facts.firmware.activeRollouts;
    const evidence: Evidence[] = !baseline.firmware.requireStagedRollouts
      ? []
      : rollouts
          .filter((r) => r.phases.length < 2 || (r.phases[0]?.percent ?? 100) >= 100)
          .map((r) => ({
            kind: 'rollout',
            id: r.id,
            detail: `${r.status} rollout of ${r.release} with phases ${r.phases.map((p) => `${p.percent}%`).join(', ') || 'none'}: no canary`,
          }));
    return outcome({
      evidence,
      examined: rollouts.length,
      pass: baseline.firmware.requireStagedRollouts
        ? `all ${count(rollouts.length, 'active rollout')} are staged`
        : 'the baseline does not require staged rollouts',
      fail: (e) => `${e.length} of ${rollouts.length} active rollouts go to the fleet without a canary phase`,
    });
  },
};

const maxAge: CheckDefinition = {
  id: 'firmware.max-age',
  title: 'Devices run recent firmware',
  severity: 'medium',
  rationale:
    'Firmware older than the maximum age misses security fixes published since (ETSI EN 303 645 5.3).',
  remediation:
    'Roll out a current release to the devices named (`bulwark firmware rollout create <release>`), or adjust firmware.maxAge in the baseline.',
  reads: ['firmware'],
  run({ facts, baseline, now }) {
    const limit = baseline.firmware.maxAge;
    const evidence: Evidence[] = facts.firmware.devices
      .filter((d) => d.releaseCreatedAt !== null && d.releaseCreatedAt < now - limit)
      .map((d) => ({
        kind: 'device',
        id: d.deviceId,
        detail: `runs ${d.version}${d.releaseId === null ? '' : ` (${d.releaseId})`} released ${isoDate(d.releaseCreatedAt ?? 0)}, older than ${humanDuration(limit)}`,
      }));
    return outcome({
      evidence,
      examined: facts.firmware.devices.length,
      pass: `no device runs firmware older than ${humanDuration(limit)} (${count(facts.firmware.devices.length, 'device')})`,
      fail: (e) =>
        `${e.length} of ${facts.firmware.devices.length} devices run firmware older than ${humanDuration(limit)}`,
    });
  },
};

const sbom: CheckDefinition = {
  id: 'firmware.sbom',
  title: 'Deployed firmware carries an SBOM',
  severity: 'medium',
  rationale:
    'Without a software bill of materials, advisories cannot be matched to the firmware devices run (ISO/SAE 21434 8.4, NTIA minimum elements).',
  remediation:
    'Attach a CycloneDX SBOM to the release (`bulwark firmware release create <name@version> --sbom <file>`) or set firmware.requireSbom: false in the baseline.',
  reads: ['firmware'],
  run({ facts, baseline }) {
    const rolledOut = new Set(facts.firmware.activeRollouts.map((r) => r.release));
    const deployed = facts.firmware.releases.filter((r) => r.devices > 0 || rolledOut.has(r.id));
    const evidence: Evidence[] = !baseline.firmware.requireSbom
      ? []
      : deployed
          .filter((r) => !r.hasSbom)
          .map((r) => ({
            kind: 'release',
            id: r.id,
            detail: `${r.version}: no SBOM (${count(r.devices, 'device')}${rolledOut.has(r.id) ? ', in an active rollout' : ''})`,
          }));
    return outcome({
      evidence,
      examined: deployed.length,
      pass: baseline.firmware.requireSbom
        ? `all ${count(deployed.length, 'deployed release')} carry an SBOM`
        : 'the baseline does not require SBOMs',
      fail: (e) => `${e.length} of ${deployed.length} deployed releases have no SBOM`,
    });
  },
};

const advisoriesImported: CheckDefinition = {
  id: 'firmware.advisories-imported',
  title: 'Vulnerability advisories are imported regularly',
  severity: 'medium',
  rationale:
    'Exposure to known vulnerabilities is only as current as the advisories imported (OSV); without them the vulnerability check sees nothing.',
  remediation:
    'Import the OSV advisories for your components (`bulwark firmware advisories import <path>`), on a schedule shorter than firmware.advisoryMaxAge.',
  reads: ['vulnerabilities'],
  needs: 'operator',
  run({ facts, baseline, now }) {
    const limit = baseline.firmware.advisoryMaxAge;
    const { advisories, lastImportAt } = facts.vulnerabilities;
    const evidence: Evidence[] =
      advisories === 0 || lastImportAt === null
        ? [{ kind: 'advisory', id: 'import', detail: 'no advisory has been imported' }]
        : lastImportAt < now - limit
          ? [
              {
                kind: 'advisory',
                id: 'import',
                detail: `last import ${isoDate(lastImportAt)}, more than ${humanDuration(limit)} ago`,
              },
            ]
          : [];
    return outcome({
      evidence,
      examined: advisories,
      pass: `${count(advisories, 'advisory')} imported, last within ${humanDuration(limit)}`,
      fail: () => evidence[0]?.detail ?? 'advisories are not current',
    });
  },
};

const supportPeriod: CheckDefinition = {
  id: 'org.support-period',
  title: 'A support period for security updates is published',
  severity: 'medium',
  rationale:
    'Users must know until when devices get security updates (ETSI EN 303 645 5.3-13, EU Cyber Resilience Act).',
  remediation:
    'Set product.supportPeriodEnd (and product.supportPeriodUrl) in the baseline and apply it (`bulwark baseline apply FILE`).',
  // The support period is the firmware update commitment: it reads no fact, but is reported with firmware.
  reads: ['firmware'],
  needs: 'operator',
  run({ baseline, now }) {
    const end = baseline.product.supportPeriodEnd;
    const evidence: Evidence[] =
      end === undefined
        ? [{ kind: 'baseline', id: 'product.supportPeriodEnd', detail: 'no support period is published' }]
        : Date.parse(`${end}T23:59:59.999Z`) < now
          ? [
              {
                kind: 'baseline',
                id: 'product.supportPeriodEnd',
                detail: `the support period ended on ${end}`,
              },
            ]
          : [];
    return outcome({
      evidence,
      examined: 1,
      pass: `security updates are provided until ${end ?? ''}`,
      fail: () => evidence[0]?.detail ?? 'no support period',
    });
  },
};

const disclosureContact: CheckDefinition = {
  id: 'org.disclosure-contact',
  title: 'A vulnerability disclosure contact is published',
  severity: 'medium',
  rationale:
    'Researchers need a way to report vulnerabilities and get a response (ETSI EN 303 645 5.2-1, ISO/IEC 29147).',
  remediation:
    'Set disclosure.contact (mailto: or https://) and disclosure.policyUrl in the baseline and apply it (`bulwark baseline apply FILE`).',
  // Disclosure feeds the vulnerability process: it reads no fact, but is reported with vulnerabilities.
  reads: ['vulnerabilities'],
  needs: 'operator',
  run({ baseline }) {
    const contact = baseline.disclosure.contact;
    const evidence: Evidence[] =
      contact === undefined
        ? [{ kind: 'baseline', id: 'disclosure.contact', detail: 'no vulnerability disclosure contact' }]
        : [];
    return outcome({
      evidence,
      examined: 1,
      pass: `vulnerabilities are reported to ${contact ?? ''}`,
      fail: () => 'no vulnerability disclosure contact is published',
    });
  },
};

export const firmwareChecks: readonly CheckDefinition[] = [
  knownVulnerabilities,
  metadataExpiry,
  stagedRollouts,
  maxAge,
  sbom,
  advisoriesImported,
];

export const orgChecks: readonly CheckDefinition[] = [supportPeriod, disclosureContact];
