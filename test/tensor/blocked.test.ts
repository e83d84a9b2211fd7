// Activations kept in oneDNN's channel-blocked layout between layers (native backend): nChw16c with AVX-512, nChw8c
// with AVX2, plain where oneDNN's conv prefers neither or SELFSUP_LAYOUT=plain. Every expectation here follows the
// layout the addon reports for the running CPU (asked of oneDNN's primitive descriptors), never a constant: the layout
// kernels against the NCHW ones, layout propagation through conv -> batch norm -> ReLU -> add, and whole ResNet steps
// with blocking on and off. CI runs this file at the best ISA, under ONEDNN_MAX_CPU_ISA=AVX2 and with the plain layout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as T from '../../src/tensor/index.js';
import { Rng, type Tensor } from '../../src/tensor/index.js';
import { checkNativeEnv, nativeAddon, setBlockedActivations } from '../../src/backend/native.js';
import { resnet18Cifar } from '../../src/models/index.js';
import { SplitBatchNorm2d } from '../../src/methods/moco.js';
import { assertClose, nativeAvailable } from '../helpers.js';

const skip = !nativeAvailable();

function randomF32(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** The channel block activations are kept in now, as the addon reports it (0: plain). */
function activationBlock(): number {
  const layout = nativeAddon().activationLayout();
  return layout === 'plain' ? 0 : Number(/^nChw(\d+)c$/.exec(layout)![1]);
}

/** nChw{L}c by index arithmetic: element (n, c, s) of NCHW goes to ((n * C/L + c/L) * HW + s) * L + c % L. */
function toBlockedJs(x: Float32Array, N: number, C: number, HW: number, L: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let s = 0; s < HW; s++) out[((n * (C / L) + Math.floor(c / L)) * HW + s) * L + (c % L)] = x[(n * C + c) * HW + s]!;
    }
  }
  return out;
}

test('the activation layout is the one oneDNN prefers here, or plain when conv runs plain', { skip }, () => {
  const { isa, convLayout, preferredBlock, activationLayout } = nativeAddon().info();
  assert.ok([0, 8, 16].includes(preferredBlock), `preferred block ${preferredBlock} on ${isa}`);
  const expected = convLayout === 'plain' || preferredBlock === 0 ? 'plain' : `nChw${preferredBlock}c`;
  assert.equal(activationLayout, expected, `on ${isa} with conv layout ${convLayout}`);
  assert.equal(nativeAddon().activationLayout(), expected);
  assert.equal(convLayout, checkNativeEnv().layout === 'plain' ? 'plain' : 'blocked', 'SELFSUP_LAYOUT applied');
});

test('bad SELFSUP_LAYOUT, SELFSUP_CONV_ALGO, SELFSUP_BF16_STORAGE and ONEDNN_MAX_CPU_ISA values are errors naming the variable and the accepted values', () => {
  assert.throws(() => checkNativeEnv({ SELFSUP_LAYOUT: 'nchw16' }),
    /SELFSUP_LAYOUT='nchw16' is not a layout mode; accepted values: auto .*; reorder .*; plain/);
  assert.throws(() => checkNativeEnv({ ONEDNN_MAX_CPU_ISA: 'AVX3' }),
    /ONEDNN_MAX_CPU_ISA='AVX3' is not an ISA oneDNN 2.6 knows; accepted values: SSE41, AVX, AVX2,.*ALL/);
  assert.throws(() => checkNativeEnv({ DNNL_MAX_CPU_ISA: 'avx-512' }), /DNNL_MAX_CPU_ISA='avx-512'/);
  assert.throws(() => checkNativeEnv({ SELFSUP_CONV_ALGO: 'wino' }),
    /\[native\] SELFSUP_CONV_ALGO='wino' is not a conv algorithm; accepted values: auto .*; direct .*; winograd/);
  assert.throws(() => checkNativeEnv({ SELFSUP_BF16_STORAGE: '0' }),
    /\[native\] SELFSUP_BF16_STORAGE='0' is not a storage mode; accepted values: on .*; off /);
  assert.deepEqual(checkNativeEnv({ ONEDNN_MAX_CPU_ISA: 'avx2', SELFSUP_LAYOUT: 'reorder', SELFSUP_CONV_ALGO: 'direct',
    SELFSUP_BF16_STORAGE: 'off' }), { layout: 'reorder', convAlgo: 'direct', bf16Storage: 'off' });
  assert.deepEqual(checkNativeEnv({}), { layout: 'auto', convAlgo: 'auto', bf16Storage: 'on' });
});

