// `selfsup dashboard`: the server's refusals (path traversal, other hosts, a taken port) over plain HTTP, and the page
// in Debian's chromium (headless, through playwright-core; never a downloaded browser) on three run folders made by
// a real tiny MAE pretraining and `embed`: one finished, one still training (its log grows during the test), one
// damaged (a cut log line, missing checkpoint weights, an unreadable reconstruction).
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDashboard, type Dashboard } from '../../src/cli/dashboard.js';
import { runEmbed } from '../../src/cli/embed.js';
import { pretrain } from '../../src/train/pretrain.js';
import { readLogChunk, summarizeRun } from '../../src/io/runs.js';
import { makeImageFolder, tinyConfig } from '../eval/tiny-run.js';

const CHROMIUM = '/usr/bin/chromium';
const tmp = mkdtempSync(join(tmpdir(), 'selfsup-dash-'));
const root = join(tmp, 'runs');
let dash: Dashboard;
/** the live run's log lines held back until the page is open */
let liveTail = '';

before(async () => {
  const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 6, size: 16 });
  const base = tinyConfig('mae', data, join(root, 'done'));
  await pretrain({ ...base, epochs: 2, batchSize: 6, logEvery: 1, knn: { ...base.knn, disabled: false, k: 3, every: 1 } }, { callbacks: { log: () => {} } });
  for (const split of ['test', 'train'] as const) {
    await runEmbed({ checkpoint: join(root, 'done'), split, out: join(root, 'done', `embed-${split}`), limit: null, batchSize: 6, workers: 0 });
  }
  // live: the same run as it was after epoch 1; the rest of its log arrives while the page is open
  cpSync(join(root, 'done'), join(root, 'live'), { recursive: true });
  const lines = readFileSync(join(root, 'done', 'log.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
  const firstEpoch = lines.findIndex((l) => l.includes('"event":"epoch"'));
  writeFileSync(join(root, 'live', 'log.jsonl'), `${lines.slice(0, firstEpoch + 1).join('\n')}\n`);
  liveTail = `${lines.slice(firstEpoch + 1).join('\n')}\n`;
  unlinkSync(join(root, 'live', 'recon', 'epoch-002.png'));
  writeFileSync(join(root, 'live', 'config.json'), readFileSync(join(root, 'done', 'config.json'), 'utf8').replace('"seed": 3', '"seed": 4'));
  // broken: a step line cut in half mid-file, a half-written last line, no weights, a damaged PNG
  cpSync(join(root, 'done'), join(root, 'broken'), { recursive: true });
  const cut = [...lines];
  cut[2] = cut[2]!.slice(0, 20);
  writeFileSync(join(root, 'broken', 'log.jsonl'), `${cut.join('\n')}\n{"event":"st`);
  const ckpt = JSON.parse(readFileSync(join(root, 'broken', 'checkpoint.json'), 'utf8')) as { weights: string };
  unlinkSync(join(root, 'broken', ckpt.weights));
  writeFileSync(join(root, 'broken', 'recon', 'epoch-001.png'), readFileSync(join(root, 'broken', 'recon', 'epoch-001.png')).subarray(0, 100));
  dash = await startDashboard({ root, port: 0, host: '127.0.0.1', pollMs: 150 });
});

