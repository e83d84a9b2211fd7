// t-SNE: perplexity calibration (row entropies), cluster separation on a known mixture, determinism, errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/tensor/index.js';
import { conditionalP, tsne } from '../../src/eval/tsne.js';

/** n points per cluster around `k` centres 10 apart on the axes of a d-space, unit noise. */
function mixture(k: number, per: number, d: number, seed: number): { x: Float64Array; labels: number[] } {
  const rng = new Rng(seed);
  const x = new Float64Array(k * per * d);
  const labels: number[] = [];
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < per; i++) {
      const row = (c * per + i) * d;
      for (let j = 0; j < d; j++) x[row + j] = rng.normal() + (j === c ? 10 : 0);
      labels.push(c);
    }
  }
  return { x, labels };
}

test('conditional P: every row sums to 1 and has entropy log(perplexity)', () => {
  const { x } = mixture(3, 20, 5, 1);
  const n = 60;
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < 5; k++) s += (x[i * 5 + k]! - x[j * 5 + k]!) ** 2;
    D[i * n + j] = s;
  }
  for (const perplexity of [5, 15]) {
    const P = conditionalP(D, n, perplexity);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      let H = 0;
      for (let j = 0; j < n; j++) {
        const p = P[i * n + j]!;
        sum += p;
        if (p > 0) H -= p * Math.log(p);
      }
      assert.equal(P[i * n + i], 0);
      assert.ok(Math.abs(sum - 1) < 1e-9, `row ${i} sums to ${sum}`);
      assert.ok(Math.abs(H - Math.log(perplexity)) < 1e-4, `row ${i}: entropy ${H} vs log(${perplexity}) = ${Math.log(perplexity)}`);
    }
  }
});

test('t-SNE separates a 3-cluster mixture, lowers KL after exaggeration, and is deterministic', () => {
  const { x, labels } = mixture(3, 30, 12, 2);
  const n = 90;
  const kls: number[] = [];
  const { embedding: Y, kl } = tsne(x, n, 12, { perplexity: 15, iterations: 600, onProgress: (_, k) => kls.push(k) });
  assert.equal(kls.length, 12);
  assert.ok(kl < kls[5]! && kl > 0, `KL ${kl} after 600 iterations vs ${kls[5]} after 300`);
  // leave-one-out 1-NN in the map recovers every label
  let hits = 0;
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bestD = Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dd = (Y[2 * i]! - Y[2 * j]!) ** 2 + (Y[2 * i + 1]! - Y[2 * j + 1]!) ** 2;
      if (dd < bestD) { bestD = dd; best = j; }
    }
    if (labels[best] === labels[i]) hits++;
  }
  assert.equal(hits, n, `1-NN in the t-SNE map: ${hits}/${n}`);
  const again = tsne(x, n, 12, { perplexity: 15, iterations: 600 });
  assert.deepEqual(Array.from(again.embedding), Array.from(Y));
});

test('t-SNE rejects a perplexity the points cannot support', () => {
  const { x } = mixture(2, 5, 3, 3);
  assert.throws(() => tsne(x, 10, 3, { perplexity: 10 }), /\[tsne\] perplexity must be in \(0, 10\) for 10 points, got 10/);
  assert.throws(() => tsne(x, 11, 3), /\[tsne\] 30 values for \[11, 3\]/);
});
