// The raw-pixel kNN baseline against a brute-force float64 kNN written here from the definition (cosine similarity,
// k nearest vote with exp(sim / t)), on raw and on mean-subtracted pixels; and pretrain reports the same numbers.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openDataset, evalTransform } from '../../src/data/open.js';
import { loadImages } from '../../src/eval/run-pictures.js';
import { nativeImageSize, pixelKnnBaseline } from '../../src/eval/pixels.js';
import { DEBIAN_FASHION_MNIST_DIR } from '../../src/data/datasets.js';
import { pretrain } from '../../src/train/pretrain.js';
import * as T from '../../src/tensor/index.js';
import { encodePng } from '../data/png.js';
import { tinyConfig } from './tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-pixels-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
// a bright background all images share, a faint class band (rows 0-2, 3-5 or 6-7) and strong noise: kNN gets some
// images wrong, and subtracting the mean image changes which
const data = join(tmp, 'data');
const rng = new T.Rng(5);
for (const split of ['train', 'test']) {
  for (const [k, cls] of ['a', 'b', 'c'].entries()) {
    mkdirSync(join(data, split, cls), { recursive: true });
    for (let i = 0; i < 6; i++) {
      const px = Array.from({ length: 8 * 8 * 3 }, (_, j) => {
        const row = Math.floor(j / 24);
        const band = Math.min(2, Math.floor(row / 3)) === k ? 22 : 0;
        return Math.max(0, Math.min(255, Math.round(150 + band + 200 * (rng.uniform() - 0.5))));
      });
      writeFileSync(join(data, split, cls, `${i}.png`), encodePng(8, 8, 3, 8, px));
    }
  }
}

function bruteTop1(bank: Float64Array[], bankLabels: Int32Array, queries: Float64Array[], labels: Int32Array, k: number, t: number): number {
  const unit = (v: Float64Array): Float64Array => { const n = Math.hypot(...v); return v.map((x) => x / n); };
  const B = bank.map(unit);
  let hits = 0;
  queries.map(unit).forEach((q, i) => {
    const sims = B.map((b, j) => [b.reduce((s, x, d) => s + x * q[d]!, 0), j] as const).sort((x, y) => y[0] - x[0]).slice(0, k);
    const votes = new Float64Array(3);
    for (const [s, j] of sims) votes[bankLabels[j]!]! += Math.exp(s / t);
    if (votes.indexOf(Math.max(...votes)) === labels[i]) hits++;
  });
  return hits / queries.length;
}

test('pixel baseline: raw and mean-subtracted kNN equal a brute-force kNN; pretrain logs the same', async () => {
  const spec = evalTransform('moco-v2-cifar', 8);
  const bank = openDataset(data, 'train'), testSet = openDataset(data, 'test');
  const px = await pixelKnnBaseline(bank, testSet, spec, 3, { k: 4, t: 0.1 });
  const rows = async (ds: typeof bank): Promise<Float64Array[]> => {
    const { images, shape } = await loadImages(ds, spec);
    const d = shape[1] * shape[2] * shape[3];
    return Array.from({ length: shape[0] }, (_, i) => Float64Array.from(images.subarray(i * d, (i + 1) * d)));
  };
  const b = await rows(bank), q = await rows(testSet);
  const mean = b[0]!.map((_, d) => b.reduce((s, r) => s + r[d]!, 0) / b.length);
  const center = (r: Float64Array): Float64Array => r.map((v, d) => v - mean[d]!);
  const labels = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => Math.floor(i / 6));
  assert.ok(px.raw.top1 < 1 && px.raw.top1 > 1 / 3, `raw top-1 ${px.raw.top1}: neither perfect nor chance`);
  assert.notEqual(px.raw.top1, px.centered.top1, 'centering changes the neighbours');
  assert.equal(px.raw.top1, bruteTop1(b, labels(18), q, labels(18), 4, 0.1));
  assert.equal(px.centered.top1, bruteTop1(b.map(center), labels(18), q.map(center), labels(18), 4, 0.1));

  const base = tinyConfig('simsiam', data, join(tmp, 'run'));
  const cfg = { ...base, epochs: 1, imgSize: 8, augment: 'moco-v2-cifar', knn: { ...base.knn, disabled: false, k: 4, t: 0.1 } };
  const res = await pretrain(cfg, { callbacks: { log: () => {} } });
  assert.deepEqual(res.pixelBaseline, { ...px, size: 8 }, 'image files have no stored size: the run\'s imgSize');
  const logged = readFileSync(join(cfg.out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event?: string })
    .filter((l) => l.event === 'pixel_baseline');
  assert.deepEqual(logged, [{ event: 'pixel_baseline', ...px, size: 8 }]);
  res.model.dispose();
});

test('pixel baseline: images stored at one size (Fashion-MNIST, 28 px) are compared at that size, not the run\'s', async (t) => {
  if (!existsSync(DEBIAN_FASHION_MNIST_DIR)) { t.skip('dataset-fashion-mnist not installed'); return; }
  const bank = openDataset('fashion-mnist', 'train', 60), testSet = openDataset('fashion-mnist', 'test', 40);
  assert.equal(nativeImageSize(bank), 28);
  assert.equal(nativeImageSize(openDataset(data, 'train')), null, 'image files: not known without decoding');
  const at28 = await pixelKnnBaseline(bank, testSet, evalTransform('moco-v2-cifar', 28), 10, { k: 10, t: 0.1 });
  const at12 = await pixelKnnBaseline(bank, testSet, evalTransform('moco-v2-cifar', 12), 10, { k: 10, t: 0.1 });
  assert.notDeepEqual(at12, at28, 'the two sizes give different neighbours, so the test can tell which was used');
  const base = tinyConfig('moco', 'fashion-mnist', join(tmp, 'fmnist'));
  const cfg = { ...base, epochs: 1, limit: 32, batchSize: 16, imgSize: 12, augment: 'moco-v2-cifar',
    knn: { ...base.knn, disabled: false, k: 10, t: 0.1, bankSize: 60, testSize: 40 } };
  const res = await pretrain(cfg, { callbacks: { log: () => {} } });
  assert.deepEqual(res.pixelBaseline, { ...at28, size: 28 });
  res.model.dispose();
});
