import { expect, Page, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { SCREENSHOTS, Server, tempDir } from './server';

const FIXTURES = path.resolve(__dirname, '../../tests/fixtures/buildrunner');
const FIRST = 'checkpoint_20251117_213005_705272.json';
const NEXT = 'checkpoint_20251117_230000_000001';

let root: string;
let build: string;
let server: Server;

const br = (...parts: string[]) => path.join(build, '.buildrunner', ...parts);

function checkpoint(id: string, phase: string, status: string): string {
  return JSON.stringify({
    id,
    timestamp: '2025-11-17T23:00:00.000001',
    phase,
    tasks_completed: ['wire the cart'],
    files_created: ['api/cart.py'],
    status,
    metadata: { name: phase, description: 'cart wired', created_by: 'cli', timestamp: '2025-11-17T23:00:00' },
  });
}

test.beforeEach(async () => {
  root = tempDir('loopwatch-e2e-build-');
  build = path.join(root, 'shop');
  fs.mkdirSync(br('checkpoints'), { recursive: true });
  fs.mkdirSync(br('context'), { recursive: true });
  fs.copyFileSync(path.join(FIXTURES, 'real', FIRST), br('checkpoints', FIRST));
  fs.copyFileSync(path.join(FIXTURES, 'seed', 'features.json'), br('features.json'));
  fs.writeFileSync(
    br('context', 'test-results.md'),
    '# Test results\n\n<script>alert(1)</script>\n\n## Output: pytest\n**Timestamp:** 2025-11-17 21:31:00\n\n```\n12 passed\n```\n',
  );
  fs.writeFileSync(br('build.log'), 'started\n');
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

async function screenshot(page: Page, name: string) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The build project's page address, from its dashboard card. */
async function buildHref(page: Page): Promise<string> {
  await page.goto(server.url + '/');
  await hydrated(page);
  const card = page.locator('article.card', { hasText: 'shop' });
  await expect(card.getByTestId('kind')).toHaveText('BuildRunner');
  await expect(card.getByTestId('build-checkpoint')).toContainText('build_3a_batch_2_complete');
  await expect(card.getByTestId('build-features')).toContainText('1 / 4 features');
  const href = await card.locator('h2 a').getAttribute('href');
  expect(href).toMatch(/^\/projects\/shop-[0-9a-f]{8}$/);
  return href! + '/build';
}

test('the build page is rendered on the server with its data', async ({ page }) => {
  await signIn(page);
  const href = await buildHref(page);
  const html = await (await page.request.get(server.url + href)).text();
  expect(html).toContain('build_3a_batch_2_complete'); // the checkpoint
  expect(html).toContain('Checkout'); // a feature of features.json
  expect(html).toContain('data-testid="build-tile-completion"');
  expect(html).toContain('Output: pytest'); // an appended block
  expect(html).toContain('12 passed');
  // Raw HTML in a context file is text, never markup.
  expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(html).not.toContain('<script>alert(1)</script>');

  await page.goto(server.url + href);
  await hydrated(page);
  await expect(page.getByRole('link', { name: 'Build', exact: true })).toHaveAttribute('aria-current', 'page');
  await expect(page.getByTestId('checkpoint')).toHaveCount(1);
  await expect(page.getByTestId('feature')).toHaveCount(4);
  await screenshot(page, 'build-page');
});

test('a new checkpoint, a rollback, a feature change and output appear live', async ({ page }) => {
  await signIn(page);
  const href = await buildHref(page);
  await page.goto(server.url + href);
  await hydrated(page);
  await expect(page.getByTestId('checkpoint')).toHaveCount(1);

  // The page notes when the new checkpoint appears, by the same clock the test reads.
  await page.evaluate((id) => {
    const w = window as unknown as { seenAt?: number };
    const observer = new MutationObserver(() => {
      if (w.seenAt === undefined && document.querySelector(`[data-checkpoint="${id}"]`)) {
        w.seenAt = Date.now();
        observer.disconnect();
      }
    });
    observer.observe(document.body, { childList: true, subtree: true });
  }, NEXT);
  const written = Date.now();
  fs.writeFileSync(br('checkpoints', `${NEXT}.json`), checkpoint(NEXT, 'cart_wired', 'created'));
  const item = page.locator(`[data-checkpoint="${NEXT}"]`);
  await expect(item).toBeVisible();
  const seenAt = await page.evaluate(() => (window as unknown as { seenAt?: number }).seenAt);
  console.log(`checkpoint write -> browser: ${seenAt! - written} ms`);
  await expect(page.getByTestId('build-tile-phase')).toHaveText('cart_wired');

  // A rollback: the target active, the newer one rolled back, shown as such.
  const first = JSON.parse(fs.readFileSync(br('checkpoints', FIRST), 'utf8'));
  first.status = 'active';
  fs.writeFileSync(br('checkpoints', FIRST), JSON.stringify(first));
  fs.writeFileSync(br('checkpoints', `${NEXT}.json`), checkpoint(NEXT, 'cart_wired', 'rolled_back'));
  await expect(item.getByTestId('checkpoint-state')).toHaveText('rolled back');
  await expect(page.getByTestId('build-tile-phase')).toHaveText('build_3a_batch_2_complete');

  // A feature completes.
  const registry = JSON.parse(fs.readFileSync(br('features.json'), 'utf8'));
  const feature = registry.features.find((f: { id: string }) => f.id === 'feat-002');
  feature.status = 'complete';
  feature.progress = 100;
  fs.writeFileSync(br('features.json'), JSON.stringify(registry, null, 2));
  await expect(page.locator('[data-feature="feat-002"]').getByTestId('feature-status')).toHaveText('completed');
  await expect(page.getByTestId('build-tile-features')).toHaveText('2 / 4');

  // Output appended to the build log reaches the terminal pane.
  fs.appendFileSync(br('build.log'), 'compiling cart\n');
  await expect(page.getByTestId('terminal')).toContainText('compiling cart');
  await screenshot(page, 'build-page-live');
});
