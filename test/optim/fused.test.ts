// The multi-tensor optimizer kernels (native/optim.cc) against the per-parameter loops they replace, which stay as
// the oracle: several steps of SGD (momentum, Nesterov, dampening), AdamW and LARS over groups of native float32
// parameters of different sizes, parameters and state compared.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { SGD, AdamW, LARS, setFusedOptimizers, type Optimizer } from '../../src/optim/index.js';
import { nativeAvailable } from '../helpers.js';

type Make = (params: T.Tensor[]) => Optimizer<object>;

/** Runs `steps` optimizer steps on fresh parameters with fixed pseudo-random gradients; returns params and state. */
function run(make: Make, fused: boolean, steps = 3): number[][] {
  const old = setFusedOptimizers(fused);
  try {
    const rng = new T.Rng(11);
    // sizes straddle the kernels' 16384-element chunks; a 1-D parameter takes LARS's non-adaptive branch
    const params = [[40000], [7, 5], [3, 3, 3, 3], [9]].map((s) => T.keep(T.randn(s, { rng, device: 'native', requiresGrad: true })));
    const opt = make(params);
    for (let k = 0; k < steps; k++) {
      for (const p of params) {
        p.grad?.dispose();
        p.grad = T.keep(T.randn(p.shape, { rng, device: 'native' }));
      }
      opt.step();
    }
    const sd = opt.stateDict();
    const out = [...params.map((p) => p.toArray()), ...Object.keys(sd.tensors).sort().map((k) => Array.from(sd.tensors[k]!))];
    for (const p of params) p.dispose();
    opt.disposeState();
    return out;
  } finally {
    setFusedOptimizers(old);
  }
}

function close(a: number[][], b: number[][], what: string): void {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} arrays`);
  a.forEach((x, k) => {
    let worst = 0;
    x.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - b[k]![i]!) / Math.max(1, Math.abs(v))); });
    // the same double arithmetic, no fused multiply-adds, float stores: the same bits
    assert.equal(worst, 0, `${what}: array ${k} differs by ${worst}`);
  });
}

describe('fused optimizer steps', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  const cases: [string, Make][] = [
    ['SGD momentum + wd', (p) => new SGD(p, { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 })],
    ['SGD nesterov', (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 })],
    ['SGD dampening', (p) => new SGD(p, { lr: 0.05, momentum: 0.8, dampening: 0.3 })],
    ['SGD no momentum', (p) => new SGD(p, { lr: 0.05, weightDecay: 1e-3 })],
    ['AdamW', (p) => new AdamW(p, { lr: 1e-2, betas: [0.9, 0.95], weightDecay: 0.05 })],
    ['LARS', (p) => new LARS(p, { lr: 0.2, momentum: 0.9, weightDecay: 1e-6 })],
  ];
  for (const [name, make] of cases) {
    test(`${name}: fused kernel == per-parameter loop`, () => {
      const fused = run(make, true);
      const loop = run(make, false);
      close(fused, loop, name);
      // and the step did something
      assert.notDeepEqual(fused[1], run(make, true, 0)[1]);
    });
  }
});

describe('fused MoCo momentum update', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  test('emaUpdate == k * m + q * (1 - m) composed from ops, bit for bit', () => {
    const rng = new T.Rng(4);
    const shapes = [[40000], [7, 5], [3]];
    const ks = shapes.map((s) => T.keep(T.randn(s, { rng })));
    const qs = shapes.map((s) => T.keep(T.randn(s, { rng })));
    const m = 0.99;
    const composed = T.tidy(() => ks.map((k, i) => T.add(T.mul(k, m), T.mul(qs[i]!, 1 - m)).toArray()));
    ks[0]!.backend.emaUpdate!(ks.map((k) => k.data as Float32Array), qs.map((q) => q.data as Float32Array), m);
    ks.forEach((k, i) => assert.deepEqual(k.toArray(), composed[i]));
    for (const t of [...ks, ...qs]) t.dispose();
  });
});
