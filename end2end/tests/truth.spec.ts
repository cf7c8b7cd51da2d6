import { Browser, expect, Page, test } from '@playwright/test';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, SCREENSHOTS, Server, tempDir } from './server';

// What the page tells the operator at a glance: live tabs, offline, alerts from every project,
// times in the browser's zone, and pages that say when a project is gone.

const PLAN = '## Phase 1: Core\n- [x] 1.1: parse input\n- [ ] 1.2: report\n- [ ] 1.3: export\n';

let root: string;
let alpha: string;
let hotel: string;
let server: Server;

const at = (dir: string, file: string) => path.join(dir, '.ralph', file);

function row(n: number, status: string, errors: string[] = [], tasks: string[] = []): string {
  const start = new Date(Date.UTC(2026, 10, 24, 10, 0, n * 7));
  const end = new Date(start.getTime() + 7000);
  return (
    JSON.stringify({
      iteration: n,
      max: 20,
      start: start.toISOString(),
      end: end.toISOString(),
      duration_seconds: 1,
      tokens: 10 * n,
      status,
      tasks_completed: tasks,
      errors,
    }) + '\n'
  );
}

test.beforeEach(async () => {
  root = tempDir('loopwatch-truth-');
  alpha = makeProject(root, 'alpha', PLAN);
  hotel = makeProject(root, 'hotel', PLAN);
  for (const dir of [alpha, hotel]) {
    fs.writeFileSync(at(dir, 'ralph.log'), '=== Iteration 1 (loop 1/20) ===\nworking\n');
    fs.writeFileSync(at(dir, 'iterations.jsonl'), row(1, 'success', [], ['1.1']));
    fs.writeFileSync(path.join(dir, 'AGENTS.md'), '# Agents\nfirst version\n');
  }
  server = await Server.start(root);
});

