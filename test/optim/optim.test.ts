// SGD, LARS and AdamW against PyTorch 1.13 trajectories (two groups, per-step schedules, a skipped gradient),
// exact resume through stateDict/loadStateDict, and the optimizers' own rules (validation, zeroGrad, devices).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as T from '../../src/tensor/index.js';
import type { DeviceName, Tensor } from '../../src/tensor/index.js';
import {
  AdamW, LARS, LARC, SGD, adjustLearningRate, type Optimizer, type OptimizerStateDict, type ParamGroupInit,
} from '../../src/optim/index.js';
import { assertClose, nativeAvailable } from '../helpers.js';
import { REGENERATE, loadOptimFixtures, type RunFixture } from './fixtures.js';

const fx = loadOptimFixtures();
const devices: DeviceName[] = nativeAvailable() ? ['reference', 'native'] : ['reference'];

function makeParams(device: DeviceName): Map<string, Tensor> {
  const params = new Map<string, Tensor>();
  for (const { name, shape } of fx.paramShapes) {
    params.set(name, T.keep(T.tensor(fx.init[name]!, shape, { device, requiresGrad: true })));
  }
  return params;
}

function build(run: RunFixture, params: Map<string, Tensor>): Optimizer<object> {
  const pick = (names: string[]): Tensor[] => names.map((n) => params.get(n)!);
  const d = run.defaults;
  const b = run.groupB;
  const groupB = { params: pick(fx.groups[1]), ...b };
  const lr = run.schedule.lr;
  switch (run.optimizer) {
    case 'sgd':
      return new SGD([{ params: pick(fx.groups[0]) }, groupB], { lr, ...d }) as Optimizer<object>;
    case 'lars':
      return new LARS([{ params: pick(fx.groups[0]) }, groupB], { lr, ...d }) as Optimizer<object>;
    case 'larc':
      return new LARC([{ params: pick(fx.groups[0]) }, groupB], { lr, ...d }) as Optimizer<object>;
    case 'adamw': {
      const betas = d['betas'] as [number, number];
      return new AdamW([{ params: pick(fx.groups[0]) }, groupB as ParamGroupInit<object>], { lr, ...d, betas }) as Optimizer<object>;
    }
  }
}

/** One iteration as in the fixture script: schedule, zero grads, set the fixture's gradients, step. */
function iteration(opt: Optimizer<object>, run: RunFixture, params: Map<string, Tensor>, it: number, device: DeviceName): void {
  adjustLearningRate(opt, run.schedule, it / run.itersPerEpoch);
  assertClose(opt.getLr(), run.lrs[it]!, `[${run.name}] group lrs at step ${it}`, 1e-12, 1e-15);
  opt.zeroGrad();
  for (const [name, g] of Object.entries(fx.grads[it]!)) {
    const p = params.get(name)!;
    p.grad = T.keep(T.tensor(g, p.shape, { device }));
  }
  opt.step();
}

