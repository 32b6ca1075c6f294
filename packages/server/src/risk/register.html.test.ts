import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { REGISTER_REPORT_CSP, registerHtml } from './register.html.ts';
import type { RegisterReport, RegisterRisk } from './register.html.ts';
import { TARA_REPORT_CSP } from './tara.html.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 4, 12);

const risk = (r: Partial<RegisterRisk> & Pick<RegisterRisk, 'id' | 'title'>): RegisterRisk => ({
  source: { kind: 'manual' },
  assets: [],
  owner: null,
  treatment: 'reduce',
  controls: [],
  checks: [],
  due: null,
  status: 'open',
  impact: 'major',
  baseFeasibility: 'low',
  baseRisk: 2,
  feasibility: 'low',
  risk: 2,
  raised: false,
  factors: [],
  assessedAt: NOW - 30 * DAY,
  reviewDueAt: NOW + 335 * DAY,
  updatedAt: NOW - DAY,
  ...r,
});

/** A register as the service would hand it over: highest live risk first. */
const input: RegisterReport = {
  risks: [
    // Assessed severe × very low (2); a known vulnerability in the running firmware made it severe × medium (4).
    risk({
      id: 'R-1',
      title: 'Firmware image replaced over the update channel',
      source: { kind: 'tara', tara: 'pump-controller', threat: 'TS3' },
      assets: ['firmware:pump-fw', 'model:pump-controller'],
      owner: 'firmware-team',
      treatment: 'reduce',
      controls: ['signed firmware', 'staged rollouts'],
      checks: ['firmware.known-vulnerabilities', 'firmware.staged-rollouts'],
      due: '2027-02-01',
      status: 'treating',
      impact: 'severe',
      baseFeasibility: 'very low',
      baseRisk: 2,
      feasibility: 'medium',
      risk: 4,
      raised: true,
      factors: [
        {
          kind: 'vulnerability',
          ref: 'CVE-2026-1234',
          detail: 'pump-fw 1.4.2 on 12 devices: CVSS 8.1, AV:N',
          feasibility: 'medium',
        },
      ],
    }),
    // A zone below its target security level: past its due date and past its review.
    risk({
      id: 'R-3',
      title: 'Zone plant-floor below its target security level',
      source: { kind: 'zone', zone: 'plant-floor' },
      assets: ['zone:plant-floor'],
      impact: 'major',
      baseFeasibility: 'medium',
      baseRisk: 3,
      feasibility: 'medium',
      risk: 3,
      due: '2026-11-01',
      reviewDueAt: NOW - 2 * DAY,
      factors: [{ kind: 'zone-gap', ref: 'plant-floor', detail: 'SL-A 2 < SL-T 3', feasibility: 'medium' }],
    }),
    risk({
      id: 'R-4',
      title: 'Vendor portal <script>alert(1)</script>',
      owner: 'it-security',
      treatment: 'retain',
      status: 'accepted',
      impact: 'negligible',
      baseFeasibility: 'high',
      baseRisk: 1,
      feasibility: 'high',
      risk: 1,
      reviewDueAt: NOW + 10 * DAY,
    }),
    // Closed: in the register, not in the matrix, never overdue.
    risk({
      id: 'R-2',
      title: 'Telemetry read on the local network',
      source: { kind: 'tara', tara: 'pump-controller', threat: 'TS1' },
      status: 'closed',
      impact: 'moderate',
      due: '2026-01-01',
      reviewDueAt: NOW - 100 * DAY,
    }),
  ],
  zones: [
    {
      zone: 'plant-floor',
      target: 3,
      achieved: 2,
      gap: 1,
      blocking: ['pki.ca-expiry', 'zones.conduit-rate-caps'],
      devices: 12,
      measuredAt: NOW - 3_600_000,
    },
    { zone: 'office', target: 2, achieved: 2, gap: 0, blocking: [], devices: 3, measuredAt: NOW - 3_600_000 },
  ],
  history: {
    'R-1': [
      { at: NOW - 30 * DAY, actor: 'user:alice', change: 'created', from: null, to: 2, detail: {} },
      {
        at: NOW - DAY,
        actor: 'system',
        change: 'raised',
        from: 2,
        to: 4,
        detail: { factors: ['vulnerability:CVE-2026-1234'] },
      },
    ],
    'R-3': [],
  },
  baseline: { reassessEvery: 365 * DAY, alertOnIncrease: 1 },
};

