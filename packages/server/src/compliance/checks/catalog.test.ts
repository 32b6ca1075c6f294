import { baselineDocumentSchema } from '@bulwark/protocol';
import { describe, expect, it } from 'vitest';
import type { ComplianceFacts } from '../facts.ts';
import {
  FIXTURE_NOW,
  failingChecks as failing,
  healthyBaseline,
  healthyFacts,
  runCatalog,
} from './fixtures.ts';
import { checkCatalog } from './index.ts';
import { checkIds } from './types.ts';

describe('check catalog', () => {
  it('has exactly one definition per check id, in the order of checkIds', () => {
    expect(checkCatalog.map((c) => c.id)).toEqual([...checkIds]);
    expect(new Set(checkCatalog.map((c) => c.id)).size).toBe(checkIds.length);
  });

  it('describes every check fully', () => {
    for (const c of checkCatalog) {
      expect(c.title.length, c.id).toBeGreaterThan(10);
      expect(['critical', 'high', 'medium', 'low'], c.id).toContain(c.severity);
      expect(c.rationale.length, c.id).toBeGreaterThan(30);
      expect(c.remediation.length, c.id).toBeGreaterThan(30);
      expect(c.reads.length, c.id).toBeGreaterThan(0);
      expect(c.title, c.id).not.toMatch(/\.$/);
    }
  });

  it('marks exactly the checks the operator must enable as needing the operator', () => {
    expect(checkCatalog.filter((c) => c.needs === 'operator').map((c) => c.id)).toEqual([
      'audit.exported',
      'firmware.advisories-imported',
      'org.support-period',
      'org.disclosure-contact',
      'privacy.controller-named',
      'risk.tara-recorded',
    ]);
  });

  it('runs only zones.security-level in phase 2', () => {
    expect(checkCatalog.filter((c) => c.phase === 2).map((c) => c.id)).toEqual(['zones.security-level']);
  });

  it('passes every check on the healthy fleet with the healthy baseline', () => {
    const outcomes = runCatalog({
      facts: healthyFacts(FIXTURE_NOW),
      baseline: healthyBaseline(),
      now: FIXTURE_NOW,
    });
    expect(failing(outcomes)).toEqual([]);
    for (const [id, o] of outcomes) {
      expect(o.evidence, id).toEqual([]);
      expect(o.summary.length, id).toBeGreaterThan(10);
    }
  });

  it('passes everything but the operator checks on a fresh install with one connected device', () => {
    const now = FIXTURE_NOW;
    const healthy = healthyFacts(now);
    const facts: ComplianceFacts = {
      ...healthy,
      pki: {
        ...healthy.pki,
        deviceCertificates: healthy.pki.deviceCertificates.slice(0, 1),
        activeCertificates: healthy.pki.activeCertificates.slice(0, 1),
      },
      devices: {
        ...healthy.devices,
        devices: healthy.devices.devices.slice(0, 1).map((d) => ({ ...d, group: null, zone: null })),
      },
      users: {
        ...healthy.users,
        accounts: healthy.users.accounts.slice(0, 1).map((a) => ({ ...a, createdAt: now - 3_600_000 })),
        apiTokens: [],
      },
      audit: { chain: { ok: true, entries: 12, brokenAt: null, reason: null }, exporters: [] },
      monitor: {
        ...healthy.monitor,
        profiles: healthy.monitor.profiles.slice(0, 1),
        groups: [{ group: '', devices: 1 }],
        openAlerts: [],
      },
      access: { policies: [], zones: [], conduits: [], devicesInNoZone: ['sensor-1'], appGrants: [] },
      firmware: { metadata: [], autoRefresh: true, releases: [], activeRollouts: [], devices: [] },
      vulnerabilities: { advisories: 0, lastImportAt: null, exposures: [] },
      privacy: {
        schemas: [],
        openRequests: [],
        controller: { name: null, contact: null },
        telemetryPatterns: [],
      },
      apps: { apps: [] },
      attestation: {
        keys: { bound: 0, pending: 0, oldestPendingAt: null },
        standings: { affirming: 0, warning: 0, contraindicated: 0, overdue: 0, none: 0 },
        contraindicated: [],
        overdue: [],
        reportsRejected: 0,
      },
      physical: { sites: [], groupsWithoutSite: [] },
      risk: { taras: [], risks: [] },
    };
    const outcomes = runCatalog({
      facts,
      baseline: baselineDocumentSchema.parse({ name: 'bulwark-default' }),
      now,
    });
    expect(failing(outcomes)).toEqual([
      'audit.exported',
      'firmware.advisories-imported',
      'org.support-period',
      'org.disclosure-contact',
      'privacy.controller-named',
      'risk.tara-recorded',
    ]);
  });
});