after(async () => {
  await dash?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    // raw paths: node's http client sends them as given (no dot-segment normalisation)
    const req = request({ host: '127.0.0.1', port: dash.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

test('the server listens on loopback and serves nothing outside the runs folder and its page', async () => {
  const addr = dash.server.address();
  assert.ok(typeof addr === 'object' && addr !== null && addr.address === '127.0.0.1');
  assert.equal((await get('/')).status, 200);
  assert.match((await get('/static/app.js')).body, /selfsup dashboard page/);
  for (const path of ['/static/../../package.json', '/static/%2e%2e/%2e%2e/package.json', '/static/..%2f..%2fpackage.json', '/..%5c..%5cpackage.json',
    `/api/file?run=done&path=${encodeURIComponent('../live/augs.png')}`, `/api/file?run=done&path=${encodeURIComponent(join(root, 'live', 'augs.png'))}`,
    `/api/file?run=done&path=${encodeURIComponent('../../data/train/a/0.png')}`, '/api/file?run=done&path=config.json']) {
    const r = await get(path);
    assert.ok(r.status === 403 || r.status === 404, `${path}: ${r.status} ${r.body}`);
    assert.match(r.body, /^\{"error":"[^"]*"\}$/, path);
  }
  assert.equal((await get(`/api/file?run=${encodeURIComponent('..')}&path=augs.png`)).status, 404, 'a run id is looked up, never resolved');
  assert.equal((await get('/api/file?run=done&path=augs.png')).status, 200);
  assert.deepEqual(await get('/api/file?run=broken&path=recon/epoch-001.png'), { status: 422, body: '{"error":"recon/epoch-001.png is not a readable PNG"}' });
  // a page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) is refused
  assert.equal((await get('/api/runs', { Host: 'attacker.example:80' })).status, 403);
  // a taken port is a clear error
  await assert.rejects(startDashboard({ root, port: dash.port, host: '127.0.0.1' }), new RegExp(`\\[dashboard\\] port ${dash.port} on 127\\.0\\.0\\.1 is in use; pick another with --port`));
  await assert.rejects(startDashboard({ root: join(tmp, 'nope'), port: 0, host: '127.0.0.1' }), /\[dashboard\] .*nope: no such folder/);
});

test('damaged run folders are read as far as they go, and what is missing is named', () => {
  const log = readLogChunk(join(root, 'broken', 'log.jsonl'));
  assert.equal(log.damaged.length, 1);
  assert.equal(log.pendingBytes, '{"event":"st'.length);
  const whole = readLogChunk(join(root, 'done', 'log.jsonl'));
  assert.equal(log.records.length, whole.records.length - 1);
  // continuing from the offset returns only what was appended since
  assert.deepEqual(readLogChunk(join(root, 'done', 'log.jsonl'), whole.next).records, []);
  const s = summarizeRun(root, join(root, 'broken'));
  assert.equal(s.checkpoint, null);
  assert.ok(s.problems.some((p) => /checkpoint weights checkpoint-step\d+\.safetensors are missing/.test(p)), s.problems.join('; '));
  assert.ok(s.problems.includes('recon/epoch-001.png is unreadable'));
  assert.deepEqual(s.pictures.recon.map((r) => r.state), ['ok', 'unreadable', 'ok']);
});

const skip = !existsSync(CHROMIUM) && process.env.CI === undefined ? `no ${CHROMIUM} (apt-get install chromium)` : false;

test('in chromium: curves with every logged point, a new epoch without reload, the reconstruction slider, neighbours, damage marked', { skip, timeout: 120_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const userData = mkdtempSync(join(tmp, 'chromium-'));
  const browser = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(dash.url);
    await page.waitForSelector('body[data-ready]');
    const done = readLogChunk(join(root, 'done', 'log.jsonl')).records;
    const points = (chart: string, run: string): Promise<number> =>
      page.locator(`svg[data-chart="${chart}"] path.series[data-run="${run}"]`).getAttribute('data-points').then(Number);
    // every logged point: step curves and epoch curves (kNN has the before-training point too)
    assert.equal(await points('loss', 'done'), done.filter((r) => r.event === 'step').length);
    assert.equal(await points('epoch-loss', 'done'), 2);
    assert.equal(await points('knn-top1', 'done'), 3);
    assert.equal(await page.locator('svg[data-chart="knn-top1"] circle.pt[data-run="done"]').count(), 3);
    assert.equal(await points('loss', 'broken'), done.filter((r) => r.event === 'step').length - 1);
    // the config diff shows only the key that differs (the live run's seed)
    assert.deepEqual(await page.locator('#config-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key'))), ['seed']);
    // damage is marked, and the rest still renders
    const brokenRow = page.locator('#run-table tr[data-run="broken"]');
    const problems = await brokenRow.locator('li.problem').allTextContents();
    assert.ok(problems.some((p) => /checkpoint weights .* are missing/.test(p)), problems.join('; '));
    assert.ok(problems.includes('recon/epoch-001.png is unreadable'));
    assert.ok(problems.includes('log.jsonl: 1 damaged line(s) skipped'));
    assert.ok(problems.some((p) => /ends in an incomplete line/.test(p)));
    assert.equal(await brokenRow.locator('td.problem').textContent(), 'missing');
    // a new epoch of the live run appears without a reload
    assert.equal(await points('epoch-loss', 'live'), 1);
    appendFileSync(join(root, 'live', 'log.jsonl'), liveTail);
    cpSync(join(root, 'done', 'recon', 'epoch-002.png'), join(root, 'live', 'recon', 'epoch-002.png'));
    await page.waitForFunction(() => document.querySelector('svg[data-chart="epoch-loss"] path.series[data-run="live"]')?.getAttribute('data-points') === '2', null, { timeout: 10_000 });
    assert.equal(await points('loss', 'live'), await points('loss', 'done'));
    // reconstructions: the slider follows the newest epoch and moving it changes the image
    await page.selectOption('#picture-run', 'live');
    await page.waitForFunction(() => (document.getElementById('recon-slider') as HTMLInputElement).max === '2', null, { timeout: 10_000 });
    const src = (): Promise<string | null> => page.locator('#recon img').getAttribute('src');
    assert.match((await src())!, /epoch-002\.png/);
    await page.locator('#recon-slider').fill('0');
    assert.match((await src())!, /epoch-000\.png/);
    assert.equal(await page.locator('#recon-epoch').textContent(), '0 (1 of 3)');
    assert.ok(await page.locator('#recon img').evaluate((img: HTMLImageElement) => img.decode().then(() => img.naturalWidth > 0)));
    // the broken run's damaged reconstruction is marked in place
    await page.selectOption('#picture-run', 'broken');
    await page.locator('#recon-slider').fill('1');
    assert.equal(await page.locator('#recon .missing').textContent(), 'recon/epoch-001.png is unreadable');
    await page.selectOption('#picture-run', 'done');
    // embeddings: hover shows the image and class; the neighbour view returns k training images
    await page.selectOption('#embed-select', 'done|embed-test');
    await page.waitForFunction(() => (document.getElementById('nn-bank') as HTMLSelectElement).value === 'embed-train');
    // hover point 0: its place on the 560 px canvas from its PCA coordinates (16 px margins, y upwards)
    const pca = await page.evaluate(async () => ((await fetch('/api/embedding?run=done&set=embed-test').then((x) => x.json())) as { pca: number[] }).pca);
    const xs = pca.filter((_, i) => i % 2 === 0);
    const ys = pca.filter((_, i) => i % 2 === 1);
    const at = (v: number, lo: number, hi: number): number => 16 + ((v - lo) / (hi - lo)) * (560 - 32);
    await page.locator('#embed-map').scrollIntoViewIfNeeded();
    const box = (await page.locator('#embed-map').boundingBox())!;
    await page.mouse.move(box.x + 1 + at(xs[0]!, Math.min(...xs), Math.max(...xs)), box.y + 1 + 560 - at(ys[0]!, Math.min(...ys), Math.max(...ys)));
    const shown = await page.locator('#tooltip').isVisible();
    assert.ok(shown, 'hovering a point shows its tooltip');
    assert.match((await page.locator('#tooltip .tip-class').textContent())!, /^[abc]$/);
    assert.match((await page.locator('#tooltip .thumb').getAttribute('style'))!, /sprite\.png/);
    await page.fill('#nn-k', '5');
    await page.fill('#nn-query', '4');
    await page.click('#nn-go');
    await page.waitForSelector('#nn-result .nn-item');
    assert.equal(await page.locator('#nn-result .nn-item').count(), 5);
    assert.match((await page.locator('#nn-result .nn-query').textContent())!, /query #4/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
