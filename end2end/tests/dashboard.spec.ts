import { expect, Page, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, SCREENSHOTS, Server, tempDir } from './server';

const PLAN = '## Phase 1: Setup\n- [ ] 1.1: first task\n- [ ] 1.2: second task\n';

let root: string;
let project: string;
let server: Server;

test.beforeEach(async () => {
  root = tempDir('loopwatch-e2e-');
  project = makeProject(root, 'alpha', PLAN);
  server = await Server.start(root);
});

test.afterEach(async () => {
  await server.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

async function openDashboard(page: Page) {
  // The sign-in link sets the session cookie and lands on the dashboard.
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  // The WASM client marks the body once it has taken over the server-rendered page.
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

const card = (page: Page) => page.locator('article.card', { hasText: 'alpha' });

async function screenshot(page: Page, name: string) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

test('the release binary alone serves the page, its wasm and js, and the page hydrates', async ({
  page,
}) => {
  // Signed out: the page sends the browser to the login page.
  await page.goto(server.url + '/');
  await expect(page).toHaveURL(/\/login\?next=%2F|\/login\?next=\//);
  await expect(page.getByLabel('Login token')).toBeVisible();
  await screenshot(page, 'login');

  await openDashboard(page);
  const request = page.request; // shares the signed-in cookie
  const response = await request.get(server.url + '/');
  expect(response.status()).toBe(200);
  const html = await response.text();
  // Server-rendered with real data: no client needed to see the project.
  expect(html).toContain('alpha');
  expect(html).toContain('running');
  expect(html).toContain('0 / 2 tasks');

  const js = html.match(/\/pkg\/[\w.-]+\.js/)?.[0];
  const wasm = html.match(/\/pkg\/[\w.-]+\.wasm/)?.[0];
  expect(js, 'page links a script').toBeTruthy();
  expect(wasm, 'page links the wasm module').toBeTruthy();

  const raw = await request.get(server.url + wasm!, { headers: { 'accept-encoding': 'identity' } });
  expect(raw.status()).toBe(200);
  expect(raw.headers()['content-type']).toBe('application/wasm');
  expect((await raw.body()).subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));

  const compressed = await request.get(server.url + wasm!, { headers: { 'accept-encoding': 'br' } });
  expect(compressed.status()).toBe(200);
  expect(compressed.headers()['content-encoding']).toBe('br');
  expect(compressed.headers()['content-type']).toBe('application/wasm');

  const script = await request.get(server.url + js!);
  expect(script.status()).toBe(200);
  expect(script.headers()['content-type']).toMatch(/javascript/);

  const missing = await request.get(server.url + '/pkg/nope.js');
  expect(missing.status()).toBe(404);

  await expect(card(page).getByTestId('status')).toHaveText('running');
  await screenshot(page, 'dashboard');
});

test('a pause file and a plan tick update the card without a reload', async ({ page }) => {
  await openDashboard(page);
  await expect(card(page).getByTestId('status')).toHaveText('running');
  // Survives only if the page is never reloaded.
  await page.evaluate(() => ((window as any).__sameDocument = true));

  fs.writeFileSync(path.join(project, '.ralph', 'pause'), '');
  await expect(card(page).getByTestId('status')).toHaveText('paused');

  fs.writeFileSync(path.join(project, 'IMPLEMENTATION_PLAN.md'), PLAN.replace('- [ ] 1.1', '- [x] 1.1'));
  await expect(card(page).getByTestId('tasks')).toHaveText('1 / 2 tasks (50%)');
  await expect(card(page).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '50');

  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  await screenshot(page, 'dashboard-live-update');
});

test('after a server restart the page reconnects and shows what changed meanwhile', async ({ page }) => {
  await openDashboard(page);
  await expect(card(page).getByTestId('status')).toHaveText('running');
  await page.evaluate(() => ((window as any).__sameDocument = true));

  await server.stop();
  const indicator = page.locator('.connection');
  await expect(indicator).toHaveAttribute('data-state', 'reconnecting');
  await expect(indicator).toContainText('Reconnecting');
  await screenshot(page, 'dashboard-reconnecting');

  // Changed while nobody was watching: must still show up after the reconnect.
  fs.writeFileSync(path.join(project, '.ralph', 'pause'), '');
  await server.launch();
  await expect(indicator).toHaveAttribute('data-state', 'live', { timeout: 40_000 });
  await expect(indicator).toBeHidden();
  await expect(card(page).getByTestId('status')).toHaveText('paused');

  // And the live stream works again for later changes.
  fs.rmSync(path.join(project, '.ralph', 'pause'));
  await expect(card(page).getByTestId('status')).toHaveText('running');
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
});
