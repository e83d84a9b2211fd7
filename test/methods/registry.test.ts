// Every registered method keeps the Method contract the trainer and the evaluation commands rely on: built from
// its 'quick' preset at a tiny size, a training step gives a finite scalar loss with gradients for every trainable
// parameter, the parameter groups cover each trainable parameter once, features and the frozen backbone agree in
// width, the key map lands in the backbone's own state dict, and the checkpoint extras are state-dict keys.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { METHOD_NAMES, buildMethod, methodSpec } from '../../src/methods/registry.js';
import { backboneStateDict } from '../../src/methods/method.js';
import { tinyConfig } from '../eval/tiny-run.js';

for (const name of METHOD_NAMES) {
  it(`${name}: keeps the Method contract`, () => {
    const cfg = tinyConfig(name, 'unused', 'unused');
    const m = buildMethod(cfg, new T.Rng(0));
    try {
      assert.equal(m.methodName, name);
      assert.equal(methodSpec(name).name, name);
      const rng = new T.Rng(1);
      const views = Array.from({ length: m.viewsPerSample }, () => T.randn([cfg.batchSize, 3, cfg.imgSize, cfg.imgSize], { rng, device: 'reference' }));
      m.to('reference');
      m.train();
      T.tidy(() => {
        const { loss, metrics } = m.trainingStep(views);
        assert.deepEqual([...loss.shape], [], 'the loss is a scalar');
        assert.ok(Number.isFinite(loss.item()), `loss ${loss.item()}`);
        for (const [k, v] of Object.entries(metrics)) assert.ok(Number.isFinite(v), `metric ${k} = ${v}`);
        m.zeroGrad();
        loss.backward();
      });
      const trainable = m.parameters().filter((p) => p.requiresGrad);
      const grouped = m.paramGroups(0.1).flatMap((g) => g.params);
      assert.equal(grouped.length, trainable.length, 'each trainable parameter is in exactly one group');
      assert.equal(new Set(grouped).size, trainable.length);
      for (const p of trainable) assert.ok(grouped.includes(p));
      const named = [...m.namedParameters()].filter(([, p]) => p.requiresGrad);
      const noGrad = named.filter(([, p]) => p.grad === null).map(([n]) => n);
      assert.deepEqual(noGrad, [], 'every trainable parameter gets a gradient from the step');

      m.eval();
      T.tidy(() => {
        const x = views[0]!;
        const f = m.features(x);
        const fb = m.frozenBackbone();
        try {
          assert.deepEqual([...f.shape], [cfg.batchSize, fb.dim]);
          assert.deepEqual([...fb.features(x).shape], [cfg.batchSize, fb.dim]);
          const own = new Set(fb.module.stateDict().keys());
          const mapped = [...backboneStateDict(m).keys()];
          assert.ok(mapped.length > 0);
          const outside = mapped.filter((k) => !own.has(k));
          assert.deepEqual(outside, [], 'the key map names keys of the backbone');
        } finally {
          if (fb.owned) fb.module.dispose();
        }
      });
      const keys = new Set(m.stateDict().keys());
      for (const k of m.checkpointExtras) {
        assert.ok(keys.has(k), `checkpoint extra '${k}' is a state-dict key`);
        assert.equal(m.backboneKey(k), null, `checkpoint extra '${k}' is not part of the backbone`);
      }
      for (const v of views) v.dispose();
    } finally {
      m.dispose();
    }
  });
}

it('an unknown method is an error naming the known ones', () => {
  assert.throws(() => methodSpec('byol', 'pretrain'), /\[pretrain\] unknown method 'byol'; expected one of moco, simsiam, mae/);
});
