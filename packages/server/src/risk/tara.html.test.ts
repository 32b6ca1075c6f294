import { existsSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkIds } from '../compliance/index.ts';
import { evaluateTara } from './tara.ts';
import { taraHtml } from './tara.html.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);

describe.skipIf(!haveChromium)("TARA report in Debian's chromium", () => {
  it('renders the matrix and the asset tables with its CSP: no errors, violations or requests', async () => {
    const doc: unknown = parseYaml(
      readFileSync(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url), 'utf8'),
    );
    const known = new Set<string>(checkIds);
    const html = taraHtml(
      evaluateTara(doc, (id) => known.has(id)),
      Date.UTC(2026, 11, 4),
    );
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (err) => errors.push(err.message));
      page.on('request', (r) => requests.push(r.url()));
      await page.setContent(html, { waitUntil: 'load' });
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
      // The style block applied (its hash is in the CSP): the risk-5 cell is dark red, the matrix is drawn.
      const cell = page.locator('#risk-matrix td.r5').filter({ hasText: 'TS3' });
      expect(await cell.evaluate((el) => getComputedStyle(el).backgroundColor)).toBe('rgb(164, 14, 38)');
      expect((await page.locator('#risk-matrix').boundingBox())?.width ?? 0).toBeGreaterThan(300);
      expect(await page.locator('section.asset').count()).toBe(3);
      expect(
        await page.locator('#asset-firmware').getByText('exploitability', { exact: false }).count(),
      ).toBe(0);
      expect(
        await page
          .locator('#asset-telemetry')
          .getByText('CVSS exploitability: exploitability 2.22 → medium')
          .count(),
      ).toBe(1);
    } finally {
      await browser.close();
    }
  });
});
