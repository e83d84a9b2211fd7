// `selfsup finetune` on a tiny MAE run: layer-decay groups against MAE's rule (scale = decay^(num_layers - layer_id)),
// weight-decay exemptions, the lr each group gets, drop path and global pooling, and the refusal of non-MAE runs.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readEvents, scalarsByTag } from '../io/tfevents.js';
import * as T from '../../src/tensor/index.js';
import { runFinetune } from '../../src/cli/finetune.js';
import { finetuneModel, finetuneParamGroups, finetuneRecipe } from '../../src/eval/finetune.js';
import { MaskedAutoencoderViT } from '../../src/methods/mae.js';
import { AdamW, adjustLearningRate } from '../../src/optim/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-finetune-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 4, size: 16 });

/** MAE util/lr_decay.py get_layer_id_for_vit, written out again for the check. */
function maeLayerId(name: string, numLayers: number): number {
  if (['cls_token', 'pos_embed'].includes(name)) return 0;
  if (name.startsWith('patch_embed')) return 0;
  if (name.startsWith('blocks')) return Number(name.split('.')[1]) + 1;
  return numLayers;
}

test('finetune groups follow MAE: lr scale decay^(num_layers - layer_id), no decay on 1-D, pos_embed, cls_token', () => {
  const mae = new MaskedAutoencoderViT({ imgSize: 16, patchSize: 4, inChans: 3, embedDim: 16, depth: 3, numHeads: 2, decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2, mlpRatio: 2, normPixLoss: true, maskRatio: 0.75 }, new T.Rng(0));
  const r = { ...finetuneRecipe(), layerDecay: 0.65, dropPath: 0.2 };
  const vit = finetuneModel(mae, 5, r, new T.Rng(1));
  const groups = finetuneParamGroups(vit, r);
  const numLayers = 3 + 1;
  const byParam = new Map<T.Tensor, (typeof groups)[number]>();
  for (const g of groups) for (const p of g.params) byParam.set(p, g);
  let n = 0;
  for (const [name, p] of vit.namedParameters()) {
    const g = byParam.get(p);
    assert.ok(g !== undefined, `${name} is in a group`);
    assert.equal(g.lrScale, 0.65 ** (numLayers - maeLayerId(name, numLayers)), name);
    const exempt = p.ndim === 1 || name === 'pos_embed' || name === 'cls_token';
    assert.equal(g.weightDecay, exempt ? 0 : r.weightDecay, name);
    n++;
  }
  assert.equal(byParam.size, n);
  // the head (and fc_norm) at full lr, the patch embedding at decay^(depth + 1)
  assert.equal(byParam.get(vit.head.parameters()[0]!)!.lrScale, 1);
  assert.equal(byParam.get(vit.patchEmbed.proj.weight)!.lrScale, 0.65 ** 4);
  // global pooling: fc_norm instead of norm, the encoder weights from the MAE, pos_embed trainable, drop path 0.2
  assert.ok(vit.config.globalPool && vit.childOrNull('norm') === null && vit.childOrNull('fc_norm') !== null);
  assert.deepEqual([...vit.patchEmbed.proj.weight.data], [...mae.stateDict().get('patch_embed.proj.weight')!.data]);
  assert.equal(vit.posEmbed.requiresGrad, true);
  assert.equal(vit.config.dropPathRate, 0.2);
  // the scheduled lr reaches each group times its scale
  const opt = new AdamW(groups, { lr: 1e-3 });
  const lr = adjustLearningRate(opt, { kind: 'warmupCosine', lr: 1e-3, minLr: 0, warmupEpochs: 1, epochs: 10 }, 0.5);
  for (const g of opt.paramGroups) assert.ok(Math.abs(g.lr - lr * g.lrScale) < 1e-15);
  vit.dispose();
  mae.dispose();
});

test('finetune a tiny MAE run end to end; a SimSiam run is refused', async () => {
  const run = makeTinyRun('mae', data, join(tmp, 'mae'));
  const out = join(tmp, 'ft');
  const r = await runFinetune({ checkpoint: run, recipe: { epochs: 2, batchSize: 4, blr: 1e-2 }, limit: null, testLimit: null, workers: 0, seed: 0, out });
  assert.equal(r.history.length, 2);
  assert.equal(r.recipe.warmupEpochs, 1);
  assert.equal(r.recipe.labelSmoothing, 0.1);
  assert.equal(r.lr, (1e-2 * 4) / 256);
  assert.ok(r.history.every((e) => Number.isFinite(e.loss)));
  assert.equal(JSON.parse(readFileSync(join(out, 'finetune.json'), 'utf8')).top1, r.top1);
  // TensorBoard: per-epoch scalars at step = epoch, and the config as text
  const tbFile = readdirSync(join(out, 'tb')).find((f) => f.startsWith('events.out.tfevents.'))!;
  const events = readEvents(new Uint8Array(readFileSync(join(out, 'tb', tbFile))));
  const scalars = scalarsByTag(events);
  assert.deepEqual(scalars.get('test/top1'), r.history.map((e) => [e.epoch, Math.fround(e.top1)]));
  assert.deepEqual(scalars.get('train/loss'), r.history.map((e) => [e.epoch, Math.fround(e.loss)]));
  assert.deepEqual(scalars.get('train/lr')!.map(([s]) => s), [1, 2]);
  assert.match(events.flatMap((e) => e.values ?? []).find((v) => v.tag === 'config')!.tensor!.stringVal[0]!, /"recipe"/);
  assert.deepEqual(readSafetensors(join(out, 'model.safetensors')).tensors.get('head.weight')!.shape, [3, 16]);
  await assert.rejects(runFinetune({ checkpoint: run, recipe: { epochs: 1, batchSize: 3 }, limit: null, testLimit: null, workers: 0, seed: 0 }), /\[finetune\] .*--batch-size must be even, got 3/);
  const plain = await runFinetune({ checkpoint: run, recipe: { epochs: 1, batchSize: 3, mixup: 0, cutmix: 0 }, limit: null, testLimit: null, workers: 0, seed: 0 });
  assert.ok(Number.isFinite(plain.history[0]!.loss));
  const sims = makeTinyRun('simsiam', data, join(tmp, 'sims'));
  await assert.rejects(runFinetune({ checkpoint: sims, limit: null, testLimit: null, workers: 0, seed: 0 }), /\[finetune\] .* holds a simsiam checkpoint; finetune needs mae/);
});
