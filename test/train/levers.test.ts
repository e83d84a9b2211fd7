// The speed levers of a training step change no numbers beyond float32 rounding: for each method at a tiny size on
// the native backend, trainStep (activations freed during backward, multi-tensor optimizer kernels) against the plain
// path (graph kept until the step ends, per-parameter optimizer loops), parameters compared after three steps. They
// must agree to the bit: AdamW turns any last-bit difference in a zero-mean gradient (MAE's key biases) into +-lr.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { METHOD_NAMES, buildMethod } from '../../src/methods/registry.js';
import { trainStep } from '../../src/train/pretrain.js';
import { SGD, AdamW, setFusedOptimizers } from '../../src/optim/index.js';
import { setFusedBatchNormRelu } from '../../src/nn/layers.js';
import { benchConfig, benchOptimizer } from '../../bench/configs.js';
import { assertClose, nativeAvailable } from '../helpers.js';
import { nativeAddon } from '../../src/backend/native.js';
import { tinyConfig } from '../eval/tiny-run.js';
import { Module } from '../../src/nn/module.js';
import { Attention, Mlp, setFusedMlp } from '../../src/nn/transformer.js';

/** One training step's loss within 1e-6 and every parameter gradient within 1e-4 of its largest entry (float32 rounding). */
function assertSameStep(fused: { loss: number; grads: Float32Array[] }, composed: { loss: number; grads: Float32Array[] }): void {
  assert.ok(Math.abs(fused.loss - composed.loss) <= 1e-6 * Math.abs(composed.loss), `loss ${fused.loss} vs ${composed.loss}`);
  assert.equal(fused.grads.length, composed.grads.length);
  fused.grads.forEach((g, k) => {
    const ref = composed.grads[k]!;
    const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    let worst = 0;
    g.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - ref[i]!)); });
    assert.ok(worst <= 1e-4 * scale + 1e-9, `gradient ${k}: max difference ${worst} against a largest entry ${scale}`);
  });
}

/**
 * One training step of the MAE bench config at batch 8 (weights from seed 0, images from seed 1): its loss and every
 * parameter gradient. configure switches a lever on the built model before the step.
 */
function maeBenchStep(configure: (model: Module) => void): { loss: number; grads: Float32Array[] } {
  const cfg = benchConfig('mae', 8);
  const model = buildMethod(cfg, new T.Rng(0));
  assert.ok(model instanceof Module);
  configure(model);
  const views = [T.keep(T.randn([cfg.batchSize, 3, cfg.imgSize, cfg.imgSize], { rng: new T.Rng(1) }))];
  try {
    model.train();
    const loss = T.tidy(() => {
      const { loss: l } = model.trainingStep(views);
      l.backward();
      return l.item();
    });
    return { loss, grads: model.parameters().filter((p) => p.requiresGrad).map((p) => Float32Array.from(p.grad!.data)) };
  } finally {
    views[0]!.dispose();
    model.dispose();
  }
}

describe('training-step levers', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  for (const name of METHOD_NAMES) {
    test(`${name}: trainStep with the levers == the plain step`, () => {
      const cfg = tinyConfig(name, 'unused', 'unused');
      const run = (fast: boolean): Float32Array[] => {
        const old = setFusedOptimizers(fast);
        const model = buildMethod(cfg, new T.Rng(0));
        const params = model.parameters().filter((p) => p.requiresGrad);
        const opt = name === 'mae' ? new AdamW(params, { lr: 1e-3, betas: [0.9, 0.95], weightDecay: 0.05 })
          : new SGD(params, { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
        const rng = new T.Rng(1);
        const views = Array.from({ length: model.viewsPerSample }, () => T.keep(T.randn([cfg.batchSize, 3, cfg.imgSize, cfg.imgSize], { rng })));
        try {
          model.train();
          for (let s = 0; s < 3; s++) {
            if (fast) {
              trainStep(model, opt, views, 0);
            } else {
              T.tidy(() => {
                const { loss } = model.trainingStep(views);
                opt.zeroGrad();
                loss.backward();
                opt.step();
              });
            }
          }
          return model.parameters().map((p) => Float32Array.from(p.data));
        } finally {
          setFusedOptimizers(old);
          for (const v of views) v.dispose();
          opt.disposeState();
          model.dispose();
        }
      };
      const fast = run(true);
      const plain = run(false);
      assert.equal(fast.length, plain.length);
      fast.forEach((a, k) => {
        let worst = 0;
        a.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - plain[k]![i]!) / Math.max(1, Math.abs(v))); });
        assert.equal(worst, 0, `${name}: parameter ${k} differs by ${worst}`);
      });
    });
  }
});

// The fused kernels against the composed ops they replace, on the MAE bench config itself (ViT-Tiny/4, mask 0.75):
// the loss and every parameter gradient of one step agree within float32 rounding.
describe('fused kernels on the MAE bench config', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  test('fused attention == split heads, scaledDotProductAttention, merge heads: loss and gradients', () => {
    const run = (fused: boolean): { loss: number; grads: Float32Array[] } => maeBenchStep((model) => {
      let attentions = 0;
      for (const m of model.modules()) if (m instanceof Attention) { m.fused = fused; attentions++; }
      assert.equal(attentions, 12 + 4, 'the encoder and decoder blocks');
    });
    const fused = run(true);
    const composed = run(false);
    assertSameStep(fused, composed);
  });
});

