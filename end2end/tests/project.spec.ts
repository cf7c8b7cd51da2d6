import { expect, Page, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, SCREENSHOTS, Server, tempDir } from './server';

const PLAN = [
  '# Plan',
  '## Phase 1: Core',
  '- [x] 1.1: parse the ledger',
  '- [ ] 1.2: balance report',
  '## Phase 2: Output',
  '- [ ] 2.1: CSV export',
  '',
].join('\n');

let root: string;
let project: string;
let server: Server;

const ralph = (file: string) => path.join(project, '.ralph', file);

/** One iteration as the loop writes it: a header, a few lines, tokens, then its JSONL row. */
function header(n: number): string {
  return `\u001b[1;35m[10:00:0${n % 10}] === Iteration ${n} (loop ${n}/20) ===\u001b[0m\n`;
}

function row(n: number, tasks: string[]): string {
  return (
    JSON.stringify({
      iteration: n,
      max: 20,
      start: `2026-11-24T10:0${n}:00Z`,
      end: `2026-11-24T10:0${n}:30Z`,
      duration_seconds: 30,
      tokens: 12.5 * n,
      status: 'success',
      tasks_completed: tasks,
      commit: `abc${n}def`,
      test_passed: true,
      errors: [],
    }) + '\n'
  );
}

test.beforeEach(async () => {
  root = tempDir('loopwatch-e2e-');
  project = makeProject(root, 'ledger', PLAN);
  fs.writeFileSync(
    ralph('ralph.log'),
    header(1) + 'working on 1.1\n\u001b[31merror: first try failed\u001b[0m\ntokens used\n12,500\n',
  );
  fs.writeFileSync(ralph('iterations.jsonl'), row(1, ['1.1']));
  fs.writeFileSync(path.join(project, 'AGENTS.md'), '# Agents\nRun `cargo test` before committing.\n');
  fs.mkdirSync(path.join(project, 'specs'));
  fs.writeFileSync(path.join(project, 'specs', 'ledger.md'), '# Ledger spec\n<script>alert(1)</script>\n');
  server = await Server.start(root);
});