test('relayout: NCHW <-> the blocked layout in place, as the index formula says', { skip }, () => {
  const addon = nativeAddon();
  const L = activationBlock();
  const [N, C, H, W] = [3, 32, 5, 7];
  const x = randomF32(N * C * H * W, 1);
  const buf = addon.alloc('float32', x.length, false) as Float32Array;
  buf.set(x);
  if (L === 0) {
    assert.throws(() => addon.relayout(buf, N, C, H, W, true), /\[relayout\] no blocked activation layout is in use/);
    addon.free(buf);
    return;
  }
  addon.relayout(buf, N, C, H, W, true);
  assert.deepEqual(Array.from(buf), Array.from(toBlockedJs(x, N, C, H * W, L)));
  addon.relayout(buf, N, C, H, W, false);
  assert.deepEqual(Array.from(buf), Array.from(x));
  const bad = L + L / 2; // channels that are not a multiple of the block
  assert.throws(() => addon.relayout(buf.subarray(0, 2 * bad * 35), 2, bad, 5, 7, true),
    new RegExp(`\\[relayout\\] nChw${L}c needs channels in multiples of ${L}, got ${bad}`));
  addon.free(buf);
});

test('batch norm kernels on the blocked layout equal the NCHW kernels (training, inference, backward)', { skip }, () => {
  const addon = nativeAddon();
  const L = activationBlock();
  if (L === 0) {
    const z = new Float32Array(32);
    assert.throws(() => addon.batchNormInference(z, z, z, z, null, null, 1, 32, 1, 1e-5, true),
      /no blocked activation layout is in use/);
    return;
  }
  // 16 channels are one block of nChw16c: the sums split the batch into shares (batch_shares in norm.cc)
  for (const [N, C, H, W] of [[4, 32, 3, 5], [37, 16, 5, 7], [9, 48, 2, 2]] as [number, number, number, number][]) {
  const HW = H * W;
  const size = N * C * HW;
  const x = randomF32(size, 2), gy = randomF32(size, 3), gamma = randomF32(C, 4), beta = randomF32(C, 5);
  const variance = randomF32(C, 6).map((v) => v * v + 0.5);
  const block = (a: Float32Array): Float32Array => toBlockedJs(a, N, C, HW, L);
  for (const affine of [true, false]) {
    const g = affine ? gamma : null, b = affine ? beta : null;
    const [y1, m1, s1] = [new Float32Array(size), new Float32Array(C), new Float32Array(C)];
    const [y2, m2, s2] = [new Float32Array(size), new Float32Array(C), new Float32Array(C)];
    addon.batchNormForward(y1, m1, s1, x, g, b, N, C, HW, 1e-5);
    addon.batchNormForward(y2, m2, s2, block(x), g, b, N, C, HW, 1e-5, true);
    assertClose(y2, block(y1), `forward affine=${affine}`, 1e-5, 1e-6);
    assertClose(m2, m1, 'mean', 1e-6, 1e-7);
    assertClose(s2, s1, 'invstd', 1e-6, 1e-7);
    const [i1, i2] = [new Float32Array(size), new Float32Array(size)];
    addon.batchNormInference(i1, x, m1, variance, g, b, N, C, HW, 1e-5);
    addon.batchNormInference(i2, block(x), m1, variance, g, b, N, C, HW, 1e-5, true);
    assertClose(i2, block(i1), `inference affine=${affine}`, 1e-6, 1e-7);
    const [gx1, gx2] = [new Float32Array(size), new Float32Array(size)];
    const [gg1, gg2, gb1, gb2] = [new Float32Array(C), new Float32Array(C), new Float32Array(C), new Float32Array(C)];
    addon.batchNormBackward(gx1, affine ? gg1 : null, affine ? gb1 : null, gy, x, m1, s1, g, N, C, HW);
    addon.batchNormBackward(gx2, affine ? gg2 : null, affine ? gb2 : null, block(gy), block(x), m1, s1, g, N, C, HW, true);
    assertClose(gx2, block(gx1), `backward affine=${affine}`, 1e-5, 1e-6);
    assertClose(gg2, gg1, `dgamma [${N}, ${C}, ${H}, ${W}]`, 1e-5, 1e-6);
    assertClose(gb2, gb1, `dbeta [${N}, ${C}, ${H}, ${W}]`, 1e-5, 1e-6);
  }
  }
});

