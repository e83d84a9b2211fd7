// MAE's parameter groups from named parameters: timm's add_weight_decay and param_groups_lrd layer-wise decay,
// compared with the groups the reference script builds on a ViT's parameter names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { AdamW, adjustLearningRate, layerDecayGroups, vitLayerId, weightDecayGroups } from '../../src/optim/index.js';
import { loadOptimFixtures } from './fixtures.js';

const fx = loadOptimFixtures().paramGroups;

function vitParams(): { named: [string, Tensor][]; nameOf: Map<Tensor, string> } {
  const named = fx.vit.map(({ name, shape }) => [name, T.keep(T.zeros(shape, { requiresGrad: true }))] as [string, Tensor]);
  return { named, nameOf: new Map(named.map(([n, p]) => [p, n])) };
}

describe('parameter groups', () => {
  it('weightDecayGroups matches timm add_weight_decay', () => {
    const { named, nameOf } = vitParams();
    const groups = weightDecayGroups(named, fx.weightDecay.weightDecay, fx.skip);
    assert.deepEqual(groups.map((g) => ({ weightDecay: g.weightDecay, params: g.params.map((p) => nameOf.get(p)) })), fx.weightDecay.groups);
    for (const [, p] of named) p.dispose();
  });

  it('layerDecayGroups matches MAE param_groups_lrd (scale = decay ** (numLayers - layerId))', () => {
    const { named, nameOf } = vitParams();
    const groups = layerDecayGroups(named, {
      depth: fx.depth, weightDecay: fx.layerDecay.weightDecay, layerDecay: fx.layerDecay.layerDecay, noWeightDecayList: fx.skip,
    });
    assert.equal(groups.length, fx.layerDecay.groups.length);
    groups.forEach((g, k) => {
      const e = fx.layerDecay.groups[k]!;
      assert.equal(g.name, e.name);
      assert.equal(g.weightDecay, e.weightDecay);
      assert.ok(Math.abs(g.lrScale - e.lrScale) <= 1e-15 * e.lrScale, `${g.name}: lrScale ${g.lrScale} vs ${e.lrScale}`);
      assert.deepEqual(g.params.map((p) => nameOf.get(p)), e.params);
    });
    // the head is layer numLayers (scale 1), block 10 is layer 11 of numLayers 12 (scale 0.75)
    assert.equal(vitLayerId('head.weight', fx.depth + 1), fx.depth + 1);
    assert.equal(vitLayerId('blocks.10.mlp.fc1.weight', fx.depth + 1), 11);
    // the groups drive an optimizer and the schedule multiplies lrScale in
    const opt = new AdamW(groups, { lr: 1e-3, weightDecay: 0.05 });
    adjustLearningRate(opt, { kind: 'constant', lr: 2e-3 }, 0);
    opt.paramGroups.forEach((g, k) => assert.equal(g.lr, 2e-3 * fx.layerDecay.groups[k]!.lrScale));
    opt.dispose();
    for (const [, p] of named) p.dispose();
  });

  it('leaves frozen parameters out and rejects blocks beyond depth', () => {
    const w = T.keep(T.zeros([2, 2], { requiresGrad: true }));
    const frozen = T.keep(T.zeros([2, 2]));
    const [noDecay, decay] = weightDecayGroups([['a.weight', w], ['b.weight', frozen]], 0.1);
    assert.deepEqual([noDecay.params.length, decay.params.length], [0, 1]);
    assert.throws(() => layerDecayGroups([['blocks.3.w', w]], { depth: 2 }), /depth is 2/);
    w.dispose();
    frozen.dispose();
  });
});
