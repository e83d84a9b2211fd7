// Module tree behaviour: PyTorch naming and order, state dicts, strict loading, modes, freezing, devices, layers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import {
  BatchNorm1d, BatchNorm2d, Block, Conv2d, DropPath, Dropout, LayerNorm, Linear, Module, Mlp, ReLU, Sequential, Attention,
} from '../../src/nn/index.js';
import { resnet18Cifar, vitTinyPatch4 } from '../../src/models/index.js';
import { nativeAvailable } from '../helpers.js';
import { assertClose } from '../helpers.js';

const f = { device: 'reference' as const, rng: new T.Rng(3) };

class Net extends Module {
  constructor() {
    super();
    this.registerModule('features', new Sequential(new Conv2d(3, 4, 3, { bias: false }, f), new BatchNorm2d(4, {}, f), new ReLU()));
    this.registerModule('fc', new Linear(4, 2, true, f));
    this.registerParameter('scale', T.ones([1], { device: 'reference' }));
  }
}

test('names and order follow PyTorch: own parameters first, then children in registration order', () => {
  const n = new Net();
  assert.deepEqual([...n.namedParameters()].map(([k]) => k), ['scale', 'features.0.weight', 'features.1.weight', 'features.1.bias', 'fc.weight', 'fc.bias']);
  assert.deepEqual([...n.namedBuffers()].map(([k]) => k), ['features.1.running_mean', 'features.1.running_var', 'features.1.num_batches_tracked']);
  assert.deepEqual([...n.stateDict().keys()], ['scale', 'features.0.weight', 'features.1.weight', 'features.1.bias',
    'features.1.running_mean', 'features.1.running_var', 'features.1.num_batches_tracked', 'fc.weight', 'fc.bias']);
  assert.equal(n.numParameters(), 1 + 108 + 8 + 10);
  assert.equal(n.stateDict().get('features.1.num_batches_tracked')!.dtype, 'int32');
  assert.throws(() => new Sequential().registerModule('a.b', new ReLU()), /invalid name/);
});

test('strict loading throws listing every problem and changes nothing; non-strict reports and loads the rest', () => {
  const a = new Net();
  const b = new Net();
  const sd = new Map(a.stateDict());
  sd.delete('fc.bias');
  sd.set('extra.weight', T.zeros([2], { device: 'reference' }));
  sd.set('fc.weight', T.zeros([3, 4], { device: 'reference' }));
  const before = b.stateDict().get('features.0.weight')!.toArray();
  assert.throws(() => b.loadStateDict(sd), (e: Error) =>
    /missing keys: fc\.bias/.test(e.message) && /unexpected keys: extra\.weight/.test(e.message)
    && /fc\.weight \(expected \[2, 4\], got \[3, 4\]\)/.test(e.message));
  assert.deepEqual(b.stateDict().get('features.0.weight')!.toArray(), before);
  const r = b.loadStateDict(sd, { strict: false });
  assert.deepEqual(r.missing, ['fc.bias']);
  assert.deepEqual(r.unexpected, ['extra.weight']);
  assert.deepEqual(r.mismatched.map((m) => m.key), ['fc.weight']);
  assert.deepEqual(b.stateDict().get('features.0.weight')!.toArray(), a.stateDict().get('features.0.weight')!.toArray());
  // values are copied in place: the module's tensors stay the same objects
  const w = b.stateDict().get('scale');
  b.loadStateDict(a.stateDict());
  assert.equal(b.stateDict().get('scale'), w);
  // dtype conversion while loading (float64 checkpoint into float32 module)
  const sd64 = new Map([...a.stateDict()].map(([k, t]) => [k, t.dtype === 'float32' ? T.to(t, 'reference', 'float64') : t]));
  b.loadStateDict(sd64);
  assert.equal(b.stateDict().get('fc.weight')!.dtype, 'float32');
});

test('train/eval, freezing, zeroGrad and replacing a child', () => {
  const n = new Net();
  n.eval();
  for (const m of n.modules()) assert.equal(m.training, false);
  n.train();
  n.child('features').requiresGrad_(false);
  assert.equal(n.numParameters({ trainableOnly: true }), 1 + 10);
  const x = T.randn([2, 3, 5, 5], { device: 'reference', rng: new T.Rng(1) });
  T.tidy(() => {
    const feat = T.mean(n.child<Sequential>('features').forward(x), [2, 3]);
    n.child<Linear>('fc').forward(feat).sum().backward();
  });
  assert.equal(n.stateDict().get('features.0.weight')!.grad, null, 'frozen parameters get no grad');
  assert.ok(n.stateDict().get('fc.weight')!.grad !== null);
  n.zeroGrad();
  assert.equal(n.stateDict().get('fc.weight')!.grad, null);
  n.registerModule('fc', new Sequential(new Linear(4, 8, true, f), new ReLU(), new Linear(8, 2, true, f)));
  assert.ok(n.stateDict().has('fc.2.bias'));
  assert.ok(!n.stateDict().has('fc.weight'));
});

