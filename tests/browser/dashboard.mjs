// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core.
// tests/it/dashboard.rs starts tend and runs
//   node tests/browser/dashboard.mjs URL OPERATE_TOKEN READ_TOKEN SCREENSHOT_DIR
// with TEND_PLAYWRIGHT_CORE (the package's directory) and TEND_CHROMIUM set. It prints
// "dashboard: all checks passed" and exits 0, or says what failed (with a screenshot of the
// moment) and exits 1. Every wait is bounded; nothing sleeps.

import { createRequire } from 'node:module';
import path from 'node:path';

const [url, operate, read, shots] = process.argv.slice(2);
if (!url || !operate || !read || !shots) {
  console.error('usage: node dashboard.mjs URL OPERATE_TOKEN READ_TOKEN SCREENSHOT_DIR');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const { chromium } = require(process.env.TEND_PLAYWRIGHT_CORE || 'playwright-core');

// Generous: the suite runs on two busy cores.
const PATIENCE = 30_000;
// What the page may log as an error: the answers it expects (401 before the login and for a
// wrong token, 403 for the forged request). Anything else (a script error, a refusal by the
// Content-Security-Policy) fails the test.
const EXPECTED = /Failed to load resource: the server responded with a status of (401|403)/;
const problems = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function open(browser, options) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(PATIENCE);
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !EXPECTED.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function api(method, route, token) {
  const res = await fetch(new URL(route, url), { method, headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function logIn(page, token) {
  const field = page.getByLabel('Token');
  await field.waitFor();
  // By keyboard, as someone without a mouse would: the field has the focus, Enter submits.
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'token');
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.locator('tr[data-service="web"]').waitFor();
}

/** Every form control has a label, every button a name. */
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML));
  check(unlabelled.length === 0, `${where}: controls without a label: ${unlabelled.join(' ')}`);
}

