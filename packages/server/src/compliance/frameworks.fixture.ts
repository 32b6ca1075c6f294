import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A framework added by an operator (not built in): two clauses evidenced by checks, one attested. */
export const acmeFramework = {
  id: 'acme-internal',
  title: 'ACME internal security policy',
  version: '2026.1',
  clauses: [
    {
      id: 'ACME-1',
      title: 'Encrypted transport',
      group: 'Transport',
      mode: 'automated',
      checks: ['net.tls-version'],
      note: 'TLS 1.2 or later only',
    },
    {
      id: 'ACME-2',
      title: 'Certificate authority in date',
      group: 'PKI',
      mode: 'automated',
      checks: ['pki.ca-expiry'],
      note: 'the CA does not expire soon',
    },
    { id: 'ACME-3', title: 'Training', group: 'People', mode: 'manual', guidance: 'the training records' },
  ],
};

/** A new frameworks directory holding acme-internal.json (the caller removes it). */
export function acmeFrameworksDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-frameworks-'));
  writeFileSync(path.join(dir, 'acme-internal.json'), JSON.stringify(acmeFramework));
  return dir;
}