test('blocked batch norm statistics merged from cache-sized shares equal the NCHW kernel\'s (offset, drifting means)', { skip }, () => {
  const addon = nativeAddon();
  const L = activationBlock();
  if (L === 0) return;
  // 40 images of 48x48: more than 256 KB per block, so the forward cuts the batch into more (and uneven) shares than
  // batch_shares alone (stat_shares in norm.cc). Each image's mean drifts (100 + 0.05 n) and the noise is small, so
  // the merge must add the spread of the shares' means (Chan's term) and must not lose digits to the offset of 100.
  const [N, C, H, W] = [40, 16, 48, 48];
  const HW = H * W;
  const noise = randomF32(N * C * HW, 11);
  const x = noise.map((v, i) => 100 + 0.05 * Math.floor(i / (C * HW)) + 0.01 * v);
  const [y1, m1, s1] = [new Float32Array(x.length), new Float32Array(C), new Float32Array(C)];
  const [y2, m2, s2] = [new Float32Array(x.length), new Float32Array(C), new Float32Array(C)];
  addon.batchNormReluForward(y1, m1, s1, x, null, null, null, N, C, HW, 1e-5);
  addon.batchNormReluForward(y2, m2, s2, toBlockedJs(x, N, C, HW, L), null, null, null, N, C, HW, 1e-5, true);
  assertClose(m2, m1, 'mean', 1e-7, 0);
  assertClose(s2, s1, 'invstd', 2e-6, 0);
  assertClose(y2, toBlockedJs(y1, N, C, HW, L), 'forward', 1e-4, 1e-4);
  // the spread of the image means dominates the variance: 0.05^2 (N^2 - 1) / 12 + 0.01^2
  const expected = 1 / Math.sqrt((0.05 ** 2 * (N * N - 1)) / 12 + 1e-4 + 1e-5);
  for (let c = 0; c < C; c++) assert.ok(Math.abs(s2[c]! - expected) / expected < 0.01, `invstd[${c}] ${s2[c]} vs ${expected}`);
});

