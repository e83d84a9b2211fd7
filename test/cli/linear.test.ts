// `selfsup linear` on tiny runs of each method: the recipe is the method's, only the head trains, the backbone is
// verified bit-identical (and the check fires when it is not), MAE reads the cls token through BN + Linear.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readEvents, scalarsByTag } from '../io/tfevents.js';
import * as T from '../../src/tensor/index.js';
import { runLinear } from '../../src/cli/linear.js';
import { assertUnchanged, FeatureBatches, linearHead, linearProbe, snapshotState } from '../../src/eval/linear.js';
import { loadPretrained, openLabelledPair } from '../../src/eval/pretrained.js';
import { evalTransform } from '../../src/data/open.js';
import { DataLoader } from '../../src/data/loader.js';
import { methodSpec } from '../../src/methods/registry.js';
import { presetConfig } from '../../src/train/config.js';
import { BatchNorm1d, Linear, Sequential } from '../../src/nn/layers.js';
import { resnet18Cifar } from '../../src/models/resnet.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { makeFlatFolder, makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-linear-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 4, size: 16 });
const base = { limit: null, testLimit: null, workers: 0, seed: 0 };

test('linear: SimSiam run with its LARS recipe learns the head; backbone unchanged; outputs written', async () => {
  const run = makeTinyRun('simsiam', data, join(tmp, 'sims'));
  const out = join(tmp, 'lin');
  const progress: string[] = [];
  const r = await runLinear({ ...base, checkpoint: run, epochs: 3, batchSize: 4, out, onProgress: (phase, done, total) => progress.push(`${phase} ${done}/${total}`) });
  // every epoch: the training pass step by step, then the evaluation pass batch by batch, each ending at its total
  assert.equal(progress.filter((p) => /^epoch 2\/3: training \d+\/\d+$/.test(p)).length, Number(progress.find((p) => p.startsWith('epoch 2/3: training'))!.split('/').pop()));
  for (const e of [1, 2, 3]) {
    for (const pass of ['training', 'evaluation']) {
      const last = progress.filter((p) => p.startsWith(`epoch ${e}/3: ${pass} `)).pop()!;
      const [done, total] = last.split(' ').pop()!.split('/').map(Number);
      assert.equal(done, total, last);
    }
  }
  assert.equal(r.recipe.name, 'simsiam');
  assert.equal(r.recipe.optimizer, 'larc', 'apex LARC, as simsiam/main_lincls.py --lars');
  assert.equal(r.lr, (0.1 * 4) / 256);
  assert.equal(r.history.length, 3);
  assert.ok(r.backboneTensorsChecked > 10);
  assert.ok(r.history.every((e) => Number.isFinite(e.loss)));
  const json = JSON.parse(readFileSync(join(out, 'linear.json'), 'utf8'));
  // TensorBoard: per-epoch scalars at step = epoch, and the config as text
  const tbFile = readdirSync(join(out, 'tb')).find((f) => f.startsWith('events.out.tfevents.'))!;
  const events = readEvents(new Uint8Array(readFileSync(join(out, 'tb', tbFile))));
  const scalars = scalarsByTag(events);
  assert.deepEqual(scalars.get('test/top1'), r.history.map((e) => [e.epoch, Math.fround(e.top1)]));
  assert.deepEqual(scalars.get('train/loss'), r.history.map((e) => [e.epoch, Math.fround(e.loss)]));
  assert.deepEqual(scalars.get('train/lr')!.map(([s]) => s), [1, 2, 3]);
  assert.match(events.flatMap((e) => e.values ?? []).find((v) => v.tag === 'config')!.tensor!.stringVal[0]!, /"recipe"/);
  assert.equal(json.top1, r.top1);
  const head = readSafetensors(join(out, 'head.safetensors'));
  assert.deepEqual(head.tensors.get('weight')!.shape, [3, r.head.parameters()[0]!.shape[1]!]);
});

test('linear: MoCo recipe (SGD lr 30, steps at 60/80%) lowers the loss above chance', async () => {
  const run = makeTinyRun('moco', data, join(tmp, 'moco'));
  // an untrained backbone's features are large and unnormalised: lr 3 diverges for some seeds, 0.3 learns for all
  const r = await runLinear({ ...base, checkpoint: run, epochs: 5, batchSize: 4, lr: 0.3 });
  assert.equal(r.recipe.optimizer, 'sgd');
  assert.deepEqual(r.recipe.milestones, [0.6, 0.8]);
  assert.equal(r.history[4]!.lr, 0.3 * 0.1 * 0.1);
  assert.ok(r.history[4]!.loss < r.history[0]!.loss, `loss ${r.history.map((e) => e.loss)}`);
  assert.ok(r.top1 > 0.4, `top-1 ${r.top1} (chance is 1/3)`);
});

test('linear: MAE recipe puts BatchNorm1d(affine=False) + Linear on the cls token; wrong recipe and no labels rejected', async () => {
  const run = makeTinyRun('mae', data, join(tmp, 'mae'));
  const r = await runLinear({ ...base, checkpoint: run, epochs: 2, batchSize: 6 });
  assert.ok(r.head instanceof Sequential);
  const bn = r.head.child<BatchNorm1d>('0');
  assert.ok(bn instanceof BatchNorm1d && bn.weight === null && bn.eps === 1e-6);
  assert.equal(r.recipe.schedule, 'warmupCosine');
  const sims = makeTinyRun('simsiam', data, join(tmp, 'sims2'));
  await assert.rejects(runLinear({ ...base, checkpoint: sims, recipe: 'byol', epochs: 1 }), /\[linear\] unknown method 'byol'; expected one of moco, simsiam, mae/);
  const flat = makeFlatFolder(join(tmp, 'flat'), 4, 16);
  const out = join(tmp, 'none');
  await assert.rejects(runLinear({ ...base, checkpoint: run, data: flat, epochs: 1, out }), /\[linear\] the training data .* has no labels/);
  assert.equal(existsSync(out), false);
});

