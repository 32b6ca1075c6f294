import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { roomSensorWithHeartRate } from '../test-support/data-schemas.ts';

const DAY = 86_400_000;

/** The room sensor with a heart rate (kept 7 days), and a description the HTML must escape. */
const roomSensor = {
  ...roomSensorWithHeartRate('7d'),
  description: 'Room sensors <script>alert(1)</script> & "friends"',
};

describe('the record of processing activities (GDPR Art. 30)', () => {
  let p: PrivacyTestContext;
  beforeAll(async () => {
    p = await createPrivacyTestContext('sqlite');
    await p.privacy.putSchema(roomSensor, 'user:dpo');
    p.apps.push(
      {
        name: 'analytics',
        purpose: 'analytics.reporting',
        status: 'active',
        grants: ['subscribe devices/+/telemetry group:rooms'],
      },
      {
        name: 'ops',
        purpose: 'essential.service.operations',
        status: 'active',
        grants: ['publish devices/+/commands/#', 'pubsub devices/#'],
      },
      {
        name: 'billing',
        purpose: 'essential.service',
        status: 'active',
        grants: ['subscribe apps/billing/#'],
      },
      { name: 'old', purpose: 'marketing', status: 'revoked', grants: ['subscribe devices/+/telemetry'] },
    );
  });
  afterAll(async () => {
    await p.close();
  });

  it('lists every classified field with category, purposes, lawful basis and retention', async () => {
    const record = await p.privacy.record();
    expect(record.controller).toEqual({ name: 'Example GmbH', contact: 'dpo@example.com' });
    expect(record.generatedAt).toBe(p.clock.now);
    const [activity] = record.activities;
    expect(record.activities).toHaveLength(1);
    expect(activity).toMatchObject({
      name: 'room-sensor',
      topic: 'devices/+/telemetry',
      purposes: ['essential.service.operations', 'every purpose'],
      dataSubjects: ['customer'],
      personalDataCategories: ['user.biometric.health', 'user.location.precise', 'user.unique_id'],
      retention: { ms: 7 * DAY, text: '7d, then deleted by the retention job' },
      transfers: expect.stringMatching(/^none/) as string,
    });
    expect(activity?.fields.map((f) => f.path)).toEqual(Object.keys(roomSensor.fields));
    expect(activity?.fields.find((f) => f.path === 'lat')).toEqual({
      path: 'lat',
      category: 'user.location.precise',
      personal: true,
      special: false,
      specialCondition: null,
      purposes: ['essential.service.operations'],
      lawfulBasis: 'contract',
      retention: '30d',
      retentionMs: 30 * DAY,
      transform: 'generalise grid 1000 m latitude',
      store: 'transformed',
      quasiIdentifier: true,
    });
    expect(activity?.fields.find((f) => f.path === 'hr')).toMatchObject({
      special: true,
      specialCondition: 'explicit_consent',
      lawfulBasis: 'consent',
      retention: '7d',
      transform: 'encrypt',
    });
    expect(activity?.fields.find((f) => f.path === 'temp')).toMatchObject({
      personal: false,
      purposes: null,
      lawfulBasis: 'legitimate_interests',
      retention: null,
      store: 'clear',
    });
    expect(activity?.securityMeasures).toEqual(
      expect.arrayContaining([
        'pseudonymisation (keyed HMAC, rotating key): user_id',
        'encryption per data subject (AES-256-GCM; erasure destroys the key): hr',
        'generalisation: lat, lon',
      ]),
    );
  });

  it('lists the apps that receive the topic and what each field reaches them as', async () => {
    const [activity] = (await p.privacy.record()).activities;
    expect(activity?.recipients.map((r) => [r.app, r.grants])).toEqual([
      ['analytics', ['subscribe devices/+/telemetry group:rooms']],
      ['ops', ['pubsub devices/#']],
    ]);
    const receives = (app: string) =>
      Object.fromEntries(
        activity?.recipients.find((r) => r.app === app)?.fields.map((f) => [f.path, f.receives]) ?? [],
      );
    expect(receives('analytics')).toEqual({
      user_id: 'transformed (pseudonymise)',
      lat: 'transformed (generalise grid 1000 m latitude)',
      lon: 'transformed (generalise grid 1000 m longitude at lat)',
      temp: 'clear',
      hr: 'transformed (encrypt)',
    });
    expect(receives('ops')).toEqual({
      user_id: 'clear',
      lat: 'clear',
      lon: 'clear',
      temp: 'clear',
      hr: "clear with the subject's consent, else transformed (encrypt)",
    });
  });

  it('renders one self-contained HTML page: every value escaped, no scripts, no external assets', async () => {
    const html = await p.privacy.recordHtml();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<h2>room-sensor</h2>');
    expect(html).toContain('Room sensors &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;friends&quot;');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\s(src|href)=/i);
    expect(html.match(/<table>/g)).toHaveLength(2);
    for (const f of ['user_id', 'lat', 'lon', 'temp', 'hr']) expect(html).toContain(`<td>${f}</td>`);
    expect(html).toContain('<td>user.biometric.health</td>');
    expect(html).toContain('<td>legitimate_interests</td>');
    expect(html).toContain('<td>30d</td>');
  });
});
