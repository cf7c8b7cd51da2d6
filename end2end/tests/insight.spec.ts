import { expect, Page, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, SCREENSHOTS, Server, tempDir } from './server';

// The notification history and budgets in a real browser: a stuck-loop alert raised by the
// watchdog is still in the Notifications tab after the server restarts, and acknowledging it
// in one tab hides it in another; a budget set on the overview shows as a bar on the card,
// and the bar turns to a warning as the loop spends.

let root: string;
let project: string;
let server: Server;

function failingRow(iteration: number): string {
  return (
    JSON.stringify({ iteration, max: 9, status: 'error', tasks_completed: [`${iteration}.1`], test_passed: false, errors: [] }) +
    '\n'
  );
}

function spendingRow(iteration: number, tokens: number): string {
  return (
    JSON.stringify({ iteration, max: 9, status: 'success', tasks_completed: [`${iteration}.1`], test_passed: true, errors: [], tokens }) +
    '\n'
  );
}

test.beforeEach(async () => {
  root = tempDir('loopwatch-insight-');
  project = makeProject(root, 'alpha', '- [ ] 1: first task\n- [ ] 2: second task\n');
});

test.afterEach(async () => {
  await server.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

async function hydrated(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

async function openProject(page: Page, tab = '') {
  await page.goto(server.url + '/');
  await hydrated(page);
  const href = await page.locator('article.card h2 a', { hasText: 'alpha' }).getAttribute('href');
  await page.goto(server.url + href + tab);
  await hydrated(page);
}

test('an alert outlives a server restart in the Notifications tab; an ack hides it in a second tab', async ({
  page,
  context,
}) => {
  fs.writeFileSync(path.join(project, '.ralph', 'iterations.jsonl'), failingRow(1) + failingRow(2));
  server = await Server.start(root);
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  await openProject(page, '/notifications');
  await expect(page.locator('body')).toHaveAttribute('data-watching', 'true');

  fs.appendFileSync(path.join(project, '.ralph', 'iterations.jsonl'), failingRow(3));
  const alert = page.getByTestId('notification').filter({ hasText: 'Tests failed in 3 iterations in a row.' });
  await expect(alert.first()).toBeVisible();
  const id = await alert.first().getAttribute('data-id');
  expect(id).toBeTruthy();

  await server.stop();
  await server.launch();
  await page.reload();
  await hydrated(page);
  const kept = page.locator(`[data-testid=notification][data-id="${id}"]`);
  await expect(kept).toBeVisible();
  await expect(kept).toContainText('ALERT');

  const second = await context.newPage();
  await openProject(second, '/notifications');
  const there = second.locator(`[data-testid=notification][data-id="${id}"]`);
  await expect(there).toBeVisible();
  await kept.getByTestId('ack').click();
  await expect(there).toBeHidden();
  await expect(kept).toBeHidden();
  // Still in the history, marked.
  await second.getByTestId('show-acknowledged').check();
  await expect(there).toBeVisible();
  await expect(there.getByTestId('acked')).toContainText('acknowledged by');
  await second.screenshot({ path: path.join(SCREENSHOTS, 'insight-history.png'), fullPage: true });
});

test('a budget set on the overview shows as a bar on the card and warns at 80 %', async ({ page }) => {
  const rows = path.join(project, '.ralph', 'iterations.jsonl');
  fs.writeFileSync(rows, spendingRow(1, 50));
  server = await Server.start(root);
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  await openProject(page);
  await page.getByTestId('budget-form').locator('summary').click();
  await page.getByTestId('budget-tokens').fill('100');
  await page.getByTestId('budget-save').click();
  const bar = page.getByTestId('budget-bar');
  await expect(bar).toHaveAttribute('aria-label', /tokens 50%/);
  await expect(bar).toHaveAttribute('data-level', 'under');

  await page.goto(server.url + '/');
  await hydrated(page);
  const cardBar = page.locator('article.card', { hasText: 'alpha' }).getByTestId('budget-bar');
  await expect(cardBar).toHaveAttribute('aria-label', /tokens 50%/);
  fs.appendFileSync(rows, spendingRow(2, 35));
  await expect(cardBar).toHaveAttribute('data-level', 'warning');
  await expect(cardBar).toHaveAttribute('aria-label', /tokens 85%/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'insight-budget.png'), fullPage: true });
});
