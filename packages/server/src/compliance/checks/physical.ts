import { deviceIdOf, type MonitorComplianceFacts } from '../facts.ts';
import type { CheckDefinition, Evidence } from './types.ts';
import { count, humanDuration, isoDate, outcome } from './util.ts';

/**
 * Physical security and remote attestation (issue 17): TPM 2.0 verdicts (RFC 9334 trust tiers), signed tamper
 * reports and their automatic response, lost and decommissioned devices, physical-access records of sites.
 */

const DAY = 86_400_000;
/** A key registered but never activated for this long: the device never proved the key lives in its TPM. */
const PENDING_KEY_LIMIT = DAY;
const TAMPER_DETECTOR = 'tamper_report';
/** Responses that contain a device reporting tampering (IEC 62443-4-2 CR 3.11 RE(1)). */
const CONTAINING = new Set(['quarantine', 'revoke']);

/** When the lists of a fact stop at their cap, one last entry says how many more there are. */
function withRest(evidence: Evidence[], total: number, kind: Evidence['kind']): Evidence[] {
  return total > evidence.length
    ? [...evidence, { kind, id: '…', detail: `and ${total - evidence.length} more` }]
    : evidence;
}

const noContraindicated: CheckDefinition = {
  id: 'attestation.no-contraindicated',
  title: 'Devices with a TPM attest successfully and on time',
  severity: 'high',
  rationale:
    'A contraindicated verdict means the device booted other software than the reference values of its release, or answered with a replayed or foreign quote; an overdue one stopped proving its state (RFC 9334, IEC 62443-4-2 CR 3.4, CR 3.14). Either holds the device in quarantine.',
  remediation:
    'Read the verdict and its reason (GET /api/v1/attestation/devices/<id>): reflash or replace a device whose PCRs differ, record reference values with the release (`bulwark firmware create … --pcr sha256:7=HEX`), check that the agent attests on schedule (`bulwark-agent attest --every 1h`).',
  reads: ['attestation'],
  run({ facts }) {
    const { standings, contraindicated, overdue } = facts.attestation;
    const held = standings.contraindicated + standings.overdue;
    const listed: Evidence[] = [
      ...contraindicated.map((id): Evidence => ({
        kind: 'device',
        id,
        detail: 'contraindicated: its last attestation failed (held in quarantine)',
      })),
      ...overdue.map((id): Evidence => ({
        kind: 'device',
        id,
        detail: 'overdue: no good attestation within attestation.maxAge (held in quarantine)',
      })),
    ];
    const evidence = withRest(listed, held, 'device');
    const withKey = Object.values(standings).reduce((a, b) => a + b, 0);
    return outcome({
      evidence,
      examined: withKey,
      pass: `no device with a TPM key is contraindicated or overdue (${count(withKey, 'device')} with a key)`,
      fail: () =>
        `${held} of ${withKey} devices with a TPM key are held: ${standings.contraindicated} contraindicated, ${standings.overdue} overdue`,
    });
  },
};

const keysBound: CheckDefinition = {
  id: 'attestation.keys-bound',
  title: 'Registered attestation keys are bound to their TPM',
  severity: 'medium',
  rationale:
    'An attestation key is trusted only once credential activation proved it lives in the TPM holding the endorsement key (TPM 2.0 Part 1 §24); a key left pending is a device that cannot attest, or a key that is not what it claims.',
  remediation:
    'Have the device finish registration (`bulwark-agent attest` activates the credential), or remove the pending key (DELETE /api/v1/attestation/devices/<id>/key) and register again.',
  reads: ['attestation'],
  run({ facts, now }) {
    const { bound, pending, oldestPendingAt } = facts.attestation.keys;
    const stale = oldestPendingAt !== null && oldestPendingAt < now - PENDING_KEY_LIMIT;
    const evidence: Evidence[] = stale
      ? [
          {
            kind: 'attestation_key',
            id: 'pending',
            detail: `${count(pending, 'key')} pending, the oldest registered ${isoDate(oldestPendingAt)}, more than ${humanDuration(PENDING_KEY_LIMIT)} ago`,
          },
        ]
      : [];
    return outcome({
      evidence,
      examined: bound + pending,
      pass: `${count(bound, 'key')} bound, ${pending} pending for less than ${humanDuration(PENDING_KEY_LIMIT)}`,
      fail: () => `attestation keys pending for more than ${humanDuration(PENDING_KEY_LIMIT)}`,
    });
  },
};

type Profile = MonitorComplianceFacts['profiles'][number];

const answersTamper = (p: Profile) =>
  p.responses.some((r) => (r.detector === TAMPER_DETECTOR || r.detector === '*') && CONTAINING.has(r.action));

const tamperResponse: CheckDefinition = {
  id: 'physical.tamper-response',
  title: 'A tamper report raises an alert and contains the device automatically',
  severity: 'high',
  rationale:
    'An opened enclosure, an enabled debug port or secure boot turned off means someone has the device in hand; quarantine or revocation must follow at once, not when someone reads the alert (IEC 62443-4-2 CR 3.11 RE(1), ETSI EN 303 645 5.7-2).',
  remediation:
    'Keep the tamper_report detector enabled in every profile and give a profile attached to all devices an automatic quarantine or revoke response for it (`bulwark security-profile put default` with `responses: [{action: quarantine, detectors: [tamper_report], mode: automatic}]`).',
  reads: ['monitor'],
  run({ facts }) {
    const { profiles } = facts.monitor;
    const fleetWide = profiles.filter((p) => p.attachedTo.includes('*'));
    const evidence: Evidence[] = [];
    if (fleetWide.length === 0)
      evidence.push({ kind: 'profile', id: '*', detail: 'no profile is attached to all devices' });
    else if (!fleetWide.some(answersTamper))
      evidence.push(
        ...fleetWide.map((p): Evidence => ({
          kind: 'profile',
          id: p.name,
          detail: `attached to all devices without an automatic quarantine or revoke for ${TAMPER_DETECTOR}`,
        })),
      );
    // A profile lists the built-in detectors it leaves enabled: one without tamper_report turns it off where attached.
    for (const p of profiles)
      if (p.attachedTo.length > 0 && !p.detectors.includes(TAMPER_DETECTOR))
        evidence.push({
          kind: 'profile',
          id: p.name,
          detail: `disables ${TAMPER_DETECTOR} for ${p.attachedTo.join(', ')}`,
        });
    return outcome({
      evidence,
      examined: profiles.length,
      pass: `tamper reports raise alerts everywhere and a profile attached to all devices contains the device automatically`,
      fail: (e) =>
        `tamper reports are not answered automatically on every device (${count(e.length, 'finding')})`,
    });
  },
};

