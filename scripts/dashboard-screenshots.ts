// The README's dashboard screenshots (docs/dashboard-*.png): serves a runs folder and photographs the page in Debian's
// chromium. Run: node --import tsx scripts/dashboard-screenshots.ts RUNS_DIR [OUT_DIR=docs] [EMBEDDING_SET=run|embed-test]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startDashboard } from '../src/cli/dashboard.js';

const [root, out = 'docs', embeddingSet] = process.argv.slice(2);
if (root === undefined) throw new Error('usage: dashboard-screenshots.ts RUNS_DIR [OUT_DIR]');
const dash = await startDashboard({ root, port: 0, host: '127.0.0.1', pollMs: 500 });
const userData = mkdtempSync(join(tmpdir(), 'selfsup-shots-'));
const browser = await chromium.launchPersistentContext(userData, {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(dash.url);
  await page.waitForSelector('body[data-ready]');
  // the sticky header would sit in the middle of element shots taken after scrolling
  await page.addStyleTag({ content: 'header { position: static !important; }' });
  const runs = (await page.locator('#runs').boundingBox())!;
  const config = (await page.locator('#config').boundingBox())!;
  await page.screenshot({ path: join(out, 'dashboard-runs.png'), clip: { x: 0, y: runs.y - 8, width: 1280, height: config.y + config.height - runs.y + 16 } });
  await page.locator('#curves').screenshot({ path: join(out, 'dashboard-curves.png') });
  await page.locator('#pictures').screenshot({ path: join(out, 'dashboard-pictures.png') });
  if (embeddingSet !== undefined) {
    await page.selectOption('#embed-select', embeddingSet);
    await page.waitForFunction((key) => (document.getElementById('embed-select') as HTMLSelectElement).value === key, embeddingSet);
    await page.waitForTimeout(500);
  }
  await page.selectOption('#map-kind', 'tsne').catch(() => undefined);
  await page.fill('#nn-k', '8');
  await page.locator('#embed-map').scrollIntoViewIfNeeded();
  const box = (await page.locator('#embed-map').boundingBox())!;
  // hover and click the first point the pointer finds, sweeping the map
  for (let y = 40; y < box.height; y += 6) {
    let found = false;
    for (let x = 40; x < box.width; x += 6) {
      await page.mouse.move(box.x + x, box.y + y);
      if (await page.locator('#tooltip').isVisible()) { found = true; break; }
    }
    if (found) break;
  }
  const pos = await page.evaluate(() => [window.scrollX, window.scrollY]);
  await page.mouse.down();
  await page.mouse.up();
  await page.waitForSelector('#nn-result .nn-item');
  await page.evaluate(([x, y]) => window.scrollTo(x!, y!), pos);
  await page.locator('#embeddings').screenshot({ path: join(out, 'dashboard-embeddings.png') });
} finally {
  await browser.close();
  await dash.close();
  rmSync(userData, { recursive: true, force: true });
}
