import type { CertificateFact } from '../facts.ts';
import type { CheckDefinition, Evidence } from './types.ts';
import { count, distinct, expiry, humanDuration, outcome } from './util.ts';

const certificateEvidence = (cert: CertificateFact, detail: string): Evidence => ({
  kind: 'certificate',
  id: cert.serial,
  detail: `${cert.subject}: ${detail}`,
});

const caExpiry: CheckDefinition = {
  id: 'pki.ca-expiry',
  title: 'CA certificates are renewed long before they expire',
  severity: 'high',
  rationale:
    'When the issuing CA expires every device certificate chained to it stops validating and the fleet cannot connect or enrol.',
  remediation:
    'Rotate the CA before the warning window (issue the new CA, publish it with `bulwark pki ca-chain`, then let devices re-enrol through EST simplereenroll); or widen certificates.caExpiryWarning in the baseline only if the rotation is already planned.',
  reads: ['pki'],
  run({ facts, baseline, now }) {
    const window = baseline.certificates.caExpiryWarning;
    const evidence = facts.pki.ca
      .filter((c) => c.notAfter < now + window)
      .map((c) =>
        certificateEvidence(c, `${expiry(c.notAfter, now)}, within the ${humanDuration(window)} window`),
      );
    return outcome({
      evidence,
      examined: facts.pki.ca.length,
      pass: `${count(facts.pki.ca.length, 'CA certificate')} valid for more than ${humanDuration(window)}`,
      fail: (e) =>
        `${e.length} of ${facts.pki.ca.length} CA certificates expire within ${humanDuration(window)}`,
    });
  },
};

const serverExpiry: CheckDefinition = {
  id: 'pki.server-certificate-expiry',
  title: 'The TLS server certificate is renewed before it expires',
  severity: 'high',
  rationale: 'An expired server certificate makes devices and operators refuse every TLS connection.',
  remediation:
    'Reissue the server certificate (restart `bulwark serve`, which renews it, or install a new one), and check pki.hostnames.',
  reads: ['pki'],
  run({ facts, baseline, now }) {
    const server = facts.pki.server;
    const window = baseline.certificates.serverExpiryWarning;
    const evidence =
      server && server.notAfter < now + window
        ? [
            certificateEvidence(
              server,
              `${expiry(server.notAfter, now)}, within the ${humanDuration(window)} window`,
            ),
          ]
        : [];
    return outcome({
      evidence,
      examined: server ? 1 : 0,
      pass: server
        ? `the server certificate is valid for more than ${humanDuration(window)}`
        : 'no server certificate yet (issued at first start)',
      fail: () => `the server certificate expires within ${humanDuration(window)}`,
    });
  },
};

const deviceExpiry: CheckDefinition = {
  id: 'pki.device-certificate-expiry',
  title: 'Device certificates are renewed before they expire',
  severity: 'high',
  rationale:
    'A device whose certificate expires can no longer authenticate; renewal close to expiry means automatic re-enrolment is not working.',
  remediation:
    'Check the device agent renews (EST simplereenroll); issue a new enrolment token with `bulwark device token <id>` for devices that cannot.',
  reads: ['pki'],
  run({ facts, baseline, now }) {
    const window = baseline.certificates.deviceExpiryWarning;
    const certs = facts.pki.deviceCertificates;
    const evidence: Evidence[] = certs
      .filter((c) => c.notAfter < now + window)
      .map((c) => ({
        kind: 'device',
        id: c.deviceId,
        detail: `certificate ${c.serial} ${expiry(c.notAfter, now)}, within the ${humanDuration(window)} window`,
      }));
    return outcome({
      evidence,
      examined: certs.length,
      pass: `none of ${count(certs.length, 'device certificate')} expires within ${humanDuration(window)}`,
      fail: (e) =>
        `${e.length} of ${certs.length} device certificates expire within ${humanDuration(window)}`,
    });
  },
};

const deviceLifetime: CheckDefinition = {
  id: 'pki.device-certificate-lifetime',
  title: 'Device certificates are short-lived',
  severity: 'medium',
  rationale:
    'Long-lived certificates keep a stolen key useful for longer and delay the adoption of stronger algorithms.',
  remediation:
    'Lower pki.deviceCertValidity (BULWARK_DEVICE_CERT_VALIDITY) to at most the baseline certificates.deviceMaxLifetime; devices get the shorter lifetime at their next renewal.',
  reads: ['pki'],
  run({ facts, baseline }) {
    const max = baseline.certificates.deviceMaxLifetime;
    const evidence: Evidence[] = [];
    if (facts.pki.deviceCertValidityMs > max)
      evidence.push({
        kind: 'setting',
        id: 'pki.deviceCertValidity',
        detail: `new device certificates are valid ${humanDuration(facts.pki.deviceCertValidityMs)}, more than ${humanDuration(max)}`,
      });
    for (const c of facts.pki.deviceCertificates)
      if (c.notAfter - c.notBefore > max)
        evidence.push({
          kind: 'device',
          id: c.deviceId,
          detail: `certificate ${c.serial} is valid ${humanDuration(c.notAfter - c.notBefore)}, more than ${humanDuration(max)}`,
        });
    return outcome({
      evidence,
      examined: facts.pki.deviceCertificates.length + 1,
      pass: `device certificates are valid at most ${humanDuration(max)}`,
      fail: (e) => `${e.length} certificate lifetimes or settings exceed ${humanDuration(max)}`,
    });
  },
};