describe('register report as a string', () => {
  it('an empty register and no zones: a muted "none" per section, the matrix still drawn', () => {
    const html = registerHtml(
      { risks: [], zones: [], history: {}, baseline: { reassessEvery: 90 * DAY, alertOnIncrease: 2 } },
      NOW,
    );
    expect(html).toContain('<title>Risk register</title>');
    expect(html).toContain('id="risk-matrix"');
    expect(html).toContain('<span class="muted">none open</span>');
    expect(html).not.toContain('id="zones"');
    expect(html).not.toContain('id="register"');
    expect(html.match(/<p><span class="muted">none<\/span><\/p>/g)).toHaveLength(3);
    expect(html).toContain(
      '0 risks: 0 open, 0 treating, 0 accepted, 0 closed; 0 raised; 0 past review due; 0 past their due date.',
    );
    expect(html).toContain('re-assessed every 90 days, raised when its live value is 2 or more above');
    expect(html).not.toMatch(/<script|<link|src=|url\(/i);
  });

  it('its CSP allows exactly its one style block, also as a <meta> policy', () => {
    const html = registerHtml(input, NOW);
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? '');
    expect(styles).toHaveLength(1);
    const hash = createHash('sha256')
      .update(styles[0] ?? '')
      .digest('base64');
    expect(REGISTER_REPORT_CSP).toBe(`default-src 'none'; style-src 'sha256-${hash}'`);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;`);
    expect(REGISTER_REPORT_CSP).not.toBe(TARA_REPORT_CSP);
    expect(html).toContain('Vendor portal &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toContain('<script>');
  });
});

describe.skipIf(!haveChromium)("register report in Debian's chromium", () => {
  it('renders the matrix, zones, register and history with its CSP: no errors, violations or requests', async () => {
    const html = registerHtml(input, NOW);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      const dialogs: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (err) => errors.push(err.message));
      page.on('request', (r) => requests.push(r.url()));
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await page.setContent(html, { waitUntil: 'load' });
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
      expect(dialogs).toEqual([]);

      // The style block applied (its hash is in the CSP): the matrix cells carry their risk value's colour.
      const matrix = page.locator('#risk-matrix');
      expect((await matrix.boundingBox())?.width ?? 0).toBeGreaterThan(300);
      const position = (selector: string) =>
        matrix.locator(selector).evaluate((el) => {
          const td = el.closest('td') as HTMLTableCellElement;
          const tr = td.parentElement as HTMLTableRowElement;
          return { row: tr.rowIndex, column: td.cellIndex, bg: getComputedStyle(td).backgroundColor };
        });
      // Rows: header, severe, major, moderate, negligible; columns: impact, very low, low, medium, high.
      expect(await position('a.live:text("R-1")')).toEqual({ row: 1, column: 3, bg: 'rgb(207, 34, 46)' });
      expect(await position('.base:text("R-1")')).toEqual({ row: 1, column: 1, bg: 'rgb(154, 103, 0)' });
      expect(await matrix.locator('.base').innerText()).toBe('R-1 →');
      expect(await matrix.locator('a.live').filter({ hasText: 'R-1' }).innerText()).toBe('R-1 ↑');
      expect(await position('a.live:text("R-3")')).toEqual({ row: 2, column: 3, bg: 'rgb(188, 76, 0)' });
      expect(await matrix.locator('.base').count()).toBe(1);
      expect(await matrix.getByText('R-2').count()).toBe(0);
      const baseStyle = await matrix.locator('.base').evaluate((el) => getComputedStyle(el).fontStyle);
      expect(baseStyle).toBe('italic');

      const summary = await page.locator('p.summary').innerText();
      expect(summary).toBe(
        '4 risks: 1 open, 1 treating, 1 accepted, 1 closed; 1 raised; 1 past review due; 1 past their due date.',
      );

      // Zones: the one below target is marked, its bar filled to 2 and outlined to 3.
      expect(await page.locator('#zones tr').count()).toBe(3);
      const gap = page.locator('#zones tr.gap');
      expect(await gap.count()).toBe(1);
      expect(await gap.locator('td').first().innerText()).toBe('plant-floor');
      expect(await gap.locator('.warn').innerText()).toBe('⚠ 1');
      expect(await gap.locator('.sl .a').count()).toBe(2);
      expect(await gap.locator('.sl .t').count()).toBe(3);
      expect(await gap.locator('code').allInnerTexts()).toEqual(['pki.ca-expiry', 'zones.conduit-rate-caps']);
      expect(
        await gap
          .locator('.sl span.a')
          .first()
          .evaluate((el) => getComputedStyle(el).backgroundColor),
      ).toBe('rgb(188, 76, 0)');
      expect(await page.locator('#zones tr', { hasText: 'office' }).locator('.warn').count()).toBe(0);

      // The register: overdue marks only on the open zone risk; the closed one is never overdue.
      expect(await page.locator('#register tr').count()).toBe(5);
      expect(await page.locator('#register .overdue').count()).toBe(1);
      expect(await page.locator('#risk-R-3 .overdue').isVisible()).toBe(true);
      expect(await page.locator('#register .review-past').count()).toBe(1);
      expect(await page.locator('#risk-R-3 .review-past').isVisible()).toBe(true);
      expect(await page.locator('#risk-R-3').innerText()).toContain('unassigned');
      expect(await page.locator('#risk-R-1 .raised').count()).toBe(1);
      expect(await page.locator('#risk-R-1').innerText()).toContain('vulnerability CVE-2026-1234');
      expect(await page.locator('#risk-R-1').innerText()).toContain('TARA pump-controller, threat TS3');

      // A hostile title is text, not markup.
      expect(await page.locator('script').count()).toBe(0);
      expect(await page.locator('#risk-R-4 td').nth(1).innerText()).toContain(
        'Vendor portal <script>alert(1)</script>',
      );

      // History: only R-1 has entries.
      expect(await page.locator('details').count()).toBe(1);
      expect(await page.locator('#history-R-1 tr').count()).toBe(3);
      expect(await page.locator('#history-R-1').innerText()).toContain('2026-12-03T12:00:00.000Z');

      // Dark mode: the variables switch.
      await page.emulateMedia({ colorScheme: 'dark' });
      expect(await page.locator('body').evaluate((el) => getComputedStyle(el).backgroundColor)).toBe(
        'rgb(13, 17, 23)',
      );
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