test('fused batch norm + residual add + ReLU on the blocked layout matches the NCHW kernels (where a blocked layout is in use)', { skip }, () => {
  const L = activationBlock();
  if (L === 0) {
    assert.throws(() => nativeAddon().batchNormReluForward(new Float32Array(32), new Float32Array(32), new Float32Array(32),
      new Float32Array(32), null, null, null, 1, 32, 1, 1e-5, true), /\[batchNormReluForward\] activations are flagged blocked/);
    return;
  }
  const addon = nativeAddon();
  for (const [N, C, H, W] of [[4, 32, 3, 5], [37, 16, 5, 7], [9, 48, 2, 2]] as [number, number, number, number][]) {
  const HW = H * W;
  const size = N * C * HW;
  const x = randomF32(size, 2), r = randomF32(size, 7), gy = randomF32(size, 3), gamma = randomF32(C, 4), beta = randomF32(C, 5);
  const block = (a: Float32Array): Float32Array => toBlockedJs(a, N, C, HW, L);
  for (const [affine, res] of [[true, true], [false, false]] as [boolean, boolean][]) {
    const g = affine ? gamma : null, b = affine ? beta : null, rr = res ? r : null;
    const [y1, m1, s1] = [new Float32Array(size), new Float32Array(C), new Float32Array(C)];
    const [y2, m2, s2] = [new Float32Array(size), new Float32Array(C), new Float32Array(C)];
    addon.batchNormReluForward(y1, m1, s1, x, rr, g, b, N, C, HW, 1e-5);
    addon.batchNormReluForward(y2, m2, s2, block(x), rr && block(rr), g, b, N, C, HW, 1e-5, true);
    assertClose(y2, block(y1), `forward affine=${affine} residual=${res}`, 1e-5, 1e-6);
    assertClose(m2, m1, 'mean', 1e-6, 1e-7);
    assertClose(s2, s1, 'invstd', 1e-6, 1e-7);
    const [gx1, gx2, gr1, gr2] = [new Float32Array(size), new Float32Array(size), new Float32Array(size), new Float32Array(size)];
    const [gg1, gg2, gb1, gb2] = [new Float32Array(C), new Float32Array(C), new Float32Array(C), new Float32Array(C)];
    addon.batchNormReluBackward(gx1, res ? gr1 : null, affine ? gg1 : null, affine ? gb1 : null, gy, y1, x, m1, s1, g, N, C, HW);
    addon.batchNormReluBackward(gx2, res ? gr2 : null, affine ? gg2 : null, affine ? gb2 : null, block(gy), block(y1), block(x),
      m1, s1, g, N, C, HW, true);
    assertClose(gx2, block(gx1), `backward affine=${affine} residual=${res}`, 1e-5, 1e-6);
    if (res) assertClose(gr2, block(gr1), 'gresidual', 0, 0);
    if (affine) {
      assertClose(gg2, gg1, `dgamma [${N}, ${C}, ${H}, ${W}]`, 1e-5, 1e-6);
      assertClose(gb2, gb1, `dbeta [${N}, ${C}, ${H}, ${W}]`, 1e-5, 1e-6);
    }
  }
  }
});

test('conv -> fused batch norm + add + ReLU stays blocked and equals the composed ops, values and gradients', { skip }, () => {
  const run = (fused: boolean): { outs: Float32Array[]; blocked: boolean } => T.tidy(() => {
    const rng = new Rng(9);
    const x = T.randn([2, 3, 6, 6], { rng, device: 'native' });
    const w1 = T.randn([16, 3, 3, 3], { rng, device: 'native' }).requiresGrad_();
    const w2 = T.randn([16, 3, 3, 3], { rng, device: 'native' }).requiresGrad_();
    const gamma = T.randn([16], { rng, device: 'native' }).requiresGrad_();
    const beta = T.randn([16], { rng, device: 'native' }).requiresGrad_();
    const y = T.conv2d(x, w1, null, { padding: 1 });
    const res = T.conv2d(x, w2, null, { padding: 1 });
    const out = fused ? T.batchNormRelu(y, null, null, gamma, beta, res, { training: true })
      : T.relu(T.add(T.batchNorm(y, null, null, gamma, beta, { training: true }), res));
    const blocked = out.storage.blocked !== null;
    T.mul(out, T.randn([2, 16, 6, 6], { rng: new Rng(4), device: 'native' })).sum().backward();
    return { outs: [out, w1.grad!, w2.grad!, gamma.grad!, beta.grad!].map((t) => Float32Array.from(t.data)), blocked };
  });
  const fused = run(true), composed = run(false);
  assert.equal(fused.blocked, activationBlock() > 0, `the fused output stays in ${nativeAddon().activationLayout()}`);
  fused.outs.forEach((o, i) => assertClose(o, composed.outs[i]!, `fused vs composed ${i}`, 1e-4, 1e-5));
});