function checkParams(run: RunFixture, params: Map<string, Tensor>, it: number, label: string): void {
  for (const [name, expected] of Object.entries(run.params[it]!)) {
    try {
      assertClose(params.get(name)!.data, expected, `[${run.name}] ${label} ${name} after step ${it}`, 0, 1e-5);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n  (${REGENERATE})`);
    }
  }
}

function disposeAll(params: Map<string, Tensor>, opt: Optimizer<object>): void {
  opt.dispose();
  for (const p of params.values()) p.dispose();
}

describe('optimizers match PyTorch trajectories', () => {
  for (const device of devices) {
    for (const run of fx.runs) {
      it(`${run.name} (${device})`, () => {
        const params = makeParams(device);
        const opt = build(run, params);
        for (let it = 0; it < fx.steps; it++) {
          iteration(opt, run, params, it, device);
          checkParams(run, params, it, 'uninterrupted');
        }
        disposeAll(params, opt);
      });
    }
  }
});

describe('stateDict / loadStateDict', () => {
  for (const run of fx.runs) {
    it(`${run.name}: save after step 1, restore into a fresh optimizer, continue identically`, () => {
      const device: DeviceName = 'reference';
      const straight = makeParams(device);
      const optA = build(run, straight);
      for (let it = 0; it < fx.steps; it++) iteration(optA, run, straight, it, device);

      const first = makeParams(device);
      const optB = build(run, first);
      iteration(optB, run, first, 0, device);
      iteration(optB, run, first, 1, device);
      // through JSON and copied arrays, as a checkpoint would store it
      const sd = optB.stateDict();
      const restoredSd: OptimizerStateDict = {
        meta: JSON.parse(JSON.stringify(sd.meta)) as OptimizerStateDict['meta'],
        tensors: Object.fromEntries(Object.entries(sd.tensors).map(([k, v]) => [k, new Float32Array(v)])),
      };
      const resumed = makeParams(device);
      for (const [name, p] of first) (resumed.get(name)!.data as Float32Array).set(p.data as Float32Array);
      const optC = build(run, resumed);
      for (const g of optC.paramGroups) g.lr = 123; // overwritten by the load, as PyTorch restores hyperparameters
      optC.loadStateDict(restoredSd);
      assert.deepEqual(optC.getLr(), optB.getLr());
      for (let it = 2; it < fx.steps; it++) iteration(optC, run, resumed, it, device);
      for (const [name, p] of straight) {
        assert.deepEqual(Array.from(resumed.get(name)!.data), Array.from(p.data), `[${run.name}] ${name} resumed vs uninterrupted`);
      }
      checkParams(run, resumed, fx.steps - 1, 'resumed');
      disposeAll(straight, optA);
      disposeAll(first, optB);
      disposeAll(resumed, optC);
    });
  }

  it('names buffers as PyTorch does and records AdamW step counts (b2 skipped one step)', () => {
    const run = fx.runs.find((r) => r.optimizer === 'adamw')!;
    const params = makeParams('reference');
    const opt = build(run, params);
    for (let it = 0; it < 2; it++) iteration(opt, run, params, it, 'reference');
    const { meta, tensors } = opt.stateDict();
    assert.equal(meta.kind, 'adamw');
    assert.deepEqual(meta.paramGroups.map((g) => g.params), [[0, 1, 2], [3, 4]]);
    assert.equal(meta.state['0']!.step, 2);
    assert.equal(meta.state['4']!.step, 1);
    assert.deepEqual(meta.state['0']!.buffers, ['exp_avg', 'exp_avg_sq']);
    assert.equal(tensors['state.3.exp_avg']!.length, 8);
    assert.equal(meta.paramGroups[1]!.options['lrScale'], run.groupB['lrScale'] ?? 1);
    disposeAll(params, opt);
  });

  it('rejects a state dict of another optimizer or another parameter layout, leaving state untouched', () => {
    const w = T.keep(T.ones([2, 2], { requiresGrad: true }));
    const b = T.keep(T.ones([2], { requiresGrad: true }));
    const sgd = new SGD([w, b], { lr: 0.1, momentum: 0.9 });
    w.grad = T.keep(T.ones([2, 2]));
    sgd.step();
    const sd = sgd.stateDict();
    assert.throws(() => new AdamW([w, b]).loadStateDict(sd), /state dict is for sgd/);
    assert.throws(() => new SGD([w], { lr: 0.1 }).loadStateDict(sd), /has 1 parameters/);
    const bad: OptimizerStateDict = { meta: sd.meta, tensors: { 'state.0.momentum_buffer': new Float32Array(3) } };
    const other = new SGD([w, b], { lr: 0.1, momentum: 0.9 });
    assert.throws(() => other.loadStateDict(bad), /has 3 values/);
    assert.deepEqual(other.stateDict().meta.state, {});
    sgd.dispose();
    other.dispose();
    w.dispose();
    b.dispose();
  });
});

describe('optimizer rules', () => {
  it('zeroGrad disposes gradients, or zeroes them in place', () => {
    const p = T.keep(T.ones([3], { requiresGrad: true }));
    const opt = new SGD([p], { lr: 1 });
    const g = T.keep(T.ones([3]));
    p.grad = g;
    opt.zeroGrad(false);
    assert.equal(p.grad, g);
    assert.deepEqual(Array.from(g.data), [0, 0, 0]);
    opt.zeroGrad();
    assert.equal(p.grad, null);
    assert.ok(g.isDisposed);
    p.dispose();
  });

  it('validates hyperparameters and parameter groups', () => {
    const p = T.keep(T.ones([3], { requiresGrad: true }));
    const q = T.keep(T.ones([3], { requiresGrad: true }));
    assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov/);
    // the base class's checks name the optimizer (it validates before a subclass's fields exist)
    assert.throws(() => new SGD([p], { lr: -1 }), /^Error: \[sgd\] invalid learning rate -1$/);
    assert.throws(() => new AdamW([p], { lr: -1 }), /^Error: \[adamw\] invalid learning rate -1$/);
    assert.throws(() => new LARS([p], { lr: 0.1, weightDecay: -1 }), /^Error: \[lars\] invalid weight decay -1$/);
    assert.throws(() => new LARC([p], { lr: Number.NaN }), /^Error: \[larc\] invalid learning rate NaN$/);
    assert.throws(() => new AdamW([p], { betas: [1, 0.9] }), /beta parameter at index 0/);
    assert.throws(() => new SGD([{ params: [p] }, { params: [q, p] }], { lr: 0.1 }), /more than one parameter group/);
    assert.throws(() => new SGD([], { lr: 0.1 }), /empty parameter list/);
    const opt = new SGD([{ params: [p] }, { params: [q], lr: 0.5, name: 'predictor', fixedLr: true }], { lr: 0.1 });
    assert.deepEqual(opt.getLr(), [0.1, 0.5]);
    assert.equal(opt.paramGroups[1]!.fixedLr, true);
    assert.equal(opt.paramGroups[0]!.lrScale, 1);
    p.dispose();
    q.dispose();
  });

  it('float64 parameters on the reference device follow the same updates', () => {
    const run = fx.runs.find((r) => r.optimizer === 'adamw')!;
    const params = new Map<string, Tensor>();
    for (const { name, shape } of fx.paramShapes) {
      params.set(name, T.keep(T.tensor(fx.init[name]!, shape, { dtype: 'float64', device: 'reference', requiresGrad: true })));
    }
    const opt = build(run, params);
    for (let it = 0; it < fx.steps; it++) {
      adjustLearningRate(opt, run.schedule, it / run.itersPerEpoch);
      opt.zeroGrad();
      for (const [name, g] of Object.entries(fx.grads[it]!)) {
        const p = params.get(name)!;
        p.grad = T.keep(T.tensor(g, p.shape, { dtype: 'float64', device: 'reference' }));
      }
      opt.step();
    }
    checkParams(run, params, fx.steps - 1, 'float64');
    disposeAll(params, opt);
  });

  it('steps on gradients from backward() inside tidy(); state created there survives the scope', () => {
    const w = T.keep(T.tensor([1, -2, 0.5, 3], [2, 2], { requiresGrad: true }));
    const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
    for (let k = 0; k < 3; k++) {
      T.tidy(() => {
        opt.zeroGrad();
        T.sum(T.mul(w, w)).backward(); // grad = 2 w
        opt.step();
      });
    }
    const { tensors } = opt.stateDict();
    assert.equal(tensors['state.0.exp_avg']!.length, 4);
    // Adam's first steps move every coordinate by about lr towards zero
    assertClose(w.data, [0.7, -1.7, 0.2, 2.7], 'AdamW on |w|^2', 0, 1e-2);
    opt.dispose();
    w.dispose();
  });

  it('LARS leaves 1-D parameters without weight decay or trust ratio (plain momentum SGD)', () => {
    const b = T.keep(T.tensor([1, -2, 3], [3], { requiresGrad: true }));
    const lars = new LARS([b], { lr: 0.1, weightDecay: 0.5 });
    b.grad = T.keep(T.tensor([0.5, 0.5, -1], [3]));
    lars.step();
    lars.step();
    // mu = 0.5 g then 0.9 * g + g = 1.9 g; p = p0 - 0.1 * g - 0.1 * 1.9 g
    assertClose(b.data, [1 - 0.29 * 0.5, -2 - 0.29 * 0.5, 3 + 0.29], 'LARS 1-D', 1e-6, 1e-7);
    lars.dispose();
    b.dispose();
  });
});
