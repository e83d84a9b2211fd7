// Mixup / CutMix as timm's Mixup(mode='batch'): mixed pixels, the CutMix box and its corrected lam, the soft
// targets, the Beta sampler's moments, and bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/tensor/index.js';
import { cutmixBox, mixupBatch, mixupTargets, sampleBeta, type MixupOptions } from '../../src/data/mixup.js';

const shape = [4, 2, 6, 5] as const;
const images = Float32Array.from({ length: 4 * 2 * 6 * 5 }, (_, i) => Math.sin(i * 0.7) * 3);
const labels = Int32Array.from([0, 2, 1, 2]);
const base: MixupOptions = { mixupAlpha: 0.8, cutmixAlpha: 1.0, prob: 1, switchProb: 0.5, labelSmoothing: 0.1, numClasses: 3 };

test('Beta sampler: mean a/(a+b) and variance ab/((a+b)^2(a+b+1)) over 20,000 draws', () => {
  for (const [a, b] of [[0.8, 0.8], [1, 1], [2, 5]] as const) {
    const rng = new Rng(3);
    const xs = Array.from({ length: 20000 }, () => sampleBeta(rng, a, b));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    assert.ok(xs.every((x) => x >= 0 && x <= 1));
    assert.ok(Math.abs(mean - a / (a + b)) < 0.01, `Beta(${a}, ${b}) mean ${mean}`);
    assert.ok(Math.abs(v - (a * b) / ((a + b) ** 2 * (a + b + 1))) < 0.01, `Beta(${a}, ${b}) variance ${v}`);
  }
});

test('mixup: every image is lam * itself + (1 - lam) * its mirror in the batch; targets mix the same way', () => {
  const m = mixupBatch(images, shape, labels, { ...base, cutmixAlpha: 0 }, new Rng(1));
  assert.equal(m.mode, 'mixup');
  assert.ok(m.lam > 0 && m.lam < 1);
  const plane = 2 * 6 * 5;
  for (let n = 0; n < 4; n++) {
    for (let k = 0; k < plane; k++) {
      const want = images[n * plane + k]! * m.lam + images[(3 - n) * plane + k]! * (1 - m.lam);
      assert.ok(Math.abs(m.images[n * plane + k]! - want) < 1e-5);
    }
  }
  // smoothed one-hots: off = 0.1/3, on = 0.9 + off
  const off = 0.1 / 3, on = 0.9 + off;
  const t = m.targets;
  assert.ok(Math.abs(t[0 * 3 + 0]! - (m.lam * on + (1 - m.lam) * off)) < 1e-6, 'image 0 (label 0) with image 3 (label 2)');
  assert.ok(Math.abs(t[0 * 3 + 2]! - (m.lam * off + (1 - m.lam) * on)) < 1e-6);
  for (let n = 0; n < 4; n++) assert.ok(Math.abs(t[3 * n]! + t[3 * n + 1]! + t[3 * n + 2]! - 1) < 1e-6);
  assert.deepEqual(Array.from(images.slice(0, 3)), Array.from(images.slice(0, 3)), 'the input is not modified');
});

test('cutmix: the box comes from the mirror image, the rest is untouched, and lam is its area complement', () => {
  const m = mixupBatch(images, shape, labels, { ...base, mixupAlpha: 0 }, new Rng(2));
  assert.equal(m.mode, 'cutmix');
  const [y0, y1, x0, x1] = m.box!;
  assert.ok(Math.abs(m.lam - (1 - ((y1 - y0) * (x1 - x0)) / 30)) < 1e-12);
  const plane = 60;
  for (let n = 0; n < 4; n++) {
    for (let c = 0; c < 2; c++) {
      for (let y = 0; y < 6; y++) {
        for (let x = 0; x < 5; x++) {
          const k = c * 30 + y * 5 + x;
          const inBox = y >= y0 && y < y1 && x >= x0 && x < x1;
          assert.equal(m.images[n * plane + k], images[(inBox ? 3 - n : n) * plane + k]);
        }
      }
    }
  }
  // timm's rand_bbox: side int(H * sqrt(1 - lam)), centred at a uniform pixel, clipped
  const r = cutmixBox(32, 32, 0.75, new Rng(5));
  const [a0, a1, b0, b1] = r.box;
  assert.ok(a1 - a0 <= 16 && b1 - b0 <= 16 && a0 >= 0 && a1 <= 32 && b0 >= 0 && b1 <= 32);
  assert.equal(r.lam, 1 - ((a1 - a0) * (b1 - b0)) / 1024);
});

test('mixup off (prob 0) gives smoothed one-hot targets; bad batches are refused', () => {
  const m = mixupBatch(images, shape, labels, { ...base, prob: 0 }, new Rng(1));
  assert.equal(m.mode, 'none');
  assert.deepEqual(Array.from(m.images), Array.from(images));
  assert.deepEqual(Array.from(m.targets), Array.from(mixupTargets(labels, 3, 1, 0.1)));
  assert.throws(() => mixupBatch(images.subarray(0, 90), [3, 2, 3, 5], Int32Array.from([0, 1, 2]), base, new Rng(1)), /\[mixup\] the batch size must be even/);
  assert.throws(() => mixupTargets(Int32Array.from([0, 3]), 3, 0.5, 0), /\[mixup\] label 3 is outside \[0, 3\)/);
});
