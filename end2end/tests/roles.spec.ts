import { Browser, expect, Page, test } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import path from 'node:path';
import { makeProject, Server, tempDir } from './server';

// Roles in a real browser: a page on another origin fires every kind of request a browser lets
// it send with the operator's cookie, and nothing changes; a read-only link made from the share
// panel signs a fresh browser in as a viewer that sees no controls and only its project.

const PLAN = '## Phase 1: Setup\n- [ ] 1.1: first task\n';
const BINARY = process.env.LOOPWATCH_BINARY ?? path.resolve(__dirname, '../../target/release/loopwatch');

let root: string;
let server: Server;
let attacker: http.Server | undefined;

test.beforeEach(async () => {
  root = tempDir('loopwatch-e2e-');
  makeProject(root, 'alpha', PLAN);
  makeProject(root, 'bravo', PLAN);
  server = await Server.start(root);
});

test.afterEach(async () => {
  if (attacker) await new Promise<void>((resolve) => attacker!.close(() => resolve()));
  attacker = undefined;
  await server.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

type Card = { id: string; name: string; archived_at: string | null };

async function projects(page: Page): Promise<Card[]> {
  const response = await page.request.post(server.url + '/api/projects', {
    data: {},
    headers: { origin: server.url },
  });
  expect(response.status()).toBe(200);
  return (await response.json()).projects;
}

/** The audit trail as `loopwatch audit` prints it. */
function auditTrail(): string[] {
  const out = execFileSync(BINARY, ['audit', '--data-dir', server.dataDir], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim() !== '');
}

async function signIn(page: Page): Promise<void> {
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

/** A page on another port of 127.0.0.1 that tries every cross-site way to act. */
async function startAttacker(target: string, projectId: string): Promise<string> {
  const archive = JSON.stringify({ project: projectId, archived: true });
  const share = JSON.stringify({ projects: [projectId], expires: null });
  const page = `<!DOCTYPE html>
<html><head><title>attacker</title></head><body>
<form id="form" method="POST" action="${target}/api/archive" target="sink" enctype="text/plain">
  <input name='${archive.slice(0, -1)}, "x":"' value='"}'>
</form>
<iframe name="sink"></iframe>
<img id="img" src="${target}/api/archive?project=${projectId}&archived=true">
<script>
  const target = ${JSON.stringify(target)};
  const attempts = [
    fetch(target + '/api/archive', { method: 'POST', mode: 'no-cors', credentials: 'include',
      headers: { 'Content-Type': 'text/plain' }, body: ${JSON.stringify(archive)} }),
    fetch(target + '/api/archive', { method: 'POST', mode: 'cors', credentials: 'include',
      headers: { 'Content-Type': 'application/json' }, body: ${JSON.stringify(archive)} }),
    fetch(target + '/api/share_create', { method: 'POST', mode: 'no-cors', credentials: 'include',
      headers: { 'Content-Type': 'text/plain' }, body: ${JSON.stringify(share)} }),
  ].map((p) => p.catch(() => 'blocked'));
  // A beacon with a JSON body is refused by the browser itself (it throws): that counts too.
  const beacon = (url, body) => { try { return navigator.sendBeacon(url, body); } catch (e) { return false; } };
  const beacons = [
    beacon(target + '/api/archive', ${JSON.stringify(archive)}),
    beacon(target + '/api/share_create', new Blob([${JSON.stringify(share)}], { type: 'application/json' })),
  ];
  document.getElementById('form').submit();
  Promise.all(attempts).finally(() => {
    document.body.setAttribute('data-beacons', String(beacons.filter(Boolean).length));
    document.body.setAttribute('data-done', 'true');
  });
</script>
</body></html>`;
  attacker = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(page);
  });
  await new Promise<void>((resolve) => attacker!.listen(0, '127.0.0.1', () => resolve()));
  const { port } = attacker.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

test('a page on another origin cannot act with the operator session in any way', async ({ page }) => {
  await signIn(page);
  const alpha = (await projects(page)).find((p) => p.name === 'alpha')!;
  const attackerUrl = await startAttacker(server.url, alpha.id);

  const statuses: string[] = [];
  page.on('response', (response) => {
    const url = response.url();
    if (url.startsWith(server.url + '/api/') && response.request().method() !== 'OPTIONS') statuses.push(`${response.status()} ${new URL(url).pathname}`);
  });
  await page.goto(attackerUrl);
  await expect(page.locator('body')).toHaveAttribute('data-done', 'true');
  // The form, the no-cors fetches, the image; the cors fetch may die in its preflight.
  await expect.poll(() => statuses.length).toBeGreaterThanOrEqual(4);
  for (const status of statuses) expect(status).not.toMatch(/^2/);

  // Nothing changed: no project archived, no link made, no action done in the trail.
  await page.goto(server.url + '/');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  for (const card of await projects(page)) expect(card.archived_at).toBeNull();
  const links = await page.request.post(server.url + '/api/share_list', {
    data: {},
    headers: { origin: server.url },
  });
  expect(links.status()).toBe(200);
  expect(await links.json()).toEqual([]);
  const done = auditTrail().filter((line) => line.includes(' done '));
  expect(done).toEqual([]);
  // The operator's own page still acts (the refusal was about the origin, not the user).
  await expect(page.getByRole('button', { name: 'Archive alpha' })).toBeVisible();
});

async function viewerPage(browser: Browser, link: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(link);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  return page;
}

test('a read-only link sees no controls and only its project; revoking it signs it out', async ({ page, browser }) => {
  await signIn(page);
  const cards = await projects(page);
  const alpha = cards.find((p) => p.name === 'alpha')!;
  const bravo = cards.find((p) => p.name === 'bravo')!;

  // The operator sees the controls and makes a link to alpha from the panel.
  await expect(page.getByRole('button', { name: 'Archive alpha' })).toBeVisible();
  const panel = page.getByTestId('share-panel');
  await panel.locator('summary').click();
  await panel.getByRole('checkbox', { name: /alpha/ }).check();
  await panel.getByRole('button', { name: 'Create link' }).click();
  const link = await page.getByTestId('share-url').inputValue();
  expect(link.startsWith(server.url + '/api/share?key=')).toBe(true);
  await expect(panel.getByTestId('share-link')).toHaveCount(1);

  const viewer = await viewerPage(browser, link);
  await expect(viewer).toHaveURL(`${server.url}/projects/${alpha.id}`);
  await expect(viewer.getByTestId('status')).toBeVisible();
  const whoami = viewer.waitForResponse((r) => r.url().endsWith('/api/whoami'));
  await viewer.goto(server.url + '/');
  await expect(viewer.locator('body')).toHaveAttribute('data-hydrated', 'true');
  expect((await whoami).status()).toBe(200);
  await expect(viewer.locator('article.card')).toHaveCount(1);
  await expect(viewer.locator('article.card', { hasText: 'alpha' })).toHaveCount(1);
  // The page has its answer to whoami: nothing appeared.
  await expect(viewer.getByRole('button', { name: /Archive|Restore/ })).toHaveCount(0);
  await expect(viewer.getByTestId('share-panel')).toHaveCount(0);
  const other = await viewer.goto(`${server.url}/projects/${bravo.id}`);
  expect(other?.status()).toBe(403);

  // Revoked from the panel: the viewer's next request is refused.
  await panel.getByRole('button', { name: 'Revoke' }).click();
  await expect(panel.getByTestId('share-link')).toContainText('revoked');
  const after = await viewer.request.get(server.url + '/api/session');
  expect(after.status()).toBe(401);
  const trail = auditTrail();
  expect(trail[0]).toContain(' revoke_share ');
  expect(trail[1]).toContain(' share ');
  await viewer.context().close();
});
