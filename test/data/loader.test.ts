// DataLoader: reproducible batches across worker counts, shuffling, drop-last, multi-view output, and the bad-input policy
// (truncated JPEG, text named .jpg, unreadable file, 1x1 and oversized images) with worker threads.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cacheDecoded, imageFolder } from '../../src/data/datasets.js';
import { DataLoader, type Batch, type DataLoaderOptions } from '../../src/data/loader.js';
import { preset } from '../../src/data/presets.js';
import { FIXTURE_DIR } from './fixtures.js';
import { encodePng } from './png.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-loader-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A class folder of small PNGs whose pixel values encode their class, so labels can be checked from pixels. */
function makeFolder(name: string, perClass: number[]): string {
  const root = join(tmp, name);
  perClass.forEach((n, cls) => {
    mkdirSync(join(root, `class${cls}`), { recursive: true });
    for (let i = 0; i < n; i++) {
      const w = 6 + (i % 3), h = 5 + (i % 2);
      writeFileSync(join(root, `class${cls}`, `${String(i).padStart(3, '0')}.png`), encodePng(w, h, 3, 8, new Array(w * h * 3).fill(cls * 40 + 10)));
    }
  });
  return root;
}

async function collect(loader: DataLoader, epoch = 0): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

const plain = { views: [{ name: 'Compose' as const, transforms: [{ name: 'Resize' as const, size: [4, 4] as const }, { name: 'ToTensor' as const }] }] };

test('same seed gives the same batches with 0, 1 or 2 workers; labels follow the samples', async () => {
  const ds = imageFolder(makeFolder('basic', [7, 5, 6]));
  const runs: Batch[][] = [];
  for (const numWorkers of [0, 1, 2]) {
    const loader = new DataLoader(ds, { batchSize: 4, transform: preset('moco-v2-cifar', { size: 8 }), seed: 3, numWorkers });
    runs.push(await collect(loader, 1));
    await loader.close();
  }
  const [a, b, c] = runs as [Batch[], Batch[], Batch[]];
  assert.equal(a.length, 5); // 18 samples, batch 4, no drop-last
  assert.deepEqual(a.map((x) => x.shape), [[4, 3, 8, 8], [4, 3, 8, 8], [4, 3, 8, 8], [4, 3, 8, 8], [2, 3, 8, 8]]);
  for (const other of [b, c]) {
    assert.deepEqual(other.map((x) => Array.from(x.indices)), a.map((x) => Array.from(x.indices)));
    assert.deepEqual(other.map((x) => x.views), a.map((x) => x.views));
    assert.deepEqual(other.map((x) => x.labels), a.map((x) => x.labels));
  }
  const all = a.flatMap((x) => Array.from(x.indices)).sort((p, q) => p - q);
  assert.deepEqual(all, Array.from({ length: 18 }, (_, i) => i), 'an epoch visits every sample once');
  for (const x of a) {
    assert.equal(x.views.length, 2);
    assert.equal(x.images, x.views[0]);
    assert.notDeepEqual(x.views[0], x.views[1], 'two independent crops');
    x.indices.forEach((idx, k) => assert.equal(x.labels[k], ds.source.labels[idx]));
  }
});

