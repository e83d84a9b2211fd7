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
import { assertUnchanged, linearHead, snapshotState } from '../../src/eval/linear.js';
import { methodSpec } from '../../src/methods/registry.js';
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
  assert.equal(r.recipe.optimizer, 'lars');
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
  const r = await runLinear({ ...base, checkpoint: run, epochs: 5, batchSize: 4, lr: 3 });
  assert.equal(r.recipe.optimizer, 'sgd');
  assert.deepEqual(r.recipe.milestones, [0.6, 0.8]);
  assert.equal(r.history[4]!.lr, 3 * 0.1 * 0.1);
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
