// bf16 storage of a ResNet's activations in bf16 precision (autocast keeps conv outputs in bf16): conv writes its
// blocked output as bf16, batch norm reads and writes it, and conv reads it. Each kernel that takes bf16 storage must
// give, bit for bit, what its f32 twin gives on the same values widened to f32, with the output rounded once to
// bf16; a training step must track fp32 like bf16 without the storage does, with about half the activation memory.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import type { ConvParams } from '../../src/backend/backend.js';
import { nativeAddon, nativeAvailable, setBf16Storage, setPrecision } from '../../src/backend/native.js';
import { resnet18Cifar } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/index.js';

const native = nativeAvailable();
const skip = !native ? 'native addon not built'
  : !nativeAddon().info().nativeBf16 ? 'no native bf16 on this CPU'
  : nativeAddon().activationLayout() === 'plain' ? 'bf16 storage needs the blocked layout' : false;

/** f32 -> bf16 bits, rounded to nearest even (NaN stays NaN), as native/common.h to_bf16. */
function toBf16(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const h = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const v = u[i]!;
    h[i] = (v & 0x7fffffff) > 0x7f800000 ? (v >>> 16) | 0x40 : (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
  return h;
}
function widen(h: Uint16Array): Float32Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i]! << 16;
  return new Float32Array(u.buffer);
}
const bytes = (h: Uint16Array): Uint8Array => new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
const u16 = (b: Uint8Array): Uint16Array => new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);