const LOST = new Set(['lost', 'decommissioned']);

const lostRevoked: CheckDefinition = {
  id: 'physical.lost-revoked',
  title: 'Lost, stolen and decommissioned devices hold no valid certificate',
  severity: 'critical',
  rationale:
    'A certificate of a device out of its owner’s hands lets whoever holds it connect as that device; lost, stolen and retired devices must be revoked (NIST SP 800-53 IA-5, IEC 62443-4-2 CR 1.5, ETSI EN 303 645 5.5-8).',
  remediation:
    'Revoke the certificates named (`bulwark device revoke <id>`); `bulwark device lost <id>` and `bulwark device decommission <id>` revoke them as they change the status.',
  reads: ['devices', 'pki'],
  run({ facts }) {
    const gone = new Map(
      facts.devices.devices.filter((d) => LOST.has(d.status)).map((d) => [d.id, d.status]),
    );
    const evidence: Evidence[] = [];
    for (const c of facts.pki.activeCertificates) {
      const deviceId = deviceIdOf(c.owner);
      const status = deviceId === undefined ? undefined : gone.get(deviceId);
      if (deviceId !== undefined && status !== undefined)
        evidence.push({
          kind: 'certificate',
          id: c.serial,
          detail: `${status} device ${deviceId} still holds this certificate, not revoked (${c.subject})`,
        });
    }
    return outcome({
      evidence,
      examined: gone.size,
      pass: `none of ${count(gone.size, 'lost or decommissioned device')} holds a valid certificate`,
      fail: (e) => `${e.length} certificates of lost or decommissioned devices are not revoked`,
    });
  },
};

const siteAccessReviewed: CheckDefinition = {
  id: 'physical.site-access-reviewed',
  title: 'Physical access to sites is owned and reviewed on time',
  severity: 'medium',
  rationale:
    'Who may enter a site where devices stand is authorised by its owner and reviewed; access nobody reviews outlives the people and roles it was granted for (NIST SP 800-53 PE-2, PE-3).',
  remediation:
    'Give each site an owner (`bulwark site set <name> --owner <person>`), review the access records named and record the next review (`bulwark site grant <site> <person> --review-at 90d`), or revoke them (`bulwark site revoke <site> <id> --reason …`).',
  reads: ['physical'],
  run({ facts }) {
    const { sites, groupsWithoutSite } = facts.physical;
    const evidence: Evidence[] = [];
    for (const site of sites) {
      if (site.owner.trim() === '')
        evidence.push({ kind: 'site', id: site.name, detail: 'no owner attests its access records' });
      const listed = site.overdue.map((a): Evidence => ({
        kind: 'site_access',
        id: a.id,
        detail: `${site.name}: ${a.role ?? 'access'} due for review on ${isoDate(a.reviewAt)}`,
      }));
      evidence.push(...withRest(listed, site.overdueReviews, 'site_access'));
    }
    const records = sites.reduce((n, s) => n + s.access, 0);
    const unlocated = groupsWithoutSite?.length ? `; groups at no site: ${groupsWithoutSite.join(', ')}` : '';
    return outcome({
      evidence,
      examined: records,
      pass:
        sites.length === 0
          ? `no sites recorded${unlocated}`
          : `${count(sites.length, 'site')} with an owner, ${count(records, 'access record')} reviewed on time${unlocated}`,
      fail: (e) => `${e.length} site findings: access past its review date or a site without an owner`,
    });
  },
};

const reportsVerified: CheckDefinition = {
  id: 'physical.reports-verified',
  title: 'Devices send only verifiable security reports',
  severity: 'low',
  rationale:
    'A tamper or health report that is unsigned, signed by another key, replayed or stale is refused; refusals mean a device is misconfigured or someone is forging reports on its behalf.',
  remediation:
    'Read the refusals and their reason (`bulwark audit-log list --type device.security_report_rejected`), fix the device agent (key, clock, sequence) or investigate the sender; the count starts again when the server restarts.',
  reads: ['attestation'],
  run({ facts }) {
    const rejected = facts.attestation.reportsRejected;
    const evidence: Evidence[] =
      rejected > 0
        ? [
            {
              kind: 'security_report',
              id: 'rejected',
              detail: `${count(rejected, 'security report')} refused since the server started`,
            },
          ]
        : [];
    return outcome({
      evidence,
      examined: rejected,
      pass: 'no security report refused since the server started',
      fail: () => `${count(rejected, 'security report')} refused since the server started`,
    });
  },
};

export const attestationChecks: readonly CheckDefinition[] = [noContraindicated, keysBound];

export const physicalChecks: readonly CheckDefinition[] = [
  tamperResponse,
  lostRevoked,
  siteAccessReviewed,
  reportsVerified,
];