test.afterEach(async () => {
  await server.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

async function hydrated(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

/// Every project's alerts reach the tab from here on (the page has subscribed to them all).
async function watchingAll(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-watching', 'true');
}

async function signIn(page: Page) {
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  await hydrated(page);
}

async function hrefOf(page: Page, name: string): Promise<string> {
  const href = await page.locator('article.card h2 a', { hasText: name }).getAttribute('href');
  expect(href).toBeTruthy();
  return href!;
}

async function open(page: Page, name: string, tab = ''): Promise<string> {
  await signIn(page);
  const href = await hrefOf(page, name);
  await page.goto(server.url + href + tab);
  await hydrated(page);
  return href;
}

async function screenshot(page: Page, name: string) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

test('the Files tab follows a context file that changes on disk', async ({ page }) => {
  await open(page, 'alpha', '/files?file=AGENTS.md');
  await expect(page.getByTestId('file-text')).toContainText('first version');
  fs.appendFileSync(path.join(alpha, 'AGENTS.md'), 'a line added while the tab is open\n');
  await expect(page.getByTestId('file-text')).toContainText('a line added while the tab is open');
});

test('offline is shown at once, and the page catches up when the network is back', async ({ page, context }) => {
  await open(page, 'alpha', '/log');
  await expect(page.getByTestId('log-pane')).toContainText('working');
  const indicator = page.locator('.connection');
  await context.setOffline(true);
  await expect(indicator).toHaveAttribute('data-state', 'offline');
  await expect(indicator).toContainText('Offline');
  await screenshot(page, 'project-offline');
  fs.appendFileSync(at(alpha, 'ralph.log'), 'written while offline\n');
  await context.setOffline(false);
  await expect(indicator).toBeHidden({ timeout: 30_000 });
  await expect(page.getByTestId('log-pane')).toContainText('written while offline');
});

test('alerts from another project toast on a project page and on the dashboard, with its name', async ({
  page,
}) => {
  await open(page, 'alpha');
  await watchingAll(page);
  fs.writeFileSync(at(hotel, 'pending-notification.txt'), 'ERROR: hotel cannot reach its database\n');
  const toast = page.getByTestId('toast').filter({ hasText: 'hotel cannot reach its database' });
  await expect(toast).toHaveCount(1);
  await expect(toast.locator('.toast-project')).toHaveText('hotel');
  await expect(toast).toHaveAttribute('data-severity', 'error');
  // Back on the dashboard (in-page navigation), the next alert toasts too.
  await page.getByRole('link', { name: /All projects/ }).click();
  await expect(page).toHaveURL(server.url + '/');
  fs.writeFileSync(at(hotel, 'pending-notification.txt'), 'BLOCKED: hotel needs an API key\n');
  await expect(page.getByTestId('toast').filter({ hasText: 'hotel needs an API key' })).toHaveCount(1);
});

test('info toasts go by themselves; many alerts are counted, and dismissed at once', async ({ page }) => {
  await open(page, 'alpha');
  await watchingAll(page);
  fs.writeFileSync(at(hotel, 'pending-notification.txt'), 'DONE: all tasks complete\n');
  const done = page.getByTestId('toast').filter({ hasText: 'all tasks complete' });
  await expect(done).toHaveCount(1);
  await expect(done).toHaveCount(0, { timeout: 20_000 });
  const toasts = page.getByTestId('toast');
  for (let n = 1; n <= 7; n++) {
    fs.writeFileSync(at(hotel, 'pending-notification.txt'), `ERROR: failure number ${n}\n`);
    await expect(toasts.filter({ hasText: `failure number ${n}` })).toHaveCount(1);
  }
  await expect(toasts).toHaveCount(5);
  await expect(page.getByTestId('toasts-more')).toHaveText('+2 more');
  await screenshot(page, 'toasts-more');
  await page.getByRole('button', { name: 'Dismiss all' }).click();
  await expect(toasts).toHaveCount(0);
});

test('the feed shows one line per failed iteration and colours alerts by severity', async ({ page }) => {
  fs.appendFileSync(at(alpha, 'iterations.jsonl'), row(2, 'error', ['mismatched types', 'unused import']));
  fs.writeFileSync(
    at(alpha, 'pending-notification.txt'),
    JSON.stringify({ prefix: 'ERROR', message: 'tests fail', iteration: 2, timestamp: '2026-11-24T10:00:22Z' }),
  );
  // A loop that is no longer alive after a failed iteration is in error.
  fs.rmSync(at(alpha, 'ralph.pid'));
  await open(page, 'alpha');
  const feed = page.getByTestId('activity');
  await expect(feed.filter({ hasText: 'Iteration 2 failed' })).toHaveText(/mismatched types \(\+1 more\)/);
  await expect(feed.filter({ hasText: 'Iteration 2' })).toHaveCount(1);
  await expect(feed.filter({ hasText: 'tests fail' })).toHaveCount(0);
  fs.writeFileSync(at(alpha, 'pending-notification.txt'), 'BLOCKED: need the ledger format\n');
  const blocked = feed.filter({ hasText: 'BLOCKED: need the ledger format' });
  await expect(blocked).toHaveClass(/feed-notification/);
  await expect(blocked).toHaveClass(/feed-error/);
  // A failed loop projects no completion time.
  await expect(page.getByTestId('status')).toHaveText('error');
  await expect(page.getByTestId('tile-projected-completion')).toContainText('stopped by an error');
});

test('a finished project projects nothing; a running one uses wall time per iteration', async ({ page }) => {
  fs.appendFileSync(at(hotel, 'iterations.jsonl'), row(2, 'success', [], ['1.2']));
  await open(page, 'hotel');
  // Two iterations of 7 s wall time (1 s of agent time each); two tasks left at one per iteration.
  await expect(page.getByTestId('tile-projected-completion')).toHaveText('2 iterations \u00b7 14s');
  fs.writeFileSync(path.join(hotel, 'IMPLEMENTATION_PLAN.md'), PLAN.replace(/- \[ \]/g, '- [x]') + '\nSTATUS: COMPLETE\n');
  await expect(page.getByTestId('tile-projected-completion')).toHaveText('done');
});

test('times read in the browser zone with the zone shown, and relative on the cards', async ({ browser }) => {
  const context = await browser.newContext({ timezoneId: 'America/Los_Angeles' });
  const page = await context.newPage();
  fs.writeFileSync(
    at(alpha, 'pending-notification.txt'),
    JSON.stringify({ prefix: 'DECISION', message: 'which db?', timestamp: '2026-11-24T18:30:00Z' }),
  );
  await signIn(page);
  const activity = page.locator('article.card', { hasText: 'alpha' }).getByTestId('activity').locator('time');
  await expect(activity).toHaveText(/ago|just now/);
  await expect(activity).toHaveAttribute('title', /P[SD]T$/);
  await page.goto(server.url + (await hrefOf(page, 'alpha')) + '/notifications');
  await hydrated(page);
  // 18:30 UTC is 10:30 in Los Angeles in November.
  await expect(page.getByTestId('notification').locator('time')).toHaveText('2026-11-24 10:30:00 PST');
  await context.close();
});

test('the reconnect banner starts at attempt 1', async ({ page }) => {
  await open(page, 'alpha');
  await server.stop();
  // The first frame that names an attempt, read in the page.
  const first = await page.waitForFunction(
    () => {
      const text = document.querySelector('.connection-text')?.textContent ?? '';
      return text.includes('attempt') ? text : '';
    },
    undefined,
    { polling: 'raf', timeout: 15_000 },
  );
  expect(await first.jsonValue()).toMatch(/attempt 1, next in [12] s/);
  await server.launch();
});

test('a project whose directory is deleted says so; a reload gives a Project not found page', async ({ page }) => {
  const href = await open(page, 'hotel', '/plan');
  fs.rmSync(hotel, { recursive: true, force: true });
  await expect(page.getByTestId('project-gone')).toBeVisible();
  await screenshot(page, 'project-gone');
  const response = await page.reload();
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Project not found' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Back to the dashboard' })).toBeVisible();
  expect(href).toMatch(/^\/projects\/hotel-/);
});