const browser = await chromium.launch({
  executablePath: process.env.TEND_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let page = null;
try {
  // ---- an operator -----------------------------------------------------------------------
  page = await open(browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  await page.getByLabel('Token').waitFor();
  await shot(page, 'login');

  await page.getByLabel('Token').fill('not-a-token-of-this-tend-0123');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('That token is not valid.').waitFor();
  await page.getByLabel('Token').fill('');
  await logIn(page, operate);
  await page.locator('tr[data-service="worker"]').waitFor();
  await page.locator('#live.on').waitFor();
  await page.locator('#who', { hasText: 'operate' }).waitFor();
  const scripted = await page.evaluate(() => document.cookie);
  check(!scripted.includes('tend_session'), `the session cookie is readable by scripts: ${scripted}`);
  await checkLabels(page, 'overview');
  await shot(page, 'overview');

  // Restart web with its button; its pid changes and it runs again.
  const web = page.locator('tr[data-service="web"]');
  const before = (await web.locator('[data-field="pid"]').textContent()).trim();
  check(/^\d+$/.test(before), `web's pid reads ${before}`);
  await page.getByRole('button', { name: 'Restart web', exact: true }).click();
  await page.waitForFunction((old) => {
    const row = document.querySelector('tr[data-service="web"]');
    const pid = row && row.querySelector('[data-field="pid"]').textContent.trim();
    const state = row && row.querySelector('[data-field="state"]').textContent.trim();
    return /^\d+$/.test(pid) && pid !== old && state === 'running';
  }, before);
  await page.getByText('restart web: done (1 instance)').waitFor();
  await web.locator('[data-field="restarts"]', { hasText: '1' }).waitFor();
  await shot(page, 'restarted');

  // A service's page: its log lines, the stream filter, the search, the charts.
  await page.getByRole('link', { name: 'worker', exact: true }).click();
  await page.locator('#service-title', { hasText: 'worker' }).waitFor();
  const log = page.locator('#log');
  await log.getByText('hello from the worker').waitFor();
  await log.getByText('the worker complains').waitFor();
  await page.getByLabel('Stream').selectOption('err');
  await log.getByText('the worker complains').waitFor();
  check(await log.getByText('hello from the worker').count() === 0, 'stdout lines under the stderr filter');
  await page.getByLabel('Stream').selectOption('all');
  await log.getByText('hello from the worker').waitFor();
  await page.getByLabel('Search').fill('complains');
  await page.locator('#log-count', { hasText: '1 of 2 lines match' }).waitFor();
  check(await log.locator('mark', { hasText: 'complains' }).count() === 1, 'the match is not marked');
  await page.getByLabel('Search').fill('');
  await page.locator('#log-count', { hasText: '2 lines' }).waitFor();
  await page.locator('figure[data-chart="cpu_percent"] svg[role="img"]').waitFor();
  await page.locator('figure[data-chart="rss_bytes"] svg[role="img"]').waitFor();

  // Live: the worker restarted by someone else (a script with a token) shows up without a
  // reload, on both streams: a spawn in the timeline, the greeting again in the log.
  const spawns = await page.locator('#events li[data-kind="spawn"]').count();
  await api('POST', '/api/v1/services/worker/restart', operate);
  await page.waitForFunction((n) => document.querySelectorAll('#events li[data-kind="spawn"]').length > n, spawns);
  await page.waitForFunction(() => [...document.querySelectorAll('#log .line')]
    .filter((l) => l.textContent.includes('hello from the worker')).length >= 2);
  await checkLabels(page, 'service page');

  // Scale the worker to two instances from its page.
  await page.getByLabel('Instances').fill('2');
  await page.getByRole('button', { name: 'Scale worker' }).click();
  await page.getByText('scale worker: 1 → 2').waitFor();
  await page.locator('#service-instances tr[data-instance="worker:1"] [data-field="state"]', { hasText: 'running' }).waitFor();
  // The log follows the new instance too.
  await page.locator('#log .line', { hasText: 'worker:1' }).filter({ hasText: 'hello from the worker' }).waitFor();
  await shot(page, 'service');

  // Log out: the cookie no longer opens anything.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('Token').waitFor();
  const afterLogout = await page.evaluate(async () => (await fetch('/api/v1/services')).status);
  check(afterLogout === 401, `after logging out the API answers ${afterLogout}`);

  // ---- a reader ----------------------------------------------------------------------------
  await logIn(page, read);
  await page.locator('#who', { hasText: 'read-only' }).waitFor();
  check(await page.locator('button[data-action]').count() === 0, 'a read session sees action buttons');
  await page.getByRole('link', { name: 'web', exact: true }).click();
  await page.getByText('Read-only: this session cannot act.').waitFor();
  check(await page.locator('button[data-action], form.scale').count() === 0, 'a read session sees action buttons on a service page');
  // The page's own script, forging what a button would send: refused, with the CSRF token
  // and without.
  const forged = await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const headers = { 'X-CSRF-Token': session.csrf_token };
    const restart = await fetch('/api/v1/services/web/restart', { method: 'POST', headers });
    const bare = await fetch('/api/v1/services/web/restart', { method: 'POST' });
    const scale = await fetch('/api/v1/actions/scale', {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ service: 'web', instances: 3 }),
    });
    return { role: session.role, restart: restart.status, bare: bare.status, scale: scale.status };
  });
  check(forged.role === 'read' && forged.restart === 403 && forged.bare === 403 && forged.scale === 403,
    `a read session's forged actions: ${JSON.stringify(forged)}`);
  const [after] = await api('GET', '/api/v1/instances?targets=web', read);
  check(after.restarts === 1, `web was restarted ${after.restarts} times`);
  await shot(page, 'read-only');

  // ---- a phone, in the dark ----------------------------------------------------------------
  const phone = await open(browser, {
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 2,
    colorScheme: 'dark',
  });
  page = phone;
  await phone.goto(url);
  await logIn(phone, read);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the page is ${overflow} px wider than the phone`);
  await shot(phone, 'phone');

  check(problems.length === 0, `the page logged errors:\n${problems.join('\n')}`);
  console.log('dashboard: all checks passed');
} catch (e) {
  console.error(`dashboard: ${e.stack || e}`);
  if (problems.length) console.error(`also logged:\n${problems.join('\n')}`);
  if (page) await shot(page, 'failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