// The fused MLP (T.mlp: fc1 + GELU saving GELU's derivative, fc2's backward scaled by it) against linear, gelu,
// linear, on the MAE bench config (ViT-Tiny/4, mask 0.75) at batch 8: the loss and every parameter gradient of one
// step agree within float32 rounding (gradients, not parameters after AdamW steps: AdamW turns a last-bit difference in
// a near-zero gradient into +-lr).
describe('fused MLP on the MAE bench config', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  test('fused MLP == linear, gelu, linear: loss and gradients', () => {
    const run = (fused: boolean): { loss: number; grads: Float32Array[] } => {
      const old = setFusedMlp(fused);
      try {
        return maeBenchStep((model) => {
          assert.equal([...model.modules()].filter((m) => m instanceof Mlp).length, 12 + 4, 'the encoder and decoder blocks');
        });
      } finally {
        setFusedMlp(old);
      }
    };
    const fused = run(true);
    const composed = run(false);
    assertSameStep(fused, composed);
  });
});

type StepRun = { losses: number[]; params: Float32Array[] };
/**
 * Two training steps of a bench:train config (batch 8, 16x16 views, MoCo's queue cut to 256) from fixed weights and
 * inputs, with `setup` applied first (it returns what undoes it): the losses and every parameter afterwards.
 */
function benchConfigSteps(name: 'simsiam' | 'moco', setup: () => () => void): StepRun {
  const cfg = { ...benchConfig(name, 8), imgSize: 16 };
  if (name === 'moco') cfg.moco = { ...cfg.moco, K: 256 };
  const restore = setup();
  const model = buildMethod(cfg, new T.Rng(0));
  const opt = benchOptimizer(name, model.parameters().filter((p) => p.requiresGrad));
  const rng = new T.Rng(1);
  const views = Array.from({ length: model.viewsPerSample }, () => T.keep(T.randn([8, 3, cfg.imgSize, cfg.imgSize], { rng })));
  try {
    model.train();
    const losses = [0, 1].map(() => trainStep(model, opt, views, 0).loss);
    return { losses, params: model.parameters().map((p) => Float32Array.from(p.data)) };
  } finally {
    restore();
    for (const v of views) v.dispose();
    opt.disposeState();
    model.dispose();
  }
}

// The fused batch norm + residual add + ReLU kernel (BatchNorm2d.forwardRelu, SplitBatchNorm2d's) against the
// composed ops, on the bench:train configs themselves (ResNet-18, SimSiam's heads, MoCo v2's SplitBatchNorm(8) and
// queue) at batch 8 on 16x16 views (the test's time): the loss and every parameter after two steps agree within float32
// rounding.
describe('fused batch norm + ReLU on the bench configs', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  for (const name of ['simsiam', 'moco'] as const) {
    test(`${name}: training steps with the fused kernel == the composed ops`, () => {
      const run = (fused: boolean): StepRun => benchConfigSteps(name, () => {
        const old = setFusedBatchNormRelu(fused);
        return () => setFusedBatchNormRelu(old);
      });
      const fused = run(true), composed = run(false);
      fused.losses.forEach((l, i) => assert.ok(Math.abs(l - composed.losses[i]!) <= 1e-4 * Math.max(1, Math.abs(l)),
        `${name}: loss of step ${i} ${l} (fused) vs ${composed.losses[i]} (composed)`));
      fused.params.forEach((a, k) => assertClose(a, composed.params[k]!, `${name}: parameter ${k} after two steps`, 1e-4, 1e-5));
    });
  }
});

// oneDNN's Winograd conv kernels (convAlgo 'winograd': every 3x3 stride-1 conv of ResNet-18, forward and both
// backward passes, wherever the CPU has them) against its direct kernels: SimSiam and MoCo v2 bench configs at batch 8
// on 16x16 views, two steps. SimSiam: the losses and every parameter within float32 rounding. MoCo at this size is
// ill-conditioned (SplitBatchNorm over one sample per split; BN biases whose updates are sums that cancel): merely
// running the same direct kernels in the plain layout (another order of the same float32 sums) moves some parameter
// by 4e-2 of its largest entry. There the losses must agree within float32 rounding and Winograd may move the
// parameters no more than 4x what that reordering does.
function worstRelative(a: StepRun, b: StepRun): number {
  let worst = 0;
  a.params.forEach((p, k) => {
    const q = b.params[k]!;
    let scale = 0, diff = 0;
    q.forEach((v, i) => { scale = Math.max(scale, Math.abs(v)); diff = Math.max(diff, Math.abs(v - p[i]!)); });
    worst = Math.max(worst, diff / Math.max(scale, 1e-12));
  });
  return worst;
}
describe('Winograd conv on the bench configs', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  for (const name of ['simsiam', 'moco'] as const) {
    test(`${name}: training steps with Winograd conv == direct conv`, () => {
      const addon = nativeAddon();
      const run = (algo: 'winograd' | 'direct', layout: 'blocked' | 'plain' = 'blocked'): StepRun => benchConfigSteps(name, () => {
        const saved = [addon.convAlgo(), addon.convLayout()] as const;
        addon.convAlgo(algo);
        addon.convLayout(layout);
        return () => { addon.convAlgo(saved[0]); addon.convLayout(saved[1]); };
      });
      const wino = run('winograd'), direct = run('direct');
      wino.losses.forEach((l, i) => assert.ok(Math.abs(l - direct.losses[i]!) <= 1e-4 * Math.max(1, Math.abs(l)),
        `${name}: loss of step ${i} ${l} (Winograd) vs ${direct.losses[i]} (direct)`));
      if (name === 'simsiam') {
        wino.params.forEach((a, k) => assertClose(a, direct.params[k]!, `${name}: parameter ${k} after two steps`, 1e-4, 1e-5));
      } else {
        const reordered = worstRelative(run('direct', 'plain'), direct), winograd = worstRelative(wino, direct);
        assert.ok(winograd <= 4 * reordered, `${name}: Winograd moved a parameter by ${winograd.toExponential(2)} of its ` +
          `largest entry, the direct kernels in the plain layout by ${reordered.toExponential(2)}`);
      }
    });
  }
});