test('at 360 px the current tab is in view, and the page hydrates without an error', async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  // A control that appeared while the page hydrated (the session's rights came first) broke
  // hydration, and with it everything after, the tab strip's scroll included.
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  const href = await open(page, 'alpha', '/notifications');
  const current = page.getByRole('link', { name: 'Notifications', exact: true });
  await expect(current).toHaveAttribute('aria-current', 'page');
  await expect(page.getByRole('button', { name: 'Pause' })).toBeVisible();
  await expect(current).toBeInViewport({ ratio: 0.9 });
  // A status change refetches the controls' state; the page around them stays as it is.
  await page.evaluate(() => ((window as any).strip = document.querySelector('.tabs')));
  const refetched = page.waitForResponse((response) => response.url().endsWith('/api/control_state'));
  fs.writeFileSync(at(alpha, 'pause'), '');
  await refetched;
  await expect(page.locator('.project-head').getByTestId('status')).toHaveText(/paus/);
  const kept = await page.evaluate(
    () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(document.contains((window as any).strip))))),
  );
  expect(kept).toBe(true);
  await expect(current).toBeInViewport({ ratio: 0.9 });
  await page.goto(server.url + href + '/files');
  await hydrated(page);
  await expect(page.getByRole('link', { name: 'Files', exact: true })).toBeInViewport({ ratio: 0.9 });
  expect(errors).toEqual([]);
  await context.close();
});

test('at 360 px long log lines wrap on request', async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  fs.appendFileSync(at(alpha, 'ralph.log'), 'a long line ' + 'word '.repeat(80) + '\n');
  const href = await open(page, 'alpha', '/notifications');
  await page.goto(server.url + href + '/log');
  await hydrated(page);
  const long = page.getByTestId('log-pane').locator('.log-line', { hasText: 'a long line' });
  const before = (await long.boundingBox())!.height;
  await page.getByLabel('Wrap lines').check();
  await expect.poll(async () => (await long.boundingBox())!.height).toBeGreaterThan(before * 2);
  await context.close();
});

test('the log downloads whole or one iteration', async ({ page }) => {
  fs.appendFileSync(at(alpha, 'ralph.log'), '\u001b[31mred line\u001b[0m\n=== Iteration 2 (loop 2/20) ===\nsecond\n');
  await open(page, 'alpha', '/log');
  await expect(page.getByTestId('log-pane')).toContainText('second');
  const whole = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download log' }).click();
  const file = await (await whole).path();
  expect(fs.readFileSync(file, 'utf8')).toBe(
    '=== Iteration 1 (loop 1/20) ===\nworking\nred line\n=== Iteration 2 (loop 2/20) ===\nsecond\n',
  );
  const one = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download iteration' }).click();
  // The pane is short: its top line is the first, in iteration 1.
  expect(fs.readFileSync(await (await one).path(), 'utf8')).toBe(
    '=== Iteration 1 (loop 1/20) ===\nworking\nred line\n',
  );
});

