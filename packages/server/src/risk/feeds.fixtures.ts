/** Feeds written by the tests (never downloaded): a small KEV catalog and EPSS file as CISA and FIRST publish them. */

/** A small catalog shaped as CISA publishes it (fields as in known_exploited_vulnerabilities_schema.json). */
export function kevCatalog(
  vulnerabilities: Record<string, unknown>[] = kevEntries(),
  extra: Record<string, unknown> = {},
) {
  return {
    title: 'CISA Catalog of Known Exploited Vulnerabilities',
    catalogVersion: '2024.09.21',
    dateReleased: '2024-09-21T16:30:00.0688Z',
    count: vulnerabilities.length,
    vulnerabilities,
    ...extra,
  };
}

export function kevEntry(cve: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cveID: cve,
    vendorProject: 'Apache',
    product: 'Log4j2',
    vulnerabilityName: 'Apache Log4j2 Remote Code Execution Vulnerability',
    dateAdded: '2021-12-10',
    shortDescription:
      'Apache Log4j2 contains a vulnerability where JNDI features do not protect against attacker-controlled JNDI-related endpoints.',
    requiredAction: 'Apply updates per vendor instructions.',
    dueDate: '2021-12-24',
    knownRansomwareCampaignUse: 'Known',
    notes: 'https://logging.apache.org/log4j/2.x/security.html',
    cwes: ['CWE-20', 'CWE-400', 'CWE-502'],
    ...overrides,
  };
}

export function kevEntries(): Record<string, unknown>[] {
  return [
    kevEntry('CVE-2021-44228'),
    kevEntry('CVE-2019-10744', {
      vendorProject: 'Lodash',
      product: 'lodash',
      vulnerabilityName: 'Lodash Prototype Pollution Vulnerability',
      dateAdded: '2024-02-29',
      dueDate: '2024-03-21',
      knownRansomwareCampaignUse: 'Unknown',
      cwes: [],
    }),
    // The schema requires neither `notes`, `cwes` nor the ransomware field, and allows fields it does not name.
    {
      cveID: 'CVE-2023-1234567',
      vendorProject: 'Acme',
      product: 'Pump controller',
      vulnerabilityName: 'Acme Pump Controller Hard-coded Credentials',
      dateAdded: '2024-09-20',
      shortDescription: 'Hard-coded credentials.',
      requiredAction: 'Apply mitigations per vendor instructions or discontinue use of the product.',
      dueDate: '2024-10-11',
      forensicTriage: 'No',
    },
  ];
}

/** FIRST's daily file: the comment line, the header, one CVE a line. */
export function epssCsv(
  rows: readonly string[],
  comment = '#model_version:v2023.03.01,score_date:2024-03-01T00:00:00+0000',
) {
  return [...(comment ? [comment] : []), 'cve,epss,percentile', ...rows, ''].join('\n');
}