test('seeded shuffling, drop-last, no shuffle, and epochs differ', async () => {
  const ds = imageFolder(makeFolder('order', [5, 5]));
  const loader = new DataLoader(ds, { batchSize: 3, transform: plain, seed: 1, numWorkers: 0, dropLast: true });
  assert.equal(loader.length, 3);
  const e0 = await collect(loader, 0);
  const e1 = await collect(loader, 1);
  assert.equal(e0.length, 3);
  assert.ok(e0.every((b) => b.shape[0] === 3));
  assert.notDeepEqual(e0.map((b) => Array.from(b.indices)), e1.map((b) => Array.from(b.indices)));
  const again = new DataLoader(ds, { batchSize: 3, transform: plain, seed: 1, numWorkers: 0, dropLast: true });
  assert.deepEqual((await collect(again, 0)).map((b) => b.indices), e0.map((b) => b.indices));
  const ordered = new DataLoader(ds, { batchSize: 4, transform: plain, shuffle: false, numWorkers: 0 });
  const batches = await collect(ordered);
  assert.deepEqual(batches.map((b) => Array.from(b.indices)), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  // pixel values encode the class: label and image agree
  for (const b of batches) b.labels.forEach((l, k) => assert.ok(Math.abs(b.images[k * 48]! - (l * 40 + 10) / 255) < 1e-6));
});

test('MoCo v3 yields two differently augmented views; MAE one; cached and file datasets agree', async () => {
  const files = imageFolder(makeFolder('views', [4, 4]));
  const cached = await cacheDecoded(files);
  for (const name of ['moco-v3-cifar', 'mae-cifar']) {
    const l1 = new DataLoader(files, { batchSize: 8, transform: preset(name, { size: 8 }), numWorkers: 0, seed: 5 });
    const l2 = new DataLoader(cached, { batchSize: 8, transform: preset(name, { size: 8 }), numWorkers: 0, seed: 5 });
    const [b1] = await collect(l1);
    const [b2] = await collect(l2);
    await l2.close();
    assert.equal(b1!.views.length, name === 'mae-cifar' ? 1 : 2);
    assert.deepEqual(b1!.views, b2!.views);
  }
});

/** A folder with every kind of bad input next to good images of two classes. */
function makeBadFolder(): { root: string; bad: string[] } {
  const root = makeFolder('bad', [6, 6]);
  const jpg = readFileSync(join(FIXTURE_DIR, 'tiny.jpg'));
  const bad = ['class0/truncated.jpg', 'class0/notes.jpg', 'class1/dangling.jpg', 'class1/huge.png'];
  writeFileSync(join(root, bad[0]!), jpg.subarray(0, jpg.length >> 1));
  writeFileSync(join(root, bad[1]!), 'this is a text file\n');
  symlinkSync(join(root, 'missing-target.jpg'), join(root, bad[2]!)); // unreadable: ENOENT at read time (chmod 000 does not stop root)
  writeFileSync(join(root, bad[3]!), encodePng(300, 300, 3, 8, new Array(300 * 300 * 3).fill(0)));
  writeFileSync(join(root, 'class1/one-pixel.png'), encodePng(1, 1, 3, 8, [50, 50, 50])); // valid: upsampled like any image
  mkdirSync(join(root, 'class2-empty'));
  return { root, bad };
}

test("bad input under 'skip': one warning per file naming it, full batches, labels of the samples actually used", async () => {
  const { root, bad } = makeBadFolder();
  const warnings: string[] = [];
  const ds = imageFolder(root, { maxPixels: 50_000, warn: (m) => warnings.push(m) });
  assert.deepEqual(ds.classes, ['class0', 'class1', 'class2-empty']);
  assert.match(warnings[0]!, /class2-empty' has no images; its label 2 is kept/);
  const loader = new DataLoader(ds, { batchSize: 4, transform: preset('moco-v2-cifar', { size: 8 }), numWorkers: 2, seed: 0, warn: (m) => warnings.push(m) });
  for (let epoch = 0; epoch < 2; epoch++) {
    const batches = await collect(loader, epoch);
    assert.equal(batches.length, Math.ceil(ds.length / 4));
    for (const b of batches) {
      for (const [k, idx] of b.indices.entries()) {
        assert.equal(b.labels[k], ds.source.labels[idx], 'label of the substitute sample, never of the bad file');
        const path = ds.source.kind === 'files' ? ds.source.paths[idx]! : '';
        assert.ok(!bad.some((p) => path.endsWith(p)), `bad file ${path} must not be in a batch`);
      }
    }
  }
  await loader.close();
  const loaderWarnings = warnings.slice(1);
  assert.equal(loaderWarnings.length, bad.length, `one warning per bad file over two epochs:\n${loaderWarnings.join('\n')}`);
  for (const p of bad) assert.equal(loaderWarnings.filter((w) => w.includes(p)).length, 1, p);
  assert.ok(loaderWarnings.some((w) => /huge\.png.*pixel limit/.test(w)));
});

test("bad input under 'error': the iterator rejects with the file name, workers do not hang", async () => {
  const root = makeFolder('bad-error', [3]);
  writeFileSync(join(root, 'class0/zz-notes.jpg'), 'text');
  const ds = imageFolder(root);
  const loader = new DataLoader(ds, { batchSize: 2, transform: plain, numWorkers: 1, shuffle: false, badFile: 'error' });
  await assert.rejects(collect(loader), /\[DataLoader\] bad input \(badFile='error'\): \[decodeImage\] .*zz-notes\.jpg/);
  await loader.close();
});

test('a transform failing inside a worker rejects the epoch instead of hanging', async () => {
  const ds = imageFolder(makeFolder('mismatch', [3]));
  const loader = new DataLoader(ds, { batchSize: 3, transform: { views: [{ name: 'ToTensor' }] }, numWorkers: 1, shuffle: false });
  await assert.rejects(collect(loader), /\[DataLoader\] view 0 of sample \d+ is \[3, \d+, \d+\] but the batch is/);
  await loader.close();
});

test('CIFAR-10 JPEG folder from the shared tarball, through two workers', async (t) => {
  const tarball = fileURLToPath(new URL('../../../shared/datasets/cifar10-jpg.tar.gz', import.meta.url));
  if (!existsSync(tarball)) {
    t.skip(`CIFAR-10 tarball not found at ${tarball}`);
    return;
  }
  const dir = join(tmp, 'cifar');
  mkdirSync(dir);
  execFileSync('tar', ['xzf', tarball, '-C', dir, '--wildcards', 'cifar10/test/cat/00[0-4]*.jpg', 'cifar10/test/ship/00[0-4]*.jpg']);
  const ds = imageFolder(join(dir, 'cifar10', 'test'));
  assert.deepEqual(ds.classes, ['cat', 'ship']);
  assert.equal(ds.length, 100);
  const loader = new DataLoader(ds, { batchSize: 32, transform: preset('moco-v2-cifar'), numWorkers: 2, seed: 0, dropLast: true });
  const batches = await collect(loader);
  await loader.close();
  assert.equal(batches.length, 3);
  for (const b of batches) {
    assert.deepEqual(b.shape, [32, 3, 32, 32]);
    assert.ok(b.images.every(Number.isFinite));
  }
});

test('recycled batch buffers give the same batches and are detached from the caller', async () => {
  const ds = imageFolder(makeFolder('recycle', [5, 4]));
  for (const numWorkers of [0, 1]) {
    const ref = new DataLoader(ds, { batchSize: 2, transform: preset('moco-v2-cifar', { size: 8 }), seed: 9, numWorkers: 0 });
    const expected = (await collect(ref, 0)).map((b) => b.views.map((v) => Array.from(v)));
    const loader = new DataLoader(ds, { batchSize: 2, transform: preset('moco-v2-cifar', { size: 8 }), seed: 9, numWorkers });
    for (let epoch = 0; epoch < 2; epoch++) {
      let k = 0;
      for await (const b of loader.epoch(0)) {
        assert.deepEqual(b.views.map((v) => Array.from(v)), expected[k++], `batch ${k - 1}, ${numWorkers} workers, pass ${epoch}`);
        loader.recycle(b);
        assert.equal(b.images.length, 0, 'recycled arrays are detached');
      }
    }
    await loader.close();
  }
});

test('a worker that dies (here: failing at start-up) rejects the epoch with its error', async () => {
  const ds = imageFolder(makeFolder('crash', [2]));
  const bogus = { views: [{ name: 'Bogus' }] } as unknown as DataLoaderOptions['transform'];
  const loader = new DataLoader(ds, { batchSize: 2, transform: bogus, numWorkers: 1 });
  await assert.rejects(collect(loader), /\[DataLoader\] worker 0 crashed: \[buildTransform\] unknown transform "Bogus"/);
  await loader.close();
});
