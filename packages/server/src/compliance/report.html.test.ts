import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStandardReport } from './report.ts';
import { HTML_REPORT_CSP, renderHtml } from './report.html.ts';
import { fixtureRun, fixtureTrend, HOSTILE_ID } from './report.fixture.ts';

const report = buildStandardReport(fixtureRun(), 'etsi-en-303-645', fixtureTrend());
const html = renderHtml(report);

describe('renderHtml', () => {
  it('escapes every string from the run (evidence ids, waiver reasons, titles)', () => {
    expect(html).not.toContain(HOSTILE_ID);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('Break-glass account kept &lt;on purpose&gt;');
    expect(html).toContain('Devices not seen &lt;b&gt;recently&lt;/b&gt;');
    expect(html).toContain('last seen 2026-10-01 &amp; &quot;never&quot; since');
    expect(html).not.toMatch(/<script|<b>|<on purpose>/i);
  });

  it('is self-contained: no scripts, no style attributes, no external references', () => {
    expect(html).not.toMatch(/<script|\son\w+=|\sstyle=|<link|<img|<iframe|@import|url\(/i);
    const urls = html.match(/\b(?:https?:)?\/\/[^\s"'<)]+/g) ?? [];
    expect(urls.filter((u) => u !== 'http://www.w3.org/2000/svg')).toEqual([]);
  });

  it('allows its one style block by hash, and the policy travels in the file as well', () => {
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? '');
    expect(styles).toHaveLength(1);
    const hash = createHash('sha256')
      .update(styles[0] ?? '')
      .digest('base64');
    expect(HTML_REPORT_CSP).toBe(`default-src 'none'; style-src 'sha256-${hash}'; img-src data:`);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;`);
  });

  it('has the sections and the waiver, attestation and justification details', () => {
    for (const heading of [
      'Failing clauses (4)',
      'Waivers (1)',
      'Manual clauses (2)',
      'Not applicable',
      'Passing clauses (3)',
    ]) {
      expect(html).toContain(heading);
    }
    expect(html).toContain('approved by</strong> carol');
    expect(html).toContain('Attestation expired');
    expect(html).toContain('Attestation in force');
    expect(html).toContain('No &lt;storage&gt;.');
    expect(html.indexOf('id="h-failing"')).toBeLessThan(html.indexOf('id="h-passing"'));
  });

  it('renders a standard without clauses or scored runs', () => {
    const run = fixtureRun();
    const empty = {
      ...run,
      standards: [
        {
          id: 'gdpr' as const,
          title: 'GDPR',
          version: '2016/679',
          score: null,
          counts: { pass: 0, fail: 0, error: 0, manual: 0, not_applicable: 0, waived: 0 },
          clauses: [],
        },
      ],
    };
    const page = renderHtml(buildStandardReport(empty, 'gdpr', []));
    expect(page).toContain('No scored runs yet');
    expect(page).toContain('No failing clauses.');
    expect(page).not.toMatch(/NaN|Infinity|undefined/);
  });

  it('draws four charts as accessible inline SVG', () => {
    const charts = [
      ...html.matchAll(/<svg [^>]*role="img" id="([\w-]+)" aria-labelledby="([\w-]+)-t \2-d"/g),
    ];
    expect(charts.map((m) => m[1])).toEqual([
      'chart-status',
      'chart-severity',
      'chart-trend',
      'chart-groups',
    ]);
    for (const m of charts) expect(html).toContain(`<title id="${m[1] ?? ''}-t">`);
    expect(html).toMatch(/<html lang="en">/);
  });
});

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const screenshot = fileURLToPath(new URL('../../../../test-results/compliance-report.png', import.meta.url));

/** Serves each body at its own path with the CSP header the report route sends. */
function serve(pages: Record<string, string>): Promise<Server> {
  const server = createServer((req, res) => {
    const body = pages[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': HTML_REPORT_CSP,
    });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

interface Visit {
  errors: string[];
  violations: string[];
  requests: string[];
}

async function visit(page: Page, url: string): Promise<Visit> {
  const seen: Visit = { errors: [], violations: [], requests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') seen.errors.push(m.text());
  });
  page.on('pageerror', (err) => seen.errors.push(err.message));
  page.on('request', (r) => seen.requests.push(r.url()));
  // Init scripts come through the DevTools protocol, outside the page's CSP: they only watch for violations.
  await page.addInitScript(() => {
    const store: string[] = [];
    Object.assign(window, { bulwarkViolations: store });
    document.addEventListener('securitypolicyviolation', (ev) =>
      store.push(`${ev.violatedDirective} ${ev.blockedURI}`),
    );
  });
  await page.goto(url, { waitUntil: 'load' });
  seen.violations = await page.evaluate(
    () => (window as unknown as { bulwarkViolations: string[] }).bulwarkViolations,
  );
  return seen;
}

describe.skipIf(!haveChromium)(
  `HTML report in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped: /usr/bin/chromium is missing'})`,
  () => {
    let browser: Browser;
    let server: Server;
    let base: string;

    beforeAll(async () => {
      // A style attribute the CSP must refuse: proves the violation watch works.
      const tampered = html.replace('<main>', '<main><p style="color:red">tampered</p>');
      server = await serve({ '/report.html': html, '/tampered.html': tampered });
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    });
    afterAll(async () => {
      await browser.close();
      await new Promise((resolve) => server.close(resolve));
    });

    it('renders with the CSP, without console errors, violations or requests beyond the page, charts drawn', async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const seen = await visit(page, `${base}/report.html`);
      expect(seen.errors).toEqual([]);
      expect(seen.violations).toEqual([]);
      expect(seen.requests).toEqual([`${base}/report.html`]);
      for (const id of ['chart-status', 'chart-severity', 'chart-trend', 'chart-groups']) {
        const box = await page.locator(`svg#${id}`).boundingBox();
        expect(box?.width ?? 0, id).toBeGreaterThan(100);
      }
      expect(await page.locator('svg#chart-status circle.seg').count()).toBe(5);
      expect(await page.locator('svg#chart-trend circle.dot').count()).toBe(4);
      // The style block applied (CSP allowed it by hash): failing clauses have the red left border.
      const border = await page
        .locator('article.st-fail')
        .first()
        .evaluate((el) => getComputedStyle(el).borderLeftWidth);
      expect(border).toBe('4px');
      expect(await page.getByText(HOSTILE_ID, { exact: true }).count()).toBe(1);
      mkdirSync(fileURLToPath(new URL('.', `file://${screenshot}`)), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      const background = () => page.locator('body').evaluate((el) => getComputedStyle(el).backgroundColor);
      await page.emulateMedia({ colorScheme: 'dark' });
      expect(await background()).toBe('rgb(13, 17, 23)');
      // Printed, even from a dark screen: no dark background.
      await page.emulateMedia({ colorScheme: 'dark', media: 'print' });
      expect(await background()).toBe('rgb(255, 255, 255)');
      await page.close();
    });

    it('reports a violation when the page holds what the CSP forbids (the watch works)', async () => {
      const page = await browser.newPage();
      const seen = await visit(page, `${base}/tampered.html`);
      expect(seen.violations.length).toBeGreaterThan(0);
      await page.close();
    });
  },
);