test('the tab title counts running loops and errors; cards sort by status and cost', async ({ page }) => {
  fs.appendFileSync(at(hotel, 'iterations.jsonl'), row(2, 'error', ['boom']));
  fs.rmSync(at(hotel, 'ralph.pid'));
  await signIn(page);
  await expect(page).toHaveTitle('(1 error, 1 running) loopwatch');
  const names = () => page.locator('article.card h2 a').allTextContents();
  await expect.poll(names).toEqual(['alpha', 'hotel']);
  await page.getByLabel('Sort projects').selectOption('status');
  await expect.poll(names).toEqual(['hotel', 'alpha']);
  await page.getByLabel('Sort projects').selectOption('cost');
  // hotel has spent more tokens (10k + 20k against 10k).
  await expect.poll(names).toEqual(['hotel', 'alpha']);
  await page.getByLabel('Sort projects').selectOption('name');
  await expect.poll(names).toEqual(['alpha', 'hotel']);
});

test('a running loop whose log went silent says so on its card; the favicon counts what needs the operator', async ({
  page,
}) => {
  // A live loop (its own process, so the pid file may be newer than the process) whose log and
  // other files were last written 20 minutes ago.
  const loop = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    await silentLoop(page, loop.pid!);
  } finally {
    loop.kill();
  }
});

async function silentLoop(page: Page, pid: number) {
  await server.stop();
  const old = new Date(Date.now() - 20 * 60_000);
  for (const dir of [alpha, path.join(alpha, '.ralph')]) {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isFile()) fs.utimesSync(path.join(dir, entry.name), old, old);
    }
  }
  fs.writeFileSync(at(alpha, 'ralph.pid'), String(pid));
  await server.launch();
  await signIn(page);
  const card = (name: string) => page.locator('article.card', { has: page.locator('h2 a', { hasText: name }) });
  await expect(card('alpha').getByTestId('silence-hint')).toHaveText(/^Log silent for 2\d min$/);
  await expect(card('hotel').getByTestId('silence-hint')).toHaveCount(0);
  // The watchdog's own silent-log alert may toast too: count what is shown.
  const icon = page.locator('link[rel=icon]');
  const toasts = page.getByTestId('toast');
  await watchingAll(page);
  fs.writeFileSync(at(hotel, 'pending-notification.txt'), 'ERROR: hotel lost its database\n');
  await expect(toasts.filter({ hasText: 'hotel lost its database' })).toHaveCount(1);
  await expect(icon).toHaveAttribute('data-badge', `Attention(${await toasts.count()})`);
  expect(await icon.getAttribute('href')).toMatch(/^data:image\/svg\+xml,/);
  while ((await toasts.count()) > 0) await toasts.first().getByRole('button', { name: 'Dismiss', exact: true }).click();
  await expect(icon).toHaveAttribute('data-badge', 'Running(2)');
}

async function shoot(browser: Browser, scheme: 'light' | 'dark', width: number) {
  const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: scheme });
  const page = await context.newPage();
  const href = await open(page, 'alpha');
  await screenshot(page, `project-${scheme}-${width}`);
  await page.goto(server.url + '/');
  await hydrated(page);
  await screenshot(page, `dashboard-${scheme}-${width}`);
  await page.goto(server.url + href + '/log');
  await hydrated(page);
  await screenshot(page, `project-log-${scheme}-${width}`);
  await context.close();
}

test('screenshots: dashboard and project page, light and dark, 1280 and 360 px', async ({ browser }) => {
  for (const scheme of ['light', 'dark'] as const) {
    for (const width of [1280, 360]) await shoot(browser, scheme, width);
  }
  for (const name of ['dashboard-light-1280', 'dashboard-dark-360', 'project-light-360', 'project-dark-1280']) {
    expect(fs.existsSync(path.join(SCREENSHOTS, `${name}.png`))).toBe(true);
  }
});

test('card and overview count the same tokens while an iteration has ended in the log only', async ({ page }) => {
  const href = await open(page, 'alpha');
  // The log says the iteration used 5,000 tokens; its JSONL row is not written yet.
  fs.appendFileSync(at(alpha, 'ralph.log'), '=== Iteration 2 (loop 2/20) ===\ndone\ntokens used\n5,000\n');
  await expect(page.getByTestId('tile-tokens')).toHaveText('15k');
  await page.goto(server.url + '/');
  await hydrated(page);
  await expect(page.locator('article.card', { hasText: 'alpha' }).getByTestId('tokens')).toHaveText('15k');
  expect(href).toMatch(/^\/projects\/alpha-/);
});