test('conv -> batch norm -> ReLU -> add stay blocked (where a blocked layout is in use), and reading any of them gives the NCHW values', { skip }, () => {
  const run = (blocked: boolean): { outs: Float32Array[]; flags: boolean[] } => {
    const old = setBlockedActivations(blocked);
    try {
      return T.tidy(() => {
        const rng = new Rng(7);
        const x = T.randn([2, 3, 6, 6], { rng, device: 'native' });
        const w1 = T.randn([16, 3, 3, 3], { rng, device: 'native' });
        const w2 = T.randn([16, 16, 3, 3], { rng, device: 'native' });
        const y1 = T.conv2d(x, w1, null, { padding: 1 });
        const b1 = T.batchNorm(y1, null, null, null, null, { training: true });
        const r1 = T.relu(b1);
        const y2 = T.conv2d(r1, w2, null, { padding: 1 });
        const s = T.add(y2, r1);
        const flags = [y1, b1, r1, y2, s].map((t) => t.storage.blocked !== null);
        // one operand plain: the blocked one is read (turned back into NCHW) and the result is plain
        const mixed = T.add(s, T.ones([2, 16, 6, 6], { device: 'native' }));
        flags.push(s.storage.blocked !== null, mixed.storage.blocked !== null);
        const ts: Tensor[] = [y1, b1, r1, y2, s, mixed];
        return { outs: ts.map((t) => Float32Array.from(t.data)), flags };
      });
    } finally {
      setBlockedActivations(old);
    }
  };
  const on = run(true), off = run(false);
  // 16 channels: a multiple of every block oneDNN uses, so they stay blocked wherever a blocked layout is in use
  const b = activationBlock() > 0;
  assert.deepEqual(on.flags, [b, b, b, b, b, false, false], `which outputs stayed in ${nativeAddon().activationLayout()}`);
  assert.deepEqual(off.flags, [false, false, false, false, false, false, false]);
  on.outs.forEach((o, i) => assertClose(o, off.outs[i]!, `output ${i}`, 1e-5, 1e-5));
});

test('ResNet-18 (CIFAR stem) training step: same loss and gradients with blocked activations on and off', { skip }, () => {
  const step = (blocked: boolean): Float32Array[] => {
    const old = setBlockedActivations(blocked);
    try {
      return T.tidy(() => {
        const m = resnet18Cifar({ width: 0.25, numClasses: 10 }, { device: 'native', rng: new Rng(3) });
        const rng = new Rng(11);
        const x = T.randn([4, 3, 16, 16], { rng, device: 'native' });
        const labels = T.tensor([1, 3, 5, 7], [4], { dtype: 'int32', device: 'native' });
        const loss = T.crossEntropy(m.forward(x), labels);
        loss.backward();
        const out = [Float32Array.from(loss.data), ...m.parameters().map((p) => Float32Array.from(p.grad!.data))];
        m.dispose();
        return out;
      });
    } finally {
      setBlockedActivations(old);
    }
  };
  const on = step(true), off = step(false);
  assert.equal(on.length, off.length);
  on.forEach((g, i) => assertClose(g, off[i]!, i === 0 ? 'loss' : `gradient ${i}`, 1e-4, 1e-5));
});

test('SplitBatchNorm keeps the blocked layout through its batch-to-channel reshape, with the NCHW values', { skip }, () => {
  const L = activationBlock();
  const run = (blocked: boolean): { values: number[][]; relayouts: number } => {
    const old = setBlockedActivations(blocked);
    const rng = new Rng(21);
    const x = T.keep(T.randn([8, 3, 6, 6], { rng }));
    const w = T.keep(T.randn([32, 3, 3, 3], { rng, requiresGrad: true }));
    const cot = T.keep(T.randn([8, 32, 6, 6], { rng }));
    const bn = new SplitBatchNorm2d(32, 2);
    bn.train();
    try {
      T.enableProfiler();
      let relayouts = 0;
      const values = T.tidy(() => {
        const { result: y, report } = T.profile(() => bn.forward(T.conv2d(x, w, null, { padding: 1 }))); // [8, 32, 6, 6]
        relayouts = report.rows.find((r) => r.name === 'relayout')?.calls ?? 0;
        T.sum(T.mul(T.relu(y), cot)).backward();
        return [y.toArray(), w.grad!.toArray(), bn.weight!.grad!.toArray(), bn.runningMean!.toArray(), bn.runningVar!.toArray()];
      });
      return { values, relayouts };
    } finally {
      setBlockedActivations(old);
      for (const t of [x, w, cot]) t.dispose();
      bn.dispose();
    }
  };
  const on = run(true);
  const off = run(false);
  on.values.forEach((v, k) => assertClose(v, off.values[k]!, `value ${k}`, 1e-4, 1e-4));
  // 32 and 2 * 32 channels are whole blocks of 16 or 8: the split view reads the conv's blocked output as it is
  if (L > 0) assert.equal(on.relayouts, 0, 'SplitBatchNorm converted its blocked input to NCHW');
});
