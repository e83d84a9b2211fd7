// The weighted kNN monitor against a brute-force version of the official demo's knn_predict.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { knnClassify } from '../../src/eval/knn.js';

/** The official demo's knn_predict, written out with full sorts. */
function bruteForce(bank: number[][], bankLabels: number[], q: number[], classes: number, k: number, t: number): number[] {
  const sims = bank.map((b, i) => [b.reduce((a, v, d) => a + v * q[d]!, 0), i] as [number, number]);
  sims.sort((a, b) => b[0] - a[0]);
  const scores = new Array<number>(classes).fill(0);
  for (const [s, i] of sims.slice(0, k)) scores[bankLabels[i]!]! += Math.exp(s / t);
  return scores;
}

function normalizedRows(rng: T.Rng, n: number, d: number, centers: number[][], labels: number[]): number[][] {
  return Array.from({ length: n }, (_, i) => {
    const v = centers[labels[i]!]!.map((c) => c + 0.8 * rng.normal());
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
}

it('knn matches a brute-force weighted vote, top-1 and top-5', () => {
  const rng = new T.Rng(3);
  const classes = 6;
  const D = 8;
  const centers = Array.from({ length: classes }, () => Array.from({ length: D }, () => rng.normal()));
  const bankLabels = Array.from({ length: 300 }, () => rng.int(classes));
  const queryLabels = Array.from({ length: 70 }, () => rng.int(classes));
  const bank = normalizedRows(rng, 300, D, centers, bankLabels);
  const queries = normalizedRows(rng, 70, D, centers, queryLabels);
  const k = 20;
  const t = 0.1;
  const res = knnClassify(T.tensor(bank.flat(), [300, D]), Int32Array.from(bankLabels), T.tensor(queries.flat(), [70, D]),
    Int32Array.from(queryLabels), classes, { k, t, chunk: 32 });
  let hit1 = 0;
  let hit5 = 0;
  queries.forEach((q, i) => {
    const scores = bruteForce(bank, bankLabels, q, classes, k, t);
    const order = scores.map((s, c) => [s, c] as [number, number]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map((p) => p[1]);
    if (order[0] === queryLabels[i]) hit1++;
    if (order.slice(0, 5).includes(queryLabels[i]!)) hit5++;
    assert.equal(res.predictions[i], order[0], `query ${i}`);
  });
  assert.equal(res.top1, hit1 / 70);
  assert.equal(res.top5, hit5 / 70);
  assert.ok(res.top1 > 0.5 && res.top1 < 1, `clustered data should be mostly right: ${res.top1}`);
});

it('knn rejects mismatched inputs with a clear error', () => {
  assert.throws(() => knnClassify(T.zeros([4, 3]), new Int32Array(4), T.zeros([2, 5]), new Int32Array(2), 2), /\[knn\] bank .* must share D/);
  assert.throws(() => knnClassify(T.zeros([4, 3]), Int32Array.from([0, 1, 2, 9]), T.zeros([2, 3]), new Int32Array(2), 3), /\[knn\] bank label 9/);
});
