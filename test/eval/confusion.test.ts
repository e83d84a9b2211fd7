// Confusion matrices and per-class accuracy against counts done by hand; nearest-neighbour retrieval against a
// brute-force ranking.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as T from '../../src/tensor/index.js';
import { confusionMatrix, confusionSvg, perClassAccuracy } from '../../src/eval/confusion.js';
import { nearestNeighbours } from '../../src/eval/retrieve.js';

test('confusion matrix: rows are true classes, columns predictions; per-class accuracy is the row recall', () => {
  const labels = [0, 0, 0, 1, 1, 2, 2, 2, 2];
  const preds = [0, 1, 0, 1, 1, 2, 0, 2, 1];
  const m = confusionMatrix(preds, labels, 4);
  assert.deepEqual(Array.from(m), [2, 1, 0, 0, 0, 2, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0]);
  const acc = perClassAccuracy(m, 4);
  assert.deepEqual(acc.slice(0, 3).map((a) => [a.correct, a.total]), [[2, 3], [2, 2], [2, 4]]);
  assert.equal(acc[0]!.accuracy, 2 / 3);
  assert.ok(Number.isNaN(acc[3]!.accuracy), 'a class with no test images has no accuracy');
  assert.throws(() => confusionMatrix([0, 5], [0, 1], 4), /\[confusion\] sample 1: label 1 or prediction 5 outside \[0, 4\)/);
  assert.throws(() => confusionMatrix([0], [0, 1], 4), /\[confusion\] 1 predictions for 2 labels/);
  const svg = confusionSvg(m, ['a', 'b<', 'c', 'd'], 't');
  assert.equal((svg.match(/<rect x=/g) ?? []).length, 16, 'one cell per (true, predicted) pair');
  assert.ok(svg.includes('b&lt;'), 'class names are escaped');
});

test('nearest neighbours: the k most similar rows by dot product, best first, ties to the lower index', () => {
  const rng = new T.Rng(3);
  const bank = T.tidy(() => T.keep(T.l2Normalize(T.randn([50, 8], { rng }), 1)));
  const query = T.tidy(() => T.keep(T.l2Normalize(T.randn([1, 8], { rng }), 1)));
  const b = bank.data, q = query.data;
  const sims = Array.from({ length: 50 }, (_, i) => { let s = 0; for (let j = 0; j < 8; j++) s += b[i * 8 + j]! * q[j]!; return s; });
  const expected = sims.map((s, i) => [s, i] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, 5);
  const got = nearestNeighbours(bank, query, 5);
  assert.deepEqual(got.map((n) => n.index), expected.map((e) => e[1]));
  got.forEach((n, i) => assert.ok(Math.abs(n.similarity - expected[i]![0]) < 1e-5));
  const twin = T.concat([query, query], 0);
  assert.deepEqual(nearestNeighbours(twin, query, 2).map((n) => n.index), [0, 1]);
  assert.throws(() => nearestNeighbours(bank, bank, 2), /\[retrieve\] bank \[N, D\] and query \[1, D\]/);
  for (const t of [bank, query, twin]) t.dispose();
});
