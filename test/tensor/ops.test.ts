// Every differentiable op: float64 gradcheck on the reference backend and native-vs-reference agreement,
// across broadcasting, odd sizes, size-1 and zero-size edges.
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { assertClose, checkOp, nativeAvailable, opTest, randomInts, type InputSpec } from '../helpers.js';

const f = (shape: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ shape, ...extra });
const positive: InputSpec['gen'] = (rng) => 0.5 + 2 * rng.uniform();
// keep inputs away from kinks (relu at 0, abs at 0, clamp bounds) so central differences are valid
const awayFromZero: InputSpec['gen'] = (rng) => (rng.uniform() < 0.5 ? -1 : 1) * (0.1 + rng.uniform());

describe('elementwise ops', () => {
  opTest('unary', () => {
    checkOp('neg', T.neg, [f([3, 5])]);
    checkOp('exp', T.exp, [f([4, 7])]);
    checkOp('log', T.log, [f([4, 7], { gen: positive })]);
    checkOp('sqrt', T.sqrt, [f([13], { gen: positive })]);
    checkOp('rsqrt', T.rsqrt, [f([2, 3, 4], { gen: positive })]);
    checkOp('abs', T.abs, [f([17], { gen: awayFromZero })]);
    checkOp('square', T.square, [f([5, 1])]);
    checkOp('relu', T.relu, [f([33], { gen: awayFromZero })]);
    checkOp('gelu', T.gelu, [f([9, 11])]);
    checkOp('sigmoid', T.sigmoid, [f([2, 8])]);
    checkOp('tanh', T.tanh, [f([3, 3])]);
    checkOp('erf', T.erf, [f([10])]);
    checkOp('clamp', (x) => T.clamp(x, -0.5, 0.7), [f([40], { gen: (r) => { const v = r.uniformRange(-1.5, 1.5); return Math.abs(v + 0.5) < 0.05 || Math.abs(v - 0.7) < 0.05 ? v + 0.2 : v; } })]);
    checkOp('addScalar', (x) => T.add(x, 2.5), [f([6])]);
    checkOp('mulScalar', (x) => T.mul(x, -3), [f([6])]);
    checkOp('powScalar', (x) => T.pow(x, 3), [f([6])]);
    checkOp('powScalar fractional', (x) => T.pow(x, 0.5), [f([6], { gen: positive })]);
    checkOp('rsubScalar', (x) => T.rsubScalar(x, 1), [f([6])]);
    checkOp('rdivScalar', (x) => T.rdivScalar(x, 2), [f([6], { gen: positive })]);
  });

  opTest('binary with broadcasting', () => {
    const shapes: [number[], number[]][] = [[[3, 4], [3, 4]], [[3, 4], [4]], [[2, 1, 5], [3, 1]], [[1], [7, 2]], [[], [3]], [[0, 3], [3]], [[4, 1, 1], [1, 2, 3]]];
    for (const [a, b] of shapes) {
      checkOp(`add ${a}|${b}`, T.add, [f(a), f(b)]);
      checkOp(`sub ${a}|${b}`, T.sub, [f(a), f(b)]);
      checkOp(`mul ${a}|${b}`, T.mul, [f(a), f(b)]);
      checkOp(`div ${a}|${b}`, T.div, [f(a), f(b, { gen: positive })]);
    }
    checkOp('pow', T.pow, [f([3, 4], { gen: positive }), f([4])]);
    checkOp('maximum', T.maximum, [f([5, 6]), f([6])]);
    checkOp('minimum', T.minimum, [f([2, 3, 4]), f([3, 1])]);
  });

  opTest('comparisons and where', () => {
    checkOp('gt', (a, b) => T.compare('gt', a!, b!), [f([4, 5]), f([5])], { noGrad: true });
    checkOp('eq', (a) => T.compare('eq', a!, a!), [f([4])], { noGrad: true });
    const mask = Uint8Array.from({ length: 12 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
    checkOp('where', (c, a, b) => T.where(c!, a!, b!), [f([3, 4], { mask }), f([3, 4]), f([4])]);
  });
});

describe('reductions', () => {
  const distinct: InputSpec['gen'] = (rng, i) => i * 0.37 + rng.uniform() * 0.1;
  opTest('sum, mean, var over dims with keepdim', () => {
    checkOp('sum all', (x) => T.sum(x), [f([3, 4, 5])]);
    checkOp('sum dim1', (x) => T.sum(x, 1), [f([3, 4, 5])]);
    checkOp('sum dims 0,2 keepdim', (x) => T.sum(x, [0, 2], true), [f([3, 4, 5])]);
    checkOp('sum -1', (x) => T.sum(x, -1), [f([2, 1, 7])]);
    checkOp('sum zero-size', (x) => T.sum(x, 0), [f([0, 3])]);
    checkOp('mean', (x) => T.mean(x, [1, 2]), [f([2, 3, 4])]);
    checkOp('var', (x) => T.variance(x, 1), [f([3, 6])]);
    checkOp('var biased keepdim', (x) => T.variance(x, 0, true, 0), [f([5, 2])]);
  });
  opTest('max and min', () => {
    checkOp('max all', (x) => T.max(x), [f([4, 5], { gen: distinct })]);
    checkOp('max dim', (x) => T.max(x, 1), [f([4, 5], { gen: (r) => r.normal() })]);
    checkOp('min dim keepdim', (x) => T.min(x, 0, true), [f([3, 6])]);
    checkOp('argmax', (x) => T.argmax(x, 1), [f([4, 9])], { noGrad: true });
    checkOp('argmin', (x) => T.argmin(x, 0, true), [f([4, 9])], { noGrad: true });
  });
});

describe('linear algebra', () => {
  opTest('matmul, batched, transposed, broadcast', () => {
    checkOp('matmul 2d', (a, b) => T.matmul(a!, b!), [f([3, 4]), f([4, 5])]);
    checkOp('matmul odd', (a, b) => T.matmul(a!, b!), [f([7, 13]), f([13, 1])]);
    checkOp('matmul transB', (a, b) => T.matmul(a!, b!, { transB: true }), [f([3, 4]), f([5, 4])]);
    checkOp('matmul transA', (a, b) => T.matmul(a!, b!, { transA: true }), [f([4, 3]), f([4, 5])]);
    checkOp('matmul both', (a, b) => T.matmul(a!, b!, { transA: true, transB: true }), [f([4, 3]), f([5, 4])]);
    checkOp('bmm', (a, b) => T.matmul(a!, b!), [f([2, 3, 4]), f([2, 4, 5])]);
    checkOp('bmm broadcast b', (a, b) => T.matmul(a!, b!), [f([2, 3, 3, 4]), f([4, 2])]);
    checkOp('bmm broadcast batch', (a, b) => T.matmul(a!, b!, { transB: true }), [f([2, 1, 3, 4]), f([1, 3, 5, 4])]);
    checkOp('matvec', (a, b) => T.matmul(a!, b!), [f([3, 4]), f([4])]);
    checkOp('vecmat', (a, b) => T.matmul(a!, b!), [f([4]), f([4, 2])]);
    checkOp('matmul zero K', (a, b) => T.matmul(a!, b!), [f([2, 0]), f([0, 3])]);
  });
  opTest('linear with fused bias', () => {
    checkOp('linear', (x, w, b) => T.linear(x!, w!, b!), [f([5, 6]), f([3, 6]), f([3])]);
    checkOp('linear 3d no bias', (x, w) => T.linear(x!, w!), [f([2, 3, 4]), f([7, 4])]);
    checkOp('linear zero rows', (x, w, b) => T.linear(x!, w!, b!), [f([0, 4]), f([3, 4]), f([3])]);
    checkOp('linear frozen input', (x, w, b) => T.linear(x!, w!, b!), [f([4, 5], { grad: false }), f([2, 5]), f([2])]);
    checkOp('linear frozen weight', (x, w, b) => T.linear(x!, w!, b!), [f([3, 2, 5]), f([4, 5], { grad: false }), f([4], { grad: false })]);
  });
});

describe('convolution and pooling', () => {
  opTest('conv2d: stride, padding, dilation, groups, bias', () => {
    checkOp('conv2d 3x3 pad1', (x, w, b) => T.conv2d(x!, w!, b!, { padding: 1 }), [f([2, 3, 5, 5]), f([4, 3, 3, 3]), f([4])]);
    checkOp('conv2d stride2', (x, w) => T.conv2d(x!, w!, null, { stride: 2, padding: 1 }), [f([1, 2, 7, 6]), f([3, 2, 3, 3])]);
    checkOp('conv2d dilation', (x, w) => T.conv2d(x!, w!, null, { dilation: 2, padding: 2 }), [f([1, 2, 6, 6]), f([2, 2, 3, 3])]);
    checkOp('conv2d groups', (x, w, b) => T.conv2d(x!, w!, b!, { groups: 2, stride: [1, 2] }), [f([2, 4, 5, 5]), f([6, 2, 3, 1]), f([6])]);
    checkOp('conv2d 1x1', (x, w) => T.conv2d(x!, w!), [f([3, 5, 2, 3]), f([4, 5, 1, 1])]);
    checkOp('conv2d batch 0', (x, w) => T.conv2d(x!, w!, null, { padding: 1 }), [f([0, 2, 4, 4]), f([3, 2, 3, 3])]);
  });
  opTest('pools', () => {
    const distinct: InputSpec['gen'] = (rng, i) => ((i * 7919) % 101) * 0.01 + rng.uniform() * 0.001;
    checkOp('maxPool2d', (x) => T.maxPool2d(x!, 3, { stride: 2, padding: 1 }), [f([2, 3, 7, 7], { gen: distinct })]);
    checkOp('maxPool2d 2x2', (x) => T.maxPool2d(x!, 2), [f([1, 2, 4, 6], { gen: distinct })]);
    checkOp('avgPool2d', (x) => T.avgPool2d(x!, 2), [f([2, 2, 4, 4])]);
    checkOp('avgPool2d pad exclude', (x) => T.avgPool2d(x!, 3, { stride: 2, padding: 1, countIncludePad: false }), [f([1, 2, 5, 5])]);
    checkOp('avgPool2d pad include', (x) => T.avgPool2d(x!, 3, { stride: 2, padding: 1 }), [f([1, 2, 5, 5])]);
    checkOp('adaptiveAvgPool2d 1', (x) => T.adaptiveAvgPool2d(x!, 1), [f([2, 3, 4, 4])]);
    checkOp('adaptiveAvgPool2d uneven', (x) => T.adaptiveAvgPool2d(x!, [2, 3]), [f([1, 2, 5, 7])]);
  });
});

describe('normalization and softmax', () => {
  opTest('batchNorm training and eval', () => {
    checkOp('batchNorm2d train', (x, w, b) => T.batchNorm(x!, null, null, w!, b!, { training: true }), [f([4, 3, 3, 2]), f([3]), f([3])]);
    checkOp('batchNorm1d train no affine', (x) => T.batchNorm(x!, null, null, null, null, { training: true }), [f([5, 4])]);
    checkOp('batchNorm eval', (x, m, v, w, b) => T.batchNorm(x!, m!, v!, w!, b!, { training: false }),
      [f([2, 3, 2, 2]), f([3], { grad: false }), f([3], { gen: positive, grad: false }), f([3]), f([3])]);
  });
  opTest('batchNormRelu (fused batch norm + residual add + ReLU)', () => {
    checkOp('batchNormRelu train residual', (x, w, b, r) => T.batchNormRelu(x!, null, null, w!, b!, r!, { training: true }),
      [f([4, 3, 3, 2]), f([3]), f([3]), f([4, 3, 3, 2])]);
    checkOp('batchNormRelu train no affine no residual', (x) => T.batchNormRelu(x!, null, null, null, null, null, { training: true }),
      [f([5, 4])]);
    checkOp('batchNormRelu eval', (x, m, v, w, b, r) => T.batchNormRelu(x!, m!, v!, w!, b!, r!, { training: false }),
      [f([2, 3, 2, 2]), f([3], { grad: false }), f([3], { gen: positive, grad: false }), f([3]), f([3]), f([2, 3, 2, 2])]);
    // the fused op against its composition, float64 on the reference backend: values, running statistics, gradients
    T.tidy(() => {
      const rng = new T.Rng(5);
      const opt = { dtype: 'float64' as const, device: 'reference' as const };
      const x = T.randn([3, 4, 2, 3], { rng, ...opt });
      const r = T.randn([3, 4, 2, 3], { rng, ...opt });
      const w = T.randn([4], { rng, ...opt }), b = T.randn([4], { rng, ...opt });
      const cot = T.randn([3, 4, 2, 3], { rng, ...opt });
      const run = (fused: boolean): Float64Array[] => {
        const [xi, ri, wi, bi] = [x, r, w, b].map((t) => T.clone(t).requiresGrad_()) as [Tensor, Tensor, Tensor, Tensor];
        const rm = T.zeros([4], opt), rv = T.ones([4], opt);
        const y = fused ? T.batchNormRelu(xi, rm, rv, wi, bi, ri, { training: true })
          : T.relu(T.add(T.batchNorm(xi, rm, rv, wi, bi, { training: true }), ri));
        T.mul(y, cot).sum().backward();
        return [y, rm, rv, xi.grad!, ri.grad!, wi.grad!, bi.grad!].map((t) => Float64Array.from(t.data));
      };
      const fused = run(true), composed = run(false);
      fused.forEach((a, i) => assertClose(a, composed[i]!, `batchNormRelu fused vs composed output ${i}`, 1e-12, 1e-12));
    });
    assert.throws(() => T.batchNormRelu(T.zeros([2, 3, 2]), null, null, null, null, T.zeros([2, 3, 3]), { training: true }),
      /\[batchNormRelu\] residual \[2, 3, 3\] does not match input \[2, 3, 2\]/);
  });
  opTest('layerNorm', () => {
    checkOp('layerNorm', (x, w, b) => T.layerNorm(x!, w!, b!), [f([4, 7]), f([7]), f([7])]);
    checkOp('layerNorm 3d no affine', (x) => T.layerNorm(x!, null, null, 1e-6), [f([2, 3, 5])]);
  });
  opTest('softmax and logSoftmax', () => {
    checkOp('softmax', (x) => T.softmax(x!, -1), [f([3, 5])]);
    checkOp('softmax dim0', (x) => T.softmax(x!, 0), [f([4, 3])]);
    checkOp('logSoftmax', (x) => T.logSoftmax(x!, 1), [f([2, 6, 3])]);
    checkOp('softmax large', (x) => T.softmax(x!), [f([2, 4], { gen: (r) => 50 + r.normal() })]);
  });
  opTest('fused attention', () => {
    checkOp('attention 2 heads', (qkv) => T.attention(qkv!, 2, 0.35), [f([2, 5, 3 * 2 * 4])]);
    checkOp('attention 1 head 1 token', (qkv) => T.attention(qkv!, 1, 0.5), [f([3, 1, 3 * 3])]);
    checkOp('attention large scores', (qkv) => T.attention(qkv!, 3, 2), [f([1, 7, 3 * 3 * 2], { gen: (r) => 3 * r.normal() })]);
    checkOp('attention zero-size', (qkv) => T.attention(qkv!, 2, 0.5), [f([0, 4, 3 * 2 * 2])]);
  });
  opTest('fused attention = split heads, scaledDotProductAttention, merge heads (the composed version)', () => {
    for (const device of ['reference', 'native'] as const) {
      if (device === 'native' && !nativeAvailable()) continue;
      const [B, N, H, hd] = [3, 9, 2, 5];
      const C = H * hd;
      const qkv = T.randn([B, N, 3 * C], { rng: new T.Rng(3), device, requiresGrad: true });
      const cot = T.randn([B, N, C], { rng: new T.Rng(4), device });
      const fusedOut = T.attention(qkv, H, 0.4);
      T.sum(T.mul(fusedOut, cot)).backward();
      const fusedGrad = Float64Array.from(qkv.grad!.data);
      qkv.grad = null;
      const heads = T.permute(T.reshape(qkv, [B, N, 3, H, hd]), [2, 0, 3, 1, 4]); // [3, B, H, N, hd]
      const [q, k, v] = [0, 1, 2].map((i) => T.reshape(T.slice(heads, 0, i, i + 1), [B, H, N, hd])) as [Tensor, Tensor, Tensor];
      const composed = T.reshape(T.permute(T.scaledDotProductAttention(q, k, v, { scale: 0.4 }), [0, 2, 1, 3]), [B, N, C]);
      T.sum(T.mul(composed, cot)).backward();
      assertClose(fusedOut.data, composed.data, `attention ${device} out`, 1e-5, 1e-6);
      assertClose(fusedGrad, qkv.grad!.data, `attention ${device} grad`, 1e-4, 1e-6);
    }
  });
  opTest('fused MLP (fc1 + GELU + fc2)', () => {
    checkOp('mlp', (x, w1, b1, w2, b2) => T.mlp(x!, w1!, b1!, w2!, b2!), [f([2, 3, 4]), f([6, 4]), f([6]), f([5, 6]), f([5])]);
    checkOp('mlp no biases', (x, w1, w2) => T.mlp(x!, w1!, null, w2!, null), [f([7, 3]), f([5, 3]), f([2, 5])]);
    checkOp('mlp large pre-activations', (x, w1, b1, w2, b2) => T.mlp(x!, w1!, b1!, w2!, b2!),
      [f([3, 4], { gen: (r) => 3 * r.normal() }), f([9, 4]), f([9]), f([4, 9]), f([4])]);
    checkOp('linear with residual', (x, w, b, r) => T.linear(x!, w!, b!, r!), [f([2, 3, 4]), f([5, 4]), f([5]), f([2, 3, 5])]);
    checkOp('mlp with residual', (x, w1, b1, w2, b2, r) => T.mlp(x!, w1!, b1!, w2!, b2!, r!),
      [f([2, 3, 4]), f([6, 4]), f([6]), f([5, 6]), f([5]), f([2, 3, 5])]);
    checkOp('mlp zero-size', (x, w1, b1, w2, b2) => T.mlp(x!, w1!, b1!, w2!, b2!), [f([0, 4]), f([6, 4]), f([6]), f([3, 6]), f([3])]);
  });
  opTest('a residual added inside the matmul (linear, mlp) equals the separate add bit for bit in fp32', () => {
    if (!nativeAvailable()) return;
    const rng = new T.Rng(11);
    // ViT-Tiny-like rows: enough that oneDNN runs its blocked kernels, with the post-op on every tile
    const x = T.randn([4, 17, 48], { rng, device: 'native' });
    const [w, b, w1, b1, w2, b2] = [[48, 48], [48], [96, 48], [96], [48, 96], [48]].map((sh) => T.randn(sh, { rng, device: 'native' }));
    const r = T.randn([4, 17, 48], { rng, device: 'native' });
    T.enableProfiler();
    const fused = T.profile(() => [T.linear(x, w!, b!, r).toArray(), T.mlp(x, w1!, b1!, w2!, b2!, r).toArray()]);
    assert.deepEqual(fused.report.rows.map((row) => row.name).filter((n) => /^(linearAdd|binary)/.test(n)), ['linearAdd'],
      'both sums ran inside the matmul, none as an add');
    const [lin, mlp] = fused.result;
    assert.deepEqual(lin, T.add(r, T.linear(x, w!, b!)).toArray(), 'linear');
    assert.deepEqual(mlp, T.add(r, T.mlp(x, w1!, b1!, w2!, b2!)).toArray(), 'mlp');
  });
  opTest('fused MLP = linear, gelu, linear (the composed version)', () => {
    for (const device of ['reference', 'native'] as const) {
      if (device === 'native' && !nativeAvailable()) continue;
      const rng = new T.Rng(5);
      // pre-activations spread over [-6, 6] so both GELU tails are exercised
      const x = T.mulScalar(T.randn([3, 33, 20], { rng, device }), 2).detach();
      x.requiresGrad = true;
      const params = [[40, 20], [40], [17, 40], [17]].map((s) => T.randn(s, { rng, device, requiresGrad: true }));
      const [w1, b1, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor];
      const cot = T.randn([3, 33, 17], { rng, device });
      const all = [x, ...params];
      const run = (fused: boolean): { out: Float64Array; grads: Float64Array[] } => {
        for (const t of all) t.grad = null;
        const out = fused ? T.mlp(x, w1, b1, w2, b2) : T.linear(T.gelu(T.linear(x, w1, b1)), w2, b2);
        T.sum(T.mul(out, cot)).backward();
        return { out: Float64Array.from(out.data), grads: all.map((t) => Float64Array.from(t.grad!.data)) };
      };
      const fused = run(true), composed = run(false);
      assertClose(fused.out, composed.out, `mlp ${device} out`, 1e-5, 1e-5);
      fused.grads.forEach((g, k) => assertClose(g, composed.grads[k]!, `mlp ${device} grad of input ${k}`, 1e-4, 1e-5));
    }
  });
  opTest('mlp rejects weights that do not chain', () => {
    assert.throws(() => T.mlp(T.zeros([2, 4]), T.zeros([6, 4]), null, T.zeros([3, 5]), null), /^Error: \[mlp\] fc2 weight \[3, 5\] does not take fc1's 6 outputs/);
    assert.throws(() => T.mlp(T.zeros([2, 3]), T.zeros([6, 4]), null, T.zeros([3, 6]), null), /^Error: \[mlp\] input \[2, 3\] does not end in 4 \(fc1 weight \[6, 4\]\)/);
    assert.throws(() => T.mlp(T.zeros([2, 4]), T.zeros([6, 4]), null, T.zeros([3, 6]), T.zeros([4])), /^Error: \[mlp\] bias \[4\] does not match fc2 weight \[3, 6\]/);
    assert.throws(() => T.linear(T.zeros([2, 4]), T.zeros([3, 4]), null, T.zeros([3, 2])), /^Error: \[linear\] residual \[3, 2\] does not match the output \[2, 3\]/);
    assert.throws(() => T.mlp(T.zeros([2, 4]), T.zeros([6, 4]), null, T.zeros([3, 6]), null, T.zeros([2, 4])), /^Error: \[mlp\] residual \[2, 4\] does not match the output \[2, 3\]/);
  });
  opTest('attention rejects a qkv that does not split into heads', () => {
    assert.throws(() => T.attention(T.zeros([2, 3, 10]), 2, 1), /^Error: \[attention\] last dim 10 of qkv \[2, 3, 10\] is not 3 x 2 heads/);
    assert.throws(() => T.attention(T.zeros([3, 12]), 2, 1), /^Error: \[attention\] expected qkv \[B, N, 3 \* C\], got \[3, 12\]/);
  });
  opTest('crossEntropy: hard labels, smoothing, soft targets', () => {
    const labels = randomInts(6, 5);
    checkOp('crossEntropy', (x, y) => T.crossEntropy(x!, y!), [f([6, 5]), f([6], { int: labels })]);
    checkOp('crossEntropy smoothing', (x, y) => T.crossEntropy(x!, y!, { labelSmoothing: 0.1 }), [f([6, 5]), f([6], { int: labels })]);
    checkOp('crossEntropy soft', (x, y) => T.crossEntropy(x!, y!, { reduction: 'sum' }), [f([3, 4]), f([3, 4], { gen: positive, grad: false })]);
  });
  opTest('l2Normalize, cosineSimilarity, attention', () => {
    checkOp('l2Normalize', (x) => T.l2Normalize(x!, 1), [f([4, 6])]);
    checkOp('cosineSimilarity', (a, b) => T.cosineSimilarity(a!, b!, 1), [f([4, 6]), f([4, 6])]);
    checkOp('attention', (q, k, v) => T.scaledDotProductAttention(q!, k!, v!), [f([2, 2, 5, 4]), f([2, 2, 5, 4]), f([2, 2, 5, 4])]);
  });
});

describe('layout and indexing', () => {
  opTest('reshape, permute, transpose, expand, slice, concat, stack, split', () => {
    checkOp('reshape', (x) => T.reshape(x!, [6, -1]), [f([2, 3, 4])]);
    checkOp('permute', (x) => T.permute(x!, [2, 0, 1]), [f([2, 3, 4])]);
    checkOp('transpose', (x) => T.transpose(x!, 0, 1), [f([3, 5])]);
    checkOp('expand', (x) => T.expand(x!, [3, 2, 4]), [f([2, 1])]);
    checkOp('slice', (x) => T.slice(x!, 1, 1, 3), [f([2, 4, 3])]);
    checkOp('slice negative', (x) => T.slice(x!, -1, -2), [f([3, 5])]);
    checkOp('slice empty', (x) => T.slice(x!, 0, 2, 2), [f([3, 5])]);
    checkOp('concat', (a, b, c) => T.concat([a!, b!, c!], 1), [f([2, 1, 3]), f([2, 4, 3]), f([2, 0, 3])]);
    checkOp('stack', (a, b) => T.stack([a!, b!], 1), [f([2, 3]), f([2, 3])]);
    checkOp('split', (x) => { const [a, b] = T.split(x!, [1, 3], 0); return T.mul(a!, T.sum(b!, 0, true)); }, [f([4, 2])]);
  });
  opTest('gather, scatterAdd, indexSelect, topk', () => {
    const idx = randomInts(12, 5, 3);
    checkOp('gather', (x, i) => T.gather(x!, 1, i!), [f([3, 5]), f([3, 4], { int: idx })]);
    checkOp('scatterAdd', (x, i, s) => T.scatterAdd(x!, 1, i!, s!), [f([3, 5]), f([3, 4], { int: idx }), f([3, 4])]);
    checkOp('indexSelect', (x, i) => T.indexSelect(x!, 0, i!), [f([5, 3]), f([7], { int: randomInts(7, 5, 9) })]);
    checkOp('indexSelect dim1', (x, i) => T.indexSelect(x!, 1, i!), [f([2, 5, 3]), f([4], { int: randomInts(4, 5, 2) })]);
    checkOp('topk', (x) => T.topk(x!, 3, 1).values, [f([4, 6])]);
    checkOp('argsort', (x) => T.argsort(x!, 1, true), [f([3, 7])], { noGrad: true });
  });
  opTest('dropout keeps expectation and is seeded', () => {
    checkOp('dropout', (x) => T.dropout(x!, 0.3, true, new T.Rng(5)), [f([50])]);
    const p = 0.3;
    const n = 200_000;
    const x = T.ones([n], { device: 'reference' });
    const y = T.dropout(x, p, true, new T.Rng(11));
    const v = y.toArray();
    // kept entries are scaled by 1/(1-p), dropped ones are 0
    const kept = v.filter((e) => e !== 0);
    assert.ok(kept.every((e) => Math.abs(e - 1 / (1 - p)) < 1e-6), 'kept entries are 1/(1-p)');
    // E[y] = x: the mean of n draws is within 5 standard errors (sd of one draw: sqrt(p/(1-p)))
    const mean = v.reduce((a, b) => a + b, 0) / n;
    const se = Math.sqrt(p / (1 - p) / n);
    assert.ok(Math.abs(mean - 1) < 5 * se, `mean ${mean} differs from 1 by more than 5 standard errors (${se})`);
    assert.ok(Math.abs(kept.length / n - (1 - p)) < 5 * Math.sqrt(p * (1 - p) / n), `keep rate ${kept.length / n}`);
    assert.deepEqual(T.dropout(x, p, true, new T.Rng(11)).toArray(), v, 'the same seed gives the same mask');
    assert.deepEqual(T.dropout(x, p, false, new T.Rng(11)).toArray(), x.toArray(), 'the identity in eval');
  });
});

export type { Tensor };
