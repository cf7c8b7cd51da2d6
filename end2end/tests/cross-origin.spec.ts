import { expect, Page, test } from '@playwright/test';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { makeProject, Server, tempDir } from './server';

// Another server on the same host (another port) that the signed-in user visits: same site
// for cookies (ports do not count), another origin. Its page auto-submits a form and a
// `no-cors` fetch to loopwatch's archive action and tries to frame the dashboard.

const PLAN = '## Phase 1: Setup\n- [ ] 1.1: first task\n';

let root: string;
let server: Server;
let attacker: http.Server | undefined;

test.beforeEach(async () => {
  root = tempDir('loopwatch-e2e-');
  makeProject(root, 'alpha', PLAN);
  server = await Server.start(root);
});

test.afterEach(async () => {
  if (attacker) await new Promise<void>((resolve) => attacker!.close(() => resolve()));
  attacker = undefined;
  await server.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

/** The attacker's page, served on another port of 127.0.0.1; resolves to its URL. */
async function startAttacker(target: string, projectId: string): Promise<string> {
  const body = JSON.stringify({ project: projectId, archived: true });
  const page = `<!DOCTYPE html>
<html><head><title>attacker</title></head><body>
<form id="csrf" method="POST" action="${target}/api/archive" target="sink"
      enctype="application/x-www-form-urlencoded">
  <input name="project" value="${projectId}"><input name="archived" value="true">
</form>
<iframe name="sink"></iframe>
<iframe id="framed" src="${target}/"></iframe>
<script>
  fetch(${JSON.stringify(target + '/api/archive')}, {
    method: 'POST',
    mode: 'no-cors',
    credentials: 'include',
    headers: { 'Content-Type': 'text/plain' },
    body: ${JSON.stringify(body)},
  }).finally(() => document.body.setAttribute('data-fetch-done', 'true'));
  document.getElementById('csrf').submit();
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

/** The project list as the server's own page would ask for it (JSON, same Origin). */
async function projects(page: Page): Promise<{ id: string; archived_at: string | null }[]> {
  const response = await page.request.post(server.url + '/api/projects', {
    data: {},
    headers: { origin: server.url },
  });
  expect(response.status()).toBe(200);
  return (await response.json()).projects;
}

test('a page on another port cannot archive a project or frame the dashboard', async ({ page }) => {
  // Signed in: the browser holds the session cookie.
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  const [project] = await projects(page);
  expect(project.archived_at).toBeNull();

  const attackerUrl = await startAttacker(server.url, project.id);
  expect(new URL(attackerUrl).port).not.toBe(new URL(server.url).port);

  // Every archive attempt reaches loopwatch (Playwright sees the real status of opaque
  // responses) and is refused.
  const archiveStatuses: number[] = [];
  page.on('response', (response) => {
    if (response.url() === server.url + '/api/archive') archiveStatuses.push(response.status());
  });
  const framedResponse = page.waitForResponse(
    (response) => response.url() === server.url + '/' && response.frame() !== page.mainFrame(),
  );

  await page.goto(attackerUrl);
  await expect(page.locator('body')).toHaveAttribute('data-fetch-done', 'true');
  await expect.poll(() => archiveStatuses.length).toBe(2);
  expect(archiveStatuses).toEqual([403, 403]);
  expect((await projects(page))[0].archived_at).toBeNull();

  // The frame: loopwatch answers with anti-framing headers and the browser shows its own
  // error page instead of the dashboard.
  const framed = await framedResponse;
  const headers = framed.headers();
  expect(headers['x-frame-options']).toBe('DENY');
  expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
  const frame = framed.frame();
  await expect.poll(() => frame.url()).not.toBe('about:blank');
  expect(frame.url().startsWith(server.url)).toBe(false);
  await expect(page.frameLocator('#framed').locator('article.card')).toHaveCount(0);

  // Back on loopwatch's own page the same browser still can archive: the gate refuses the
  // other origin, not the user.
  await page.goto(server.url + '/');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  const card = page.locator('article.card', { hasText: 'alpha' });
  await card.getByRole('button', { name: 'Archive' }).click();
  await expect(card).toHaveCount(0);
  await expect.poll(async () => (await projects(page))[0].archived_at).not.toBeNull();
});
