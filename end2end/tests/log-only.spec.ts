import { expect, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, Server, tempDir } from './server';

// A loop that writes only its log (no iterations.jsonl): its iterations come from the log's
// headers and are marked as such, while a project with rows shows no mark.
test('iterations of a log-only project are listed and marked as coming from the log', async ({ page }) => {
  const root = tempDir('loopwatch-e2e-log-only-');
  const project = makeProject(root, 'oldloop', '# Plan\n- [ ] 1.1: something\n');
  fs.writeFileSync(
    path.join(project, '.ralph', 'ralph.log'),
    [
      '[10:00:00] === Iteration 1/5 ===',
      'working',
      'tokens used',
      '1,200',
      '[10:00:40] \u2705 Tests passed',
      '[10:01:00] === Iteration 2/5 ===',
      'still working',
      '',
    ].join('\n'),
  );
  const server = await Server.start(root);
  try {
    await page.goto(server.loginUrl);
    await expect(page).toHaveURL(server.url + '/');
    const href = await page.locator('article.card h2 a', { hasText: 'oldloop' }).getAttribute('href');
    await page.goto(server.url + href + '/iterations');
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
    // Iteration 1 ended when iteration 2 began; iteration 2 is still running, so not listed.
    const rows = page.getByTestId('iteration-row');
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText('success');
    await expect(rows.first().getByTestId('from-log')).toHaveText('from the log');
    // Its log opens like any other iteration's.
    await rows.first().getByRole('button').first().click();
    await expect(page.getByTestId('iteration-log')).toContainText('working');

    // When the loop writes the row, it wins and the mark goes (after a reload of the page).
    fs.writeFileSync(
      path.join(project, '.ralph', 'iterations.jsonl'),
      JSON.stringify({ iteration: 1, max: 5, status: 'success', tokens: 1.2, commit: 'feed123' }) + '\n',
    );
    await expect(async () => {
      await page.reload();
      await expect(page.getByTestId('iteration-row').first()).toContainText('feed123', { timeout: 1_000 });
    }).toPass({ timeout: 15_000 });
    await expect(page.getByTestId('from-log')).toHaveCount(0);
  } finally {
    await server.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
