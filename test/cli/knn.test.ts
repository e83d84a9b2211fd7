// `selfsup knn` on tiny runs: accuracy against a direct knnClassify, and the bad-input policy (no labels,
// class lists that differ, not a run folder, weights that do not fit the config), end to end through the bin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runKnn } from '../../src/cli/knn.js';
import { makeFlatFolder, makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-knn-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../../bin/selfsup.js', import.meta.url));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 4, size: 16 });
const run = makeTinyRun('simsiam', data, join(tmp, 'run'));

test('knn: top-1/top-5 of a tiny SimSiam run, JSON written; the CLI prints the same numbers', async () => {
  const out = join(tmp, 'knn.json');
  const progress: string[] = [];
  const r = await runKnn({ checkpoint: run, k: 5, t: 0.1, limit: null, testLimit: null, batchSize: 8, workers: 0, out, onProgress: (phase, done, total) => progress.push(`${phase} ${done}/${total}`) });
  // 12 images in batches of 8: two batches per pass
  assert.deepEqual(progress, ['features of the bank 1/2', 'features of the bank 2/2', 'features of the test images 1/2', 'features of the test images 2/2']);
  assert.equal(r.bank, 12);
  assert.equal(r.test, 12);
  assert.equal(r.classes, 3);
  assert.equal(r.testLoss, undefined, 'SimSiam has no held-out loss');
  assert.ok(r.top1 >= 0 && r.top1 <= 1 && r.top5 === 1, `top-5 over 3 classes is 1, got ${r.top5}`);
  // colour-coded classes: even an untrained encoder's features separate them well
  assert.ok(r.top1 > 0.5, `top-1 ${r.top1}`);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')).top1, r.top1);
  // per-class accuracy and the confusion matrix agree with top-1: the diagonal holds the hits, each row its class
  assert.deepEqual(r.perClass.map((c) => c.className), ['a', 'b', 'c']);
  assert.deepEqual(r.confusion.map((row) => row.reduce((a, b) => a + b, 0)), [4, 4, 4]);
  const hits = r.confusion.reduce((a, row, i) => a + row[i]!, 0);
  assert.equal(hits / r.test, r.top1);
  r.perClass.forEach((c, i) => assert.equal(c.correct, r.confusion[i]![i]));
  const png = readFileSync(r.confusionPng);
  assert.deepEqual([...png.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(''), 'PNG');
  assert.equal(r.confusionPng, join(run, 'knn-confusion.png'));
  const stdout = execFileSync(process.execPath, [BIN, 'knn', '--checkpoint', run, '--k', '5', '--batch-size', '8', '--workers', '0'], { encoding: 'utf8' });
  assert.match(stdout, new RegExp(`top-1 ${(100 * r.top1).toFixed(2)}%`));
  for (const c of r.perClass) assert.match(stdout, new RegExp(`  ${c.className}  +${(100 * c.accuracy).toFixed(1)}%  \\(${c.correct}/4\\)`));
  assert.match(stdout, /\[knn\] confusion matrix: .*knn-confusion\.png/);
});

test('knn: bad input gives clear errors and writes nothing', async () => {
  const out = join(tmp, 'bad.json');
  const base = { checkpoint: run, k: 5, t: 0.1, limit: null, testLimit: null, batchSize: 8, workers: 0, out };
  const flat = makeFlatFolder(join(tmp, 'flat'), 4, 16);
  await assert.rejects(runKnn({ ...base, data: flat }), /\[knn\] the training data .*flat has no labels/);
  const other = makeImageFolder(join(tmp, 'data4'), { classes: ['a', 'b', 'c'], perClass: 2, size: 16, testClasses: ['a', 'b', 'c', 'd'] });
  await assert.rejects(runKnn({ ...base, data: other }), /\[knn\] the training data has 3 classes but the test data has 4/);
  await assert.rejects(runKnn({ ...base, checkpoint: data }), /\[knn\] .* is not a pretraining run folder/);
  // a checkpoint whose weights are of another architecture than its config says
  const wrong = makeTinyRun('simsiam', data, join(tmp, 'wrong'));
  const cfg = JSON.parse(readFileSync(join(wrong, 'config.json'), 'utf8'));
  writeFileSync(join(wrong, 'config.json'), JSON.stringify({ ...cfg, width: 0.25 }));
  await assert.rejects(runKnn({ ...base, checkpoint: wrong }), /\[knn\] the checkpoint in .* does not match its config \(method simsiam, arch resnet18-cifar\)/);
  assert.equal(existsSync(out), false);
  assert.throws(() => execFileSync(process.execPath, [BIN, 'knn', '--checkpoint', run, '--k', 'x'], { stdio: 'pipe' }), /--k must be a positive integer/);
});