test.afterEach(async () => {
  await server.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

async function signIn(page: Page) {
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
}

async function hydrated(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

async function openProject(page: Page, tab = '') {
  await page.goto(server.url + '/');
  await hydrated(page);
  const href = await page.locator('article.card h2 a', { hasText: 'ledger' }).getAttribute('href');
  expect(href).toMatch(/^\/projects\/ledger-[0-9a-f]{8}$/);
  await page.goto(server.url + href + tab);
  await hydrated(page);
  return href!;
}

async function screenshot(page: Page, name: string) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The log pane's lines as text (the test logs stay shorter than the pane, so all are rendered). */
async function logLines(page: Page): Promise<string[]> {
  return page.getByTestId('log-pane').locator('.log-line').allTextContents();
}

/** The file as the pane shows it: one entry per line, escape sequences removed. */
function fileLines(): string[] {
  const text = fs.readFileSync(ralph('ralph.log'), 'utf8').replace(/\u001b\[[0-9;]*m/g, '');
  return text.split('\n').slice(0, -1);
}

test('every tab renders on the server with its data, and deep links work', async ({ page }) => {
  await signIn(page);
  const href = await openProject(page);
  const request = page.request;

  const overview = await (await request.get(server.url + href)).text();
  expect(overview).toContain('ledger \u2013 loopwatch'); // per-project title
  expect(overview).toContain('data-testid="chart-iterations"');
  expect(overview).toContain('data-testid="chart-health"');
  expect(overview).toContain('Checked off 1.1');

  const plan = await (await request.get(server.url + href + '/plan')).text();
  expect(plan).toContain('balance report');
  const iterations = await (await request.get(server.url + href + '/iterations')).text();
  expect(iterations).toContain('abc1def');
  const log = await (await request.get(server.url + href + '/log')).text();
  expect(log).toContain('working on 1.1');
  const files = await (await request.get(server.url + href + '/files?file=specs/ledger.md')).text();
  // Shown as text: the markup is escaped, never executed.
  expect(files).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  const missing = await request.get(server.url + '/projects/nope-00000000');
  expect(missing.status()).toBe(404);

  await expect(page).toHaveTitle('ledger \u2013 loopwatch');
  await expect(page.getByTestId('tile-iterations')).toHaveText('1');
  await screenshot(page, 'project-overview');
  for (const [tab, name] of [
    ['Plan', 'project-plan'],
    ['Iterations', 'project-iterations'],
    ['Log', 'project-log'],
    ['Notifications', 'project-notifications'],
    ['Files', 'project-files'],
  ]) {
    await page.getByRole('link', { name: tab, exact: true }).click();
    await expect(page.getByRole('link', { name: tab, exact: true })).toHaveAttribute('aria-current', 'page');
    if (tab === 'Files') {
      await page.getByRole('link', { name: 'AGENTS.md' }).click();
      await expect(page.getByTestId('file-text')).toContainText('Run `cargo test` before committing.');
    }
    if (tab === 'Log') {
      // The page opened on Overview without the log's text; the tab loads it.
      await expect(page.getByTestId('log-pane')).toContainText('working on 1.1');
      await expect(page.getByTestId('log-pane')).toContainText('12,500');
    }
    if (tab === 'Plan') {
      // Which iteration completed each task.
      await expect(page.getByTestId('task').filter({ hasText: 'parse the ledger' })).toContainText('iteration 1');
      await expect(page.getByText('Before the first phase')).toHaveCount(0);
    }
    if (tab === 'Iterations') {
      await page.getByTestId('iteration-row').first().getByRole('button').first().click();
      await expect(page.getByTestId('iteration-log')).toContainText('working on 1.1');
      // ANSI colours become classes, not raw escape codes.
      await expect(page.getByTestId('iteration-log').locator('.ansi-fg-1')).toHaveText('error: first try failed');
      // One page of one row: both pager buttons present and disabled.
      await expect(page.getByRole('button', { name: 'Older page', exact: true })).toBeDisabled();
      await expect(page.getByRole('button', { name: 'Newer page', exact: true })).toBeDisabled();
    }
    await screenshot(page, name);
  }
});

test('log lines, an iteration, a plan tick and a notification arrive live; the toast shows once', async ({
  page,
}) => {
  await signIn(page);
  await openProject(page, '/log');
  await page.evaluate(() => ((window as any).__sameDocument = true));
  await expect(page.getByTestId('log-pane')).toContainText('working on 1.1');

  fs.appendFileSync(ralph('ralph.log'), 'compiling ledger v0.1.0\n' + header(2) + 'working on 1.2\n');
  await expect(page.getByTestId('log-pane')).toContainText('working on 1.2');
  await expect(page.getByTestId('iteration')).toContainText('2 / 20');
  await expect.poll(() => logLines(page)).toEqual(fileLines());

  // Search and the errors-only filter narrow the pane.
  await page.getByLabel('Search the log').fill('compiling');
  await expect(page.getByTestId('log-count')).toHaveText(/^1 of \d+ lines$/);
  await page.getByLabel('Search the log').fill('');
  await page.getByLabel('Errors only').check();
  await expect.poll(() => logLines(page)).toEqual(['error: first try failed']);
  await page.getByLabel('Errors only').uncheck();

  await page.getByRole('link', { name: 'Overview', exact: true }).click();
  fs.appendFileSync(ralph('iterations.jsonl'), row(2, ['1.2']));
  await expect(page.getByTestId('tile-iterations')).toHaveText('2');
  fs.writeFileSync(path.join(project, 'IMPLEMENTATION_PLAN.md'), PLAN.replace('- [ ] 1.2', '- [x] 1.2'));
  await expect(page.getByTestId('tile-tasks-done')).toHaveText('2 / 3');

  fs.writeFileSync(ralph('pending-notification.txt'), 'DECISION: keep amounts as decimal strings?\n');
  const toast = page.getByTestId('toast');
  await expect(toast).toHaveCount(1);
  await expect(toast).toContainText('keep amounts as decimal strings?');
  // The same notification rewritten (same content, same id) does not toast again.
  fs.writeFileSync(ralph('pending-notification.txt'), 'DECISION: keep amounts as decimal strings?\n');
  fs.appendFileSync(ralph('ralph.log'), 'after the decision\n');
  await expect(page.getByText('after the decision')).toHaveCount(0); // log tab is closed
  await page.getByRole('link', { name: 'Notifications', exact: true }).click();
  await expect(page.getByTestId('notification')).toContainText('keep amounts as decimal strings?');
  // A different notification afterwards: once its toast is up, the rewrite above has long been
  // handled, and it added none.
  fs.writeFileSync(ralph('pending-notification.txt'), 'BLOCKED: need the ledger format\n');
  await expect(toast.filter({ hasText: 'need the ledger format' })).toHaveCount(1);
  await expect(toast).toHaveCount(2);
  await screenshot(page, 'project-live-toast');
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
});

test('a refresh in the middle of a run loses and duplicates nothing', async ({ page }) => {
  await signIn(page);
  await openProject(page, '/log');
  // 40 lines: few enough that the whole log is rendered in the pane (it virtualizes longer logs).
  let n = 0;
  const writer = setInterval(() => {
    if (n < 40) fs.appendFileSync(ralph('ralph.log'), `line ${++n}\n`);
  }, 40);
  try {
    await expect(page.getByTestId('log-pane')).toContainText('line 5');
    await page.reload();
    await hydrated(page);
    await expect(page.getByTestId('log-pane')).toContainText('line 15');
    await expect.poll(() => n).toBe(40);
  } finally {
    clearInterval(writer);
  }
  await expect(page.getByTestId('log-pane').locator('.log-line').last()).toHaveText('line 40');
  await expect.poll(() => logLines(page)).toEqual(fileLines());
});

test('server down: growing reconnect delays, then resume with the missed lines exactly once', async ({
  page,
}) => {
  await signIn(page);
  await openProject(page, '/log');
  await page.evaluate(() => ((window as any).__sameDocument = true));
  await server.stop();
  const indicator = page.locator('.connection');
  await expect(indicator).toHaveAttribute('data-state', /reconnecting|polling/);
  const delays: number[] = [];
  for (const attempt of [1, 2]) {
    // The first frame that shows this attempt, read in the page: the countdown has not moved
    // yet, whatever the load on the machine.
    const shown = await page.waitForFunction(
      (n) => {
        const text = document.querySelector('.connection-text')?.textContent ?? '';
        return text.includes(`attempt ${n},`) ? text : '';
      },
      attempt,
      { polling: 'raf', timeout: 15_000 },
    );
    delays.push(Number((await shown.jsonValue()).match(/next in (\d+) s/)?.[1]));
  }
  // Attempt 1 waits 1-2 s and attempt 2 2-4 s (1, 2, 4, ... s, each with up to half off).
  expect(delays[0]).toBeGreaterThanOrEqual(1);
  expect(delays[0]).toBeLessThanOrEqual(2);
  expect(delays[1]).toBeGreaterThanOrEqual(delays[0]);
  await screenshot(page, 'project-reconnecting');
  fs.appendFileSync(ralph('ralph.log'), 'written while the server was down\n');
  await server.launch();
  await expect(indicator).toBeHidden({ timeout: 40_000 });
  await expect(page.getByTestId('log-pane')).toContainText('written while the server was down');
  fs.appendFileSync(ralph('ralph.log'), 'written after the restart\n');
  await expect(page.getByTestId('log-pane')).toContainText('written after the restart');
  await expect.poll(() => logLines(page)).toEqual(fileLines());
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
});

test('a blocked WebSocket falls back to polling, and goes live again when unblocked', async ({ page }) => {
  let blocked = true;
  await page.routeWebSocket(/\/api\/ws$/, (ws) => {
    if (blocked) ws.close({ code: 1011, reason: 'blocked by the test' });
    else ws.connectToServer();
  });
  await signIn(page);
  await hydrated(page);
  const indicator = page.locator('.connection');
  await expect(indicator).toHaveAttribute('data-state', 'polling', { timeout: 30_000 });
  await expect(indicator).toHaveText(/Live updates unavailable - polling/);
  await screenshot(page, 'dashboard-polling');
  // Data still arrives, through polling.
  fs.writeFileSync(ralph('pause'), '');
  await expect(page.locator('article.card', { hasText: 'ledger' }).getByTestId('status')).toHaveText('paused', {
    timeout: 20_000,
  });
  blocked = false;
  await indicator.getByRole('button', { name: 'Retry now' }).click();
  await expect(indicator).toBeHidden({ timeout: 20_000 });
  fs.rmSync(ralph('pause'));
  await expect(page.locator('article.card', { hasText: 'ledger' }).getByTestId('status')).toHaveText('running');
});

test('two tabs both receive the same changes', async ({ browser }) => {
  const context = await browser.newContext();
  const first = await context.newPage();
  await first.goto(server.loginUrl);
  const href = await openProject(first, '/log');
  const second = await context.newPage();
  await second.goto(server.url + href);
  await hydrated(second);
  fs.appendFileSync(ralph('ralph.log'), 'seen by both tabs\n');
  fs.writeFileSync(ralph('pause'), '');
  await expect(first.getByTestId('log-pane')).toContainText('seen by both tabs');
  await expect(second.getByTestId('status')).toHaveText(/paused|pausing/);
  await expect(first.getByTestId('status')).toHaveText(/paused|pausing/);
  await context.close();
});

test('a session that is no longer valid goes to the login page and back to where it was', async ({
  page,
  context,
}) => {
  await signIn(page);
  const href = await openProject(page, '/plan');
  await server.stop();
  // The session cookie is replaced by one the server cannot verify (as after an expiry).
  // The cookie's name is per server instance: replace whichever one the sign-in set.
  const session = (await context.cookies(server.url)).find((c) => c.name.includes('loopwatch_session'));
  expect(session).toBeTruthy();
  await context.addCookies([{ ...session!, value: 'expired.token.value' }]);
  await server.launch();
  await expect(page).toHaveURL(/\/login\?next=/, { timeout: 40_000 });
  await screenshot(page, 'login-after-expiry');
  const credential = new URL(server.loginUrl).searchParams.get('token')!;
  await page.getByLabel('Login token').fill(credential);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(server.url + href + '/plan');
  await hydrated(page);
  await expect(page.getByText('balance report')).toBeVisible();
});

test('first contentful paint of the project page is recorded', async ({ page }) => {
  await signIn(page);
  const href = await openProject(page);
  await page.goto(server.url + href);
  // The entry can be recorded after the load event: wait for it (the test's timeout bounds this).
  const fcp = await page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        new PerformanceObserver((list) => {
          const entry = list.getEntriesByName('first-contentful-paint')[0];
          if (entry) resolve(entry.startTime);
        }).observe({ type: 'paint', buffered: true });
      }),
  );
  expect(fcp).toBeGreaterThan(0);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  fs.writeFileSync(path.join(SCREENSHOTS, '..', 'fcp.json'), JSON.stringify({ project_page_fcp_ms: fcp }));
  console.log(`first contentful paint of the project page: ${fcp.toFixed(0)} ms`);
});

test('the project page works at 360 px wide', async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  await page.goto(server.loginUrl);
  await openProject(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await screenshot(page, 'project-overview-360');
  await context.close();
});

test('a 100,000-line log keeps only the visible lines in the page and stays navigable', async ({ page }) => {
  const lines: string[] = [];
  for (let i = 1; i <= 100_000; i++) {
    if (i % 10_000 === 1) lines.push(`=== Iteration ${(i - 1) / 10_000 + 2}/20 ===`);
    lines.push(`\u001b[32mline ${i}\u001b[0m of a very long run`);
  }
  fs.appendFileSync(ralph('ralph.log'), lines.join('\n') + '\n');
  await signIn(page);
  await openProject(page, '/log');
  const pane = page.getByTestId('log-pane');
  await expect(pane).toContainText('line 100000 of a very long run');
  await expect(page.getByTestId('log-count')).toHaveText('100015 lines');
  // Virtualized: a few dozen rows in the DOM, not 100,000.
  expect(await pane.locator('.log-line').count()).toBeLessThan(200);
  // Jump back one iteration header, then search across all lines.
  await page.getByRole('button', { name: /Previous iteration/ }).click();
  await expect(pane.locator('.log-header').first()).toContainText('=== Iteration 11/20 ===');
  await page.getByLabel('Search the log').fill('line 4242 ');
  await expect(page.getByTestId('log-count')).toHaveText('1 of 100015 lines');
  await expect(pane.locator('.log-line')).toHaveText(['line 4242 of a very long run']);
  await screenshot(page, 'project-log-100k');
});