test('the frozen-backbone check fires on any change, buffers included', () => {
  const net = resnet18Cifar({ width: 0.125, numClasses: 0 }, { rng: new T.Rng(0) });
  const snap = snapshotState(net);
  assert.ok(assertUnchanged(snap, net) > 0);
  const rm = net.stateDict().get('layer1.0.bn1.running_mean')!;
  rm.data[0] = rm.data[0]! + 1e-7;
  assert.throws(() => assertUnchanged(snap, net), /frozen backbone changed during training: 'layer1\.0\.bn1\.running_mean' moved by up to/);
  const head = linearHead(8, 3, false, new T.Rng(0));
  assert.ok(head instanceof Linear);
  assert.equal(methodSpec('moco').linearRecipe().lr, 30);
  assert.equal(methodSpec('mae').linearRecipe().warmupEpochs, 10);
  net.dispose();
});

test("linear: MoCo v3 runs probe their base encoder with moco-v3's main_lincls recipe (SGD 0.1 x batch/256, cosine; ViT lr 3)", async () => {
  const run = makeTinyRun('mocov3', data, join(tmp, 'mocov3'));
  const r = await runLinear({ ...base, checkpoint: run, epochs: 2, batchSize: 4 });
  assert.equal(r.recipe.name, 'mocov3');
  assert.equal(r.recipe.optimizer, 'sgd');
  assert.equal(r.recipe.schedule, 'cosine');
  assert.equal(r.lr, (0.1 * 4) / 256);
  assert.ok(r.backboneTensorsChecked > 10);
  assert.equal(methodSpec('mocov3').linearRecipe({ ...presetConfig('mocov3', 'vit-small') }).lr, 3, 'CONFIG.md probes ViTs at lr 3');
});

test('linear --precomputed: features extracted once with the evaluation transform train the same head as that transform per batch', async () => {
  const run = makeTinyRun('mae', data, join(tmp, 'mae-pre'));
  const progress: string[] = [];
  const lines: string[] = [];
  const pre = await runLinear({ ...base, checkpoint: run, epochs: 3, batchSize: 4, precomputed: true, log: (s) => lines.push(s), onProgress: (phase, done, total) => progress.push(`${phase} ${done}/${total}`) });
  assert.equal(pre.precomputed, true);
  assert.equal(progress.filter((p) => p.startsWith('features: training images')).pop(), 'features: training images 1/1', 'one pass over the 12 training images');
  assert.equal(progress.filter((p) => p.startsWith('features: test images')).pop(), 'features: test images 3/3', 'the evaluation loader: batches of min(256, batch)');
  assert.equal(lines.length, 3);
  // the same probe through a DataLoader whose training transform is the evaluation transform, shuffled with the same
  // seed: the batches hold the same images in the same order, so the history is the same
  const p = loadPretrained(run, 'test');
  const { module: backbone, features, dim } = p.model.frozenBackbone();
  const pair = openLabelledPair('test', data, data, null, null);
  const spec = evalTransform(p.cfg.augment, p.cfg.imgSize);
  const train = new DataLoader(pair.train, { batchSize: 4, transform: spec, shuffle: true, dropLast: false, seed: 0, numWorkers: 0 });
  const val = new DataLoader(pair.test, { batchSize: 4, transform: spec, shuffle: false, dropLast: false, seed: 0, numWorkers: 0 });
  const recipe = { ...methodSpec('mae').linearRecipe(), epochs: 3, batchSize: 4, warmupEpochs: 0 };
  const ref = await linearProbe({ backbone, features, dim, classes: 3, train, val, recipe, seed: 0 });
  assert.equal(pre.recipe.warmupEpochs, 0, '10 warmup epochs of 90 scale to 0 of 3');
  assert.equal(pre.history.length, 3);
  pre.history.forEach((e, i) => {
    const r = ref.history[i]!;
    assert.ok(Math.abs(e.loss - r.loss) <= 1e-5 * Math.abs(r.loss), `epoch ${i + 1}: loss ${e.loss} vs ${r.loss}`);
    assert.equal(e.top1, r.top1);
    assert.equal(e.lr, r.lr);
  });
  p.model.dispose();
});

test('FeatureBatches: every row once per epoch, in the DataLoader\'s seeded order, last batch kept', async () => {
  const n = 10;
  const dim = 3;
  const feats = Float32Array.from({ length: n * dim }, (_, i) => i);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 4);
  const fb = new FeatureBatches(feats, labels, dim, 4, true, 7);
  assert.equal(fb.length, 3);
  const seen: number[] = [];
  const sizes: number[] = [];
  for await (const b of fb.epoch(2)) {
    sizes.push(b.shape[0]);
    assert.deepEqual(b.shape.slice(1), [dim, 1, 1]);
    b.indices.forEach((idx, i) => {
      seen.push(idx);
      assert.deepEqual(Array.from(b.images.subarray(i * dim, i * dim + dim)), [idx * dim, idx * dim + 1, idx * dim + 2]);
      assert.equal(b.labels[i], idx % 4);
    });
  }
  assert.deepEqual(sizes, [4, 4, 2]);
  assert.deepEqual(seen, Array.from(T.Rng.fromKeys(0x5348554646, 7, 2).randperm(n)));
  const ordered: number[] = [];
  for await (const b of new FeatureBatches(feats, labels, dim, 4, false).epoch(0)) ordered.push(...b.indices);
  assert.deepEqual(ordered, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.throws(() => new FeatureBatches(feats, labels, 4, 4, false), /\[linear\] 30 feature values do not make 10 rows of 4/);
});