const acceptedKeyTypes: CheckDefinition = {
  id: 'pki.accepted-key-types',
  title: 'Certificates use accepted key types only',
  severity: 'high',
  rationale: 'Weak keys (RSA below 2048 bits, uncommon curves) can be broken or are not accepted by peers.',
  remediation:
    'Re-enrol the devices and apps named with a key of an accepted type (the baseline certificates.acceptedKeyTypes); rotate the CA when it is the CA key.',
  reads: ['pki'],
  run({ facts, baseline }) {
    const accepted = new Set<string>(baseline.certificates.acceptedKeyTypes);
    const certs = [
      ...facts.pki.ca,
      ...(facts.pki.server ? [facts.pki.server] : []),
      ...facts.pki.activeCertificates,
    ];
    const evidence = certs
      .filter((c) => c.keyType === null || !accepted.has(c.keyType))
      .map((c) => certificateEvidence(c, `key ${c.keyType ?? c.keyDescription} is not an accepted key type`));
    return outcome({
      evidence,
      examined: certs.length,
      pass: `all ${count(certs.length, 'certificate')} use accepted key types (${[...accepted].join(', ')})`,
      fail: (e) => `${e.length} of ${certs.length} certificates use a key type the baseline does not accept`,
    });
  },
};

const sharedKeys: CheckDefinition = {
  id: 'pki.shared-keys',
  title: 'Every device and app has a key of its own',
  severity: 'critical',
  rationale:
    'A key shared by several devices (a class-wide or cloned key) lets one extracted key impersonate them all (ETSI EN 303 645 5.1).',
  remediation:
    'Revoke the certificates named (`bulwark device revoke <id>`) and re-enrol each device so it generates its own key.',
  reads: ['pki'],
  run({ facts }) {
    const byKey = new Map<string, { owners: Set<string>; certs: (CertificateFact & { owner: string })[] }>();
    for (const c of facts.pki.activeCertificates) {
      const entry = byKey.get(c.publicKeySha256) ?? { owners: new Set(), certs: [] };
      entry.owners.add(c.owner);
      entry.certs.push(c);
      byKey.set(c.publicKeySha256, entry);
    }
    const evidence: Evidence[] = [];
    for (const { owners, certs } of byKey.values())
      if (owners.size >= 2)
        for (const c of certs)
          evidence.push(
            certificateEvidence(
              c,
              `${c.owner} shares its key with ${[...owners].filter((o) => o !== c.owner).join(', ')}`,
            ),
          );
    return outcome({
      evidence,
      examined: facts.pki.activeCertificates.length,
      pass: `${count(facts.pki.activeCertificates.length, 'active certificate')}, no key shared between owners`,
      fail: (e) => `${distinct(e)} certificates share a key with another owner`,
    });
  },
};

const devicesWithoutCertificate: CheckDefinition = {
  id: 'pki.devices-without-certificate',
  title: 'Every device in service holds a valid certificate',
  severity: 'medium',
  rationale:
    'A device marked in service without a certificate cannot authenticate, or was left half-revoked: its state is unclear.',
  remediation:
    'Enrol the device again (`bulwark device token <id>`), or decommission it when it is no longer in service.',
  reads: ['pki', 'devices'],
  run({ facts }) {
    const certified = new Set(facts.pki.deviceCertificates.map((c) => c.deviceId));
    const inService = facts.devices.devices.filter((d) => d.status === 'active' || d.status === 'disabled');
    const evidence: Evidence[] = inService
      .filter((d) => !certified.has(d.id))
      .map((d) => ({ kind: 'device', id: d.id, detail: `${d.status} without a valid certificate` }));
    return outcome({
      evidence,
      examined: inService.length,
      pass: `all ${count(inService.length, 'device')} in service hold a certificate`,
      fail: (e) => `${e.length} of ${inService.length} devices in service have no valid certificate`,
    });
  },
};

export const pkiChecks: readonly CheckDefinition[] = [
  caExpiry,
  serverExpiry,
  deviceExpiry,
  deviceLifetime,
  acceptedKeyTypes,
  sharedKeys,
  devicesWithoutCertificate,
];