function randomF32(n: number, seed: number, shift = 0): Float32Array {
  const rng = new T.Rng(seed);
  const t = T.randn([n], { rng });
  const f = Float32Array.from(t.toArray(), (v) => v + shift);
  t.dispose();
  return f;
}
/** The index of the first bf16 value that differs, or -1. */
function firstDiff(a: Uint16Array, b: Uint16Array): number {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('bf16 storage', { skip }, () => {
  const N = 4, C = 32, HW = 9, n = N * C * HW, eps = 1e-5;

  test('batch norm (+ residual + ReLU) on bf16 storage is its f32 kernel on the widened values, output rounded once', () => {
    const a = nativeAddon();
    const xh = toBf16(randomF32(n, 1, 0.5)), rh = toBf16(randomF32(n, 2)), gy = randomF32(n, 3);
    const gamma = randomF32(C, 4, 1), beta = randomF32(C, 5);
    for (const relu of [true, false]) {
      const what = relu ? 'batch norm + ReLU' : 'batch norm';
      const out32 = new Float32Array(n), m32 = new Float32Array(C), s32 = new Float32Array(C);
      const outH = new Uint16Array(n), mH = new Float32Array(C), sH = new Float32Array(C);
      if (relu) {
        a.batchNormReluForward(out32, m32, s32, widen(xh), widen(rh), gamma, beta, N, C, HW, eps, true);
        a.batchNormReluForward(bytes(outH), mH, sH, bytes(xh), bytes(rh), gamma, beta, N, C, HW, eps, true);
      } else {
        a.batchNormForward(out32, m32, s32, widen(xh), gamma, beta, N, C, HW, eps, true);
        a.batchNormForward(bytes(outH), mH, sH, bytes(xh), gamma, beta, N, C, HW, eps, true);
      }
      assert.deepEqual(mH, m32, `${what}: mean`);
      assert.deepEqual(sH, s32, `${what}: invstd`);
      assert.equal(firstDiff(outH, toBf16(out32)), -1, `${what}: out is the f32 output rounded to bf16`);
      if (relu) assert.ok(outH.some((v) => v === 0) && outH.some((v) => v !== 0 && v < 0x8000), 'ReLU clamps some, not all');
      // backward: the mask from the stored (rounded) output in both
      const y = widen(outH);
      const g32 = [new Float32Array(n), new Float32Array(n), new Float32Array(C), new Float32Array(C)] as const;
      const gH = [new Float32Array(n), new Float32Array(n), new Float32Array(C), new Float32Array(C)] as const;
      if (relu) {
        a.batchNormReluBackward(g32[0], g32[1], g32[2], g32[3], gy, y, widen(xh), m32, s32, gamma, N, C, HW, true);
        a.batchNormReluBackward(gH[0], gH[1], gH[2], gH[3], gy, bytes(outH), bytes(xh), mH, sH, gamma, N, C, HW, true);
      } else {
        a.batchNormBackward(g32[0], g32[2], g32[3], gy, widen(xh), m32, s32, gamma, N, C, HW, true);
        a.batchNormBackward(gH[0], gH[2], gH[3], gy, bytes(xh), mH, sH, gamma, N, C, HW, true);
      }
      ['gx', 'gresidual', 'ggamma', 'gbeta'].forEach((name, k) => {
        if (!relu && k === 1) return;
        assert.deepEqual(gH[k], g32[k], `${what} backward: ${name}`);
      });
      assert.ok(g32[0].some((v) => v !== 0), `${what}: gx is not all zero`);
    }
    // inference
    const mean = randomF32(C, 6), variance = Float32Array.from(randomF32(C, 7), (v) => 0.5 + v * v);
    const inf32 = new Float32Array(n), infH = new Uint16Array(n);
    a.batchNormInference(inf32, widen(xh), mean, variance, gamma, beta, N, C, HW, eps, true);
    a.batchNormInference(bytes(infH), bytes(xh), mean, variance, gamma, beta, N, C, HW, eps, true);
    assert.equal(firstDiff(infH, toBf16(inf32)), -1, 'inference: out is the f32 output rounded to bf16');
  });

  test('batch norm refuses a mix of bf16 and f32 activations, and bf16 storage outside the blocked layout', () => {
    const a = nativeAddon();
    const xh = new Uint16Array(n), gamma = new Float32Array(C).fill(1);
    assert.throws(() => a.batchNormReluForward(new Float32Array(n), new Float32Array(C), new Float32Array(C), bytes(xh),
      null, gamma, null, N, C, HW, eps, true), /\[batchNormReluForward\] out, x, residual must all be in bf16 storage or all f32/);
    assert.throws(() => a.batchNormForward(bytes(new Uint16Array(n)), new Float32Array(C), new Float32Array(C), bytes(xh),
      gamma, null, N, C, HW, eps, false), /\[batchNormForward\] activations in bf16 storage must be flagged blocked/);
  });

  test('conv reads and writes bf16 storage as its f32 twin on the widened values, the output rounded once', () => {
    const a = nativeAddon();
    setPrecision('bf16');
    try {
      // a 3x3 conv (bf16 passes), a strided 1x1 shortcut (its forward and backward-weights run in f32) and an RGB
      // stem (f32 passes; its input is an NCHW image)
      const cases: [string, ConvParams, boolean][] = [
        ['3x3', { N: 2, C: 32, H: 8, W: 8, O: 32, KH: 3, KW: 3, OH: 8, OW: 8, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1 }, true],
        ['1x1/2', { N: 2, C: 32, H: 8, W: 8, O: 64, KH: 1, KW: 1, OH: 4, OW: 4, strideH: 2, strideW: 2, padH: 0, padW: 0, dilationH: 1, dilationW: 1, groups: 1 }, true],
        ['stem', { N: 2, C: 3, H: 8, W: 8, O: 16, KH: 3, KW: 3, OH: 8, OW: 8, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1 }, false],
      ];
      for (const [name, p, xHalf] of cases) {
        const nx = p.N * p.C * p.H * p.W, ny = p.N * p.O * p.OH * p.OW, nw = p.O * p.C * p.KH * p.KW;
        const xh = toBf16(randomF32(nx, 11)), w = randomF32(nw, 12), bias = randomF32(p.O, 13), gy = randomF32(ny, 14);
        const x32 = xHalf ? widen(xh) : randomF32(nx, 11);
        const out32 = new Float32Array(ny), outH = new Uint16Array(ny);
        assert.equal(a.conv2d(out32, x32, w, bias, p, xHalf, true), true, `${name}: the f32 output is blocked`);
        assert.equal(a.conv2d(bytes(outH), xHalf ? bytes(xh) : x32, w, bias, p, xHalf, true), true, `${name}: bf16 out is blocked`);
        assert.equal(firstDiff(outH, toBf16(out32)), -1, `${name}: out is the f32-stored output rounded to bf16`);
        if (!xHalf) continue;
        const gw32 = new Float32Array(nw), gwH = new Float32Array(nw), gb32 = new Float32Array(p.O), gbH = new Float32Array(p.O);
        a.conv2dBackwardWeight(gw32, gb32, gy, x32, p, true, true);
        a.conv2dBackwardWeight(gwH, gbH, gy, bytes(xh), p, true, true);
        assert.deepEqual(gwH, gw32, `${name}: gw from bf16 storage`);
        assert.deepEqual(gbH, gb32, `${name}: gb`);
      }
      const p = cases[0]![1];
      assert.throws(() => a.conv2d(bytes(new Uint16Array(p.N * p.O * 64)), new Float32Array(p.N * p.C * 64),
        new Float32Array(p.O * p.C * 9), null, p, false, false), /\[conv2d\] out is in bf16 storage, which needs the activation block layout/);
      assert.throws(() => a.conv2d(new Float32Array(p.N * p.O * 64), bytes(new Uint16Array(p.N * p.C * 64)),
        new Float32Array(p.O * p.C * 9), null, p, false, true), /\[conv2d\] x is in bf16 storage, which needs the activation block layout/);
    } finally {
      setPrecision('fp32');
    }
  });

  test('tensors in bf16 storage read back as f32, in NCHW or blocked, and views regroup them', () => {
    const rng = new T.Rng(21);
    const x = T.keep(T.randn([2, 16, 6, 6], { rng }));
    const w = T.keep(T.randn([32, 16, 3, 3], { rng }));
    setPrecision('bf16');
    let ref: number[];
    try {
      setBf16Storage(false);
      ref = T.tidy(() => T.conv2d(x, w, null, { padding: 1 }).toArray());
      setBf16Storage(true);
      T.tidy(() => {
        const y = T.conv2d(x, w, null, { padding: 1 });
        assert.notEqual(y.bf16Data, null, 'the conv output is in bf16 storage');
        assert.equal(y.bf16Data!.byteLength, 2 * y.size, '2 bytes a value');
        const v = y.view([1, 64, 6, 6]); // batch regrouped into channels (SplitBatchNorm)
        assert.notEqual(v.bf16Data, null, 'a regrouping view reads the same bf16 storage');
        assert.equal(y.view([2, 32, 36, 1]).bf16Data, null, 'a view that moves pixels does not');
        const got = y.toArray();
        assert.equal(y.bf16Data, null, 'reading the values widens the storage to f32');
        assert.deepEqual(got, Array.from(widen(toBf16(Float32Array.from(ref)))), 'the values are the f32 ones rounded to bf16');
        const z = T.conv2d(x, w, null, { padding: 1 });
        assert.notEqual(z.blockedData, null, 'blockedData widens in place, still blocked');
        assert.equal(z.bf16Data, null);
        assert.deepEqual(z.toArray(), got);
      });
    } finally {
      setBf16Storage(true);
      setPrecision('fp32');
      x.dispose();
      w.dispose();
    }
  });

  test('a ResNet-18 trains in bf16 with bf16 storage as it does without, on about half the activation memory', () => {
    const rng = new T.Rng(5);
    const x = T.keep(T.randn([32, 3, 32, 32], { rng }));
    const labels = T.keep(T.randint([32], 0, 10, { rng }));
    const run = (precision: 'fp32' | 'bf16', storage: boolean): { losses: number[]; live: number } => {
      const net = resnet18Cifar({ width: 0.5 }, { rng: new T.Rng(9) });
      net.train();
      const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9 });
      setPrecision(precision);
      setBf16Storage(storage);
      const losses: number[] = [];
      let live = 0;
      try {
        for (let s = 0; s < 4; s++) {
          losses.push(T.tidy(() => {
            const before = nativeAddon().memoryStats().liveBytes;
            const loss = T.crossEntropy(net.forward(x), labels);
            live = nativeAddon().memoryStats().liveBytes - before; // what the graph holds for the backward
            opt.zeroGrad();
            loss.backward();
            opt.step();
            return loss.item();
          }));
        }
      } finally {
        setPrecision('fp32');
        setBf16Storage(true);
        for (const p of net.parameters()) { p.grad?.dispose(); p.dispose(); }
        opt.disposeState();
      }
      return { losses, live };
    };
    const f32 = run('fp32', false), plain = run('bf16', false), stored = run('bf16', true);
    for (const [name, r] of [['bf16', plain], ['bf16 + storage', stored]] as const) {
      r.losses.forEach((l, s) => assert.ok(Math.abs(l - f32.losses[s]!) < 0.03 * f32.losses[s]!,
        `${name} step ${s}: loss ${l} vs fp32 ${f32.losses[s]}`));
    }
    assert.ok(f32.losses[3]! < f32.losses[0]! - 0.1, `the steps learn: ${f32.losses.join(', ')}`);
    assert.notDeepEqual(stored.losses, plain.losses, 'bf16 storage rounds the activations');
    const ratio = stored.live / plain.live;
    assert.ok(ratio > 0.4 && ratio < 0.65, `activation memory with bf16 storage / without: ${stored.live} / ${plain.live} = ${ratio.toFixed(3)}`);
    x.dispose();
    labels.dispose();
  });
});