test('batch norm: running statistics, num_batches_tracked, cumulative momentum, eval mode and no affine', () => {
  const bn = new BatchNorm1d(3, { momentum: null }, f);
  const x1 = T.tensor([1, 2, 3, 3, 6, 9], [2, 3], { device: 'reference' });
  bn.forward(x1);
  bn.forward(T.mulScalar(x1, 2));
  assert.equal(bn.numBatchesTracked!.item(), 2);
  // cumulative average: mean of the two batch means
  assertClose(bn.runningMean!.data, [3, 6, 9], 'running mean');
  // unbiased variances: batch 1 -> [2, 8, 18], batch 2 -> [8, 32, 72]; average
  assertClose(bn.runningVar!.data, [5, 20, 45], 'running var');
  bn.eval();
  const y = bn.forward(x1);
  assertClose(y.data, [1, 2, 3, 3, 6, 9].map((v, i) => (v - [3, 6, 9][i % 3]!) / Math.sqrt([5, 20, 45][i % 3]! + 1e-5)), 'eval uses running stats');
  assert.equal(bn.numBatchesTracked!.item(), 2, 'eval does not count batches');
  const plain = new BatchNorm2d(2, { affine: false, trackRunningStats: false }, f);
  assert.equal([...plain.stateDict().keys()].length, 0);
  plain.eval();
  const z = plain.forward(T.randn([2, 2, 2, 2], { device: 'reference', rng: new T.Rng(2) }));
  assertClose([T.mean(z).item()], [0], 'untracked BN normalises with batch stats in eval', 1e-6, 1e-6);
});

test('DropPath (timm semantics, seeded) and Dropout', () => {
  const x = T.ones([1000, 4], { device: 'reference' });
  const dp = new DropPath(0.25, new T.Rng(5));
  const y = dp.forward(x).toArray();
  for (let i = 0; i < 1000; i++) {
    const row = y.slice(i * 4, i * 4 + 4);
    assert.ok(row.every((v) => v === row[0]) && (row[0] === 0 || Math.abs(row[0]! - 1 / 0.75) < 1e-6), 'whole samples dropped, kept ones scaled');
  }
  const kept = y.filter((v, i) => i % 4 === 0 && v !== 0).length / 1000;
  assert.ok(Math.abs(kept - 0.75) < 0.05, `keep rate ${kept}`);
  assert.deepEqual(new DropPath(0.25, new T.Rng(5)).forward(x).toArray(), y, 'same seed, same mask');
  dp.eval();
  assert.equal(dp.forward(x), x);
  const d = new Dropout(0.5, new T.Rng(1));
  d.eval();
  assert.equal(d.forward(x), x);
});

test('LayerNorm, Mlp, Attention and Block names and shapes', () => {
  const b = new Block(16, 4, { mlpRatio: 2 }, f);
  assert.deepEqual([...b.stateDict().keys()], ['norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
    'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias']);
  const x = T.randn([2, 5, 16], { device: 'reference', rng: new T.Rng(1) });
  assert.deepEqual([...b.forward(x).shape], [2, 5, 16]);
  assert.equal(new LayerNorm(16).eps, 1e-5);
  assert.equal(b.norm1.eps, 1e-6);
  assert.throws(() => new Attention(10, 3), /not divisible/);
  assert.deepEqual([...new Mlp(16, 32, 8, 0, f).forward(x).shape], [2, 5, 8]);
});

test('to(device, dtype) moves every parameter and buffer, keeping int buffers and requiresGrad', () => {
  const m = resnet18Cifar({ width: 0.125 }, f);
  m.child('layer1').requiresGrad_(false);
  m.to('reference', 'float64');
  for (const [k, t] of m.stateDict()) assert.equal(t.dtype, k.endsWith('num_batches_tracked') ? 'int32' : 'float64', k);
  assert.equal(m.numParameters({ trainableOnly: true }) < m.numParameters(), true);
  const y = m.forward(T.randn([2, 3, 8, 8], { device: 'reference', dtype: 'float64', rng: new T.Rng(1) }));
  assert.deepEqual([...y.shape], [2, 10]);
  if (nativeAvailable()) {
    m.to('native', 'float32');
    for (const [, t] of m.stateDict()) assert.equal(t.device, 'native');
    m.dispose();
  }
});

test('backbones: feature extraction with numClasses 0, fc replacement, zeroInitResidual, ViT pooling', () => {
  const r = resnet18Cifar({ width: 0.125, numClasses: 0, zeroInitResidual: true }, f);
  const x = T.randn([2, 3, 8, 8], { device: 'reference', rng: new T.Rng(1) });
  assert.deepEqual([...r.forward(x).shape], [2, 64]);
  assert.equal(r.numFeatures, 64);
  for (const [k, t] of r.stateDict()) if (/layer\d\.\d\.bn2\.weight/.test(k)) assert.ok(t.toArray().every((v) => v === 0), k);
  assert.ok(r.stateDict().get('bn1.weight')!.toArray().every((v) => v === 1));
  r.fc = new Linear(64, 7, true, f);
  assert.deepEqual([...r.forward(x).shape], [2, 7]);
  const v = vitTinyPatch4({ depth: 1, numClasses: 0 }, f);
  const img = T.randn([2, 3, 32, 32], { device: 'reference', rng: new T.Rng(2) });
  assert.deepEqual([...v.forward(img).shape], [2, 192]);
  assert.equal(v.posEmbed.requiresGrad, false, 'MAE: fixed sin-cos position embedding');
  assert.ok(v.clsToken.requiresGrad);
});
