import { expect, Page, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { SCREENSHOTS, Server, tempDir } from './server';

// An operator runs a loop from the page: the project's own ralph.sh is the fake loop of the
// Rust tests (pid file, header lines, JSONL rows, honours pause and inject.md). A second tab
// of the same browser watches; every change must show there too. The time from each click to
// the change in the second tab is measured and written to test-results/operate-timings.json.

const FAKE_LOOP = path.resolve(__dirname, '../../tests/fixtures/loop/ralph.sh');

let root: string;
let project: string;
let server: Server;

test.beforeEach(async () => {
  root = tempDir('loopwatch-operate-');
  project = path.join(root, 'alpha');
  fs.mkdirSync(path.join(project, '.ralph'), { recursive: true });
  fs.writeFileSync(path.join(project, 'IMPLEMENTATION_PLAN.md'), '- [ ] 1: first task\n');
  fs.writeFileSync(path.join(project, 'PROMPT.md'), 'Do the next task.\n');
  // Iterations long enough to see "pausing" turn into "paused" at the boundary.
  fs.writeFileSync(path.join(project, '.ralph', 'fake-step'), '1.5');
  fs.copyFileSync(FAKE_LOOP, path.join(project, 'ralph.sh'));
  fs.chmodSync(path.join(project, 'ralph.sh'), 0o755);
  server = await Server.start(root);
});

test.afterEach(async () => {
  // A loop left running by a failed test must not outlive it.
  const pidFile = path.join(project, '.ralph', 'ralph.pid');
  if (fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
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

test('an operator starts, pauses, resumes, injects, edits and stops a loop; a second tab sees it all', async ({
  page,
  context,
}) => {
  await page.goto(server.loginUrl);
  await expect(page).toHaveURL(server.url + '/');
  const second = await context.newPage();
  await openProject(page);
  await openProject(second);
  const timings: Record<string, number> = {};
  /** Runs `act` (a click) and waits for `seen` in the second tab; records the time between. */
  async function measured(name: string, act: () => Promise<void>, seen: () => Promise<void>) {
    const clicked = Date.now();
    await act();
    await seen();
    timings[name] = Date.now() - clicked;
  }

  await expect(second.getByTestId('status')).toHaveText('stopped');
  await page.locator('input[name="max_iterations"]').fill('0');
  await measured(
    'start -> running',
    () => page.getByRole('button', { name: 'Start' }).click(),
    () => expect(second.getByTestId('status')).toHaveText('running'),
  );
  await expect(page.getByTestId('status')).toHaveText('running');
  await expect(second.getByTestId('iteration')).toContainText('1');

  await measured(
    'pause -> pausing',
    () => page.getByRole('button', { name: 'Pause' }).click(),
    () => expect(second.getByTestId('status')).toHaveText(/^paus(ing|ed)$/),
  );
  // The loop honours the pause at the iteration's end.
  await expect(second.getByTestId('status')).toHaveText('paused');
  await expect(page.getByTestId('status')).toHaveText('paused');
  expect(fs.existsSync(path.join(project, '.ralph', 'pause'))).toBe(true);

  await measured(
    'resume -> running',
    () => page.getByRole('button', { name: 'Resume' }).click(),
    () => expect(second.getByTestId('status')).toHaveText('running'),
  );

  await page.locator('textarea[name="inject"]').fill('Prefer small commits.');
  await measured(
    'inject -> pending',
    () => page.getByRole('button', { name: 'Inject' }).click(),
    () => expect(second.getByTestId('injection')).toContainText(/Pending|Consumed/),
  );
  await expect(second.getByTestId('injection')).toContainText(/Consumed by the loop in iteration \d+/);
  await expect(page.getByTestId('injection')).toContainText('Consumed');
  expect(fs.readFileSync(path.join(project, '.ralph', 'ralph.log'), 'utf8')).toContain('Prefer small commits.');

  // Edit PROMPT.md on the Files tab; the second tab's editor (clean) follows.
  await openProject(page, '/files');
  await openProject(second, '/files');
  const editor = page.getByTestId('editor');
  await expect(editor).toHaveValue('Do the next task.\n');
  await expect(second.getByTestId('editor')).toHaveValue('Do the next task.\n');
  await editor.fill('Do the next task, with tests.\n');
  await measured(
    'edit PROMPT.md -> second editor',
    () => page.getByRole('button', { name: 'Save', exact: true }).click(),
    () => expect(second.getByTestId('editor')).toHaveValue('Do the next task, with tests.\n'),
  );
  await expect(page.getByTestId('saved')).toBeVisible();
  expect(fs.readFileSync(path.join(project, 'PROMPT.md'), 'utf8')).toBe('Do the next task, with tests.\n');

  // A stale save (the agent wrote meanwhile) is refused and shows the file as it is.
  fs.writeFileSync(path.join(project, 'PROMPT.md'), "The agent's own words.\n");
  await editor.fill('Mine.\n');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await expect(page.getByTestId('conflict')).toContainText("The agent's own words.");
  expect(fs.readFileSync(path.join(project, 'PROMPT.md'), 'utf8')).toBe("The agent's own words.\n");

  // Stop asks first.
  await page.getByRole('button', { name: 'Stop\u2026' }).click();
  await expect(page.getByRole('group', { name: 'Confirm stop' })).toBeVisible();
  await measured(
    'stop -> stopped',
    () => page.getByRole('button', { name: 'Yes, stop it' }).click(),
    () => expect(second.getByTestId('status')).toHaveText('stopped'),
  );
  await expect(page.getByTestId('stop-result')).toContainText('SIGTERM to group');
  await expect(second.getByTestId('audit')).toContainText('stop');
  await expect(second.getByTestId('audit')).toContainText('inject');
  await expect(second.getByTestId('audit')).toContainText('edit');

  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await second.screenshot({ path: path.join(SCREENSHOTS, 'operate-second-tab.png'), fullPage: true });
  const out = path.resolve(__dirname, '../test-results/operate-timings.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(timings, null, 2) + '\n');
  console.log('click -> visible in the second tab (ms):', JSON.stringify(timings));
});
