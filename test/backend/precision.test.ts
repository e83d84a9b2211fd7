// bf16 compute precision (autocast-style): matmul multiplies in bf16 with f32 accumulation where the CPU has native
// bf16, and setting it is refused, with the reason, where it does not (ONEDNN_MAX_CPU_ISA=AVX2 stands in for such a CPU).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as T from '../../src/tensor/index.js';
import { getPrecision, nativeAddon, nativeAvailable, setBf16Storage, setPrecision } from '../../src/backend/native.js';

const native = nativeAvailable();
const bf16 = native && nativeAddon().info().nativeBf16;

/** run() once in fp32, then once in bf16 (restoring fp32 even if it throws). */
function fp32AndBf16<R>(run: () => R): { f32: R; low: R } {
  const f32 = run();
  const old = setPrecision('bf16');
  assert.equal(old, 'fp32');
  assert.equal(getPrecision(), 'bf16');
  try {
    return { f32, low: run() };
  } finally {
    setPrecision('fp32');
  }
}

/** The largest |ref - low|, the largest |ref|, and whether any value differs at all. */
function deviation(ref: readonly number[], low: readonly number[]): { maxErr: number; scale: number; differs: boolean } {
  let maxErr = 0, scale = 0, differs = false;
  ref.forEach((v, i) => {
    maxErr = Math.max(maxErr, Math.abs(v - low[i]!));
    scale = Math.max(scale, Math.abs(v));
    if (v !== low[i]) differs = true;
  });
  return { maxErr, scale, differs };
}

describe('precision', { skip: native ? false : 'native addon not built' }, () => {
  test('rejects an unknown precision by name', () => {
    assert.throws(() => setPrecision('fp16' as never), /\[precision\] expected 'fp32' or 'bf16', got 'fp16'/);
  });

  test('bf16 matmul and linear agree with fp32 to bf16 rounding, and differ from it', { skip: bf16 ? false : 'no native bf16 on this CPU' }, () => {
    const rng = new T.Rng(7);
    const a = T.keep(T.randn([3, 17, 64], { rng }));
    const b = T.keep(T.randn([3, 64, 9], { rng }));
    const w = T.keep(T.randn([9, 64], { rng }));
    const bias = T.keep(T.randn([9], { rng }));
    const run = (): number[][] => T.tidy(() => [
      T.matmul(a, b).toArray(), T.matmul(a, w, { transB: true }).toArray(), T.linear(a, w, bias).toArray(),
      T.matmul(b, a, { transA: true, transB: true }).toArray(),
    ]);
    const { f32, low } = fp32AndBf16(run);
    f32.forEach((ref, k) => {
      const { maxErr, scale, differs } = deviation(ref, low[k]!);
      // bf16 keeps 8 bits of mantissa: inputs rounded by up to 2^-9 relative, sums of 64 terms of size ~1
      assert.ok(maxErr < 0.05 * Math.max(scale, 1), `case ${k}: max error ${maxErr} for values up to ${scale}`);
      assert.ok(differs, `case ${k}: bf16 result is bitwise fp32's: the bf16 path did not run`);
    });
    for (const t of [a, b, w, bias]) t.dispose();
  });

  test('bf16 linear with a residual (the sum inside the matmul) agrees with fp32 to bf16 rounding', { skip: bf16 ? false : 'no native bf16 on this CPU' }, () => {
    const rng = new T.Rng(11);
    const x = T.keep(T.randn([5, 13, 48], { rng, requiresGrad: true }));
    const w = T.keep(T.randn([24, 48], { rng, requiresGrad: true }));
    const bias = T.keep(T.randn([24], { rng, requiresGrad: true }));
    const residual = T.keep(T.randn([5, 13, 24], { rng, requiresGrad: true }));
    const cot = T.keep(T.randn([5, 13, 24], { rng }));
    const kernels: string[][] = [];
    const run = (): number[][] => {
      T.enableProfiler();
      const { result: y, report } = T.profile(() => T.tidy(() => {
        const out = T.linear(x, w, bias, residual);
        T.sum(T.mul(out, cot)).backward();
        return out.toArray();
      }));
      kernels.push(report.rows.map((r) => r.name).filter((n) => /^(matmul|linear|binary)/.test(n)).sort());
      return [y, ...[x, w, bias, residual].map((t) => { const g = t.grad!.toArray(); t.grad!.dispose(); t.grad = null; return g; })];
    };
    const { f32, low } = fp32AndBf16(run);
    // both precisions add the residual inside the matmul
    assert.deepEqual(kernels.map((k) => k.filter((n) => n !== 'binary.mul')), [['linearAdd', 'linearBackward'], ['linearAdd', 'linearBackward']]);
    ['y', 'gx', 'gw', 'gb', 'gresidual'].forEach((name, k) => {
      const { maxErr, scale, differs } = deviation(f32[k]!, low[k]!);
      if (name === 'gb' || name === 'gresidual') {
        assert.equal(maxErr, 0, `${name} is a sum of gy or gy itself: no matmul, no bf16`);
        return;
      }
      assert.ok(maxErr < 0.05 * Math.max(scale, 1), `${name}: max error ${maxErr} for values up to ${scale}`);
      assert.ok(differs, `${name}: bf16 result is bitwise fp32's: the bf16 path did not run`);
    });
    for (const t of [x, w, bias, residual, cot]) t.dispose();
  });

  test('bf16 linear backward (one bf16 copy of gy for gx and gw) agrees with fp32 to bf16 rounding', { skip: bf16 ? false : 'no native bf16 on this CPU' }, () => {
    const rng = new T.Rng(8);
    const x = T.keep(T.randn([5, 13, 48], { rng, requiresGrad: true }));
    const w = T.keep(T.randn([24, 48], { rng, requiresGrad: true }));
    const bias = T.keep(T.randn([24], { rng, requiresGrad: true }));
    const cot = T.keep(T.randn([5, 13, 24], { rng }));
    const run = (): number[][] => {
      T.tidy(() => T.sum(T.mul(T.linear(x, w, bias), cot)).backward());
      const grads = [x, w, bias].map((t) => { const g = t.grad!.toArray(); t.grad!.dispose(); t.grad = null; return g; });
      return grads;
    };
    const { f32, low } = fp32AndBf16(run);
    f32.forEach((ref, k) => {
      const { maxErr, scale, differs } = deviation(ref, low[k]!);
      if (k === 2) {
        assert.equal(maxErr, 0, 'the bias gradient is a sum of gy: no matmul, no bf16');
      } else {
        assert.ok(maxErr < 0.05 * Math.max(scale, 1), `gradient ${k}: max error ${maxErr} for values up to ${scale}`);
        assert.ok(differs, `gradient ${k}: bf16 result is bitwise fp32's: the bf16 path did not run`);
      }
    });
    for (const t of [x, w, bias, cot]) t.dispose();
  });

  test('bf16 fused MLP (hidden and GELU\'s derivative kept in bf16) agrees with the fp32 MLP to bf16 rounding', { skip: bf16 ? false : 'no native bf16 on this CPU' }, () => {
    // rows 3 * 7 = 21 and Hd 40: the 16-lane conversion loops end in a scalar tail; one case without biases and with
    // the residual (a block's skip connection) added inside fc2
    for (const withBias of [true, false]) {
      const rng = new T.Rng(withBias ? 9 : 10);
      const x = T.keep(T.randn([3, 7, 24], { rng, requiresGrad: true }));
      const w1 = T.keep(T.randn([40, 24], { rng, requiresGrad: true }));
      const b1 = withBias ? T.keep(T.randn([40], { rng, requiresGrad: true })) : null;
      const w2 = T.keep(T.mulScalar(T.randn([12, 40], { rng }), 0.3));
      w2.requiresGrad = true;
      const b2 = withBias ? T.keep(T.randn([12], { rng, requiresGrad: true })) : null;
      const cot = T.keep(T.randn([3, 7, 12], { rng }));
      const residual = withBias ? null : T.keep(T.randn([3, 7, 12], { rng, requiresGrad: true }));
      const params = [x, w1, b1, w2, b2, residual].filter((t): t is T.Tensor => t !== null);
      const kernels: string[][] = [];
      const run = (): number[][] => {
        T.enableProfiler();
        const { result: y, report } = T.profile(() => T.tidy(() => {
          const out = T.mlp(x, w1, b1, w2, b2, residual);
          T.sum(T.mul(out, cot)).backward();
          return out.toArray();
        }));
        kernels.push(report.rows.map((r) => r.name).filter((n) => /^(mlp|linear)/.test(n)).sort());
        return [y, ...params.map((t) => { const g = t.grad!.toArray(); t.grad!.dispose(); t.grad = null; return g; })];
      };
      const { f32, low } = fp32AndBf16(run);
      // fp32 adds the residual inside fc2's matmul too (linearAdd)
      assert.deepEqual(kernels, [[...(residual !== null ? ['linearAdd'] : []), 'linearBackward', 'linearBackwardScaled', 'linearGelu'],
        ['mlpBackwardBf16', 'mlpForwardBf16']]);
      const names = ['y', ...(withBias ? ['gx', 'gw1', 'gb1', 'gw2', 'gb2'] : ['gx', 'gw1', 'gw2', 'gresidual'])];
      names.forEach((name, k) => {
        const { maxErr, scale, differs } = deviation(f32[k]!, low[k]!);
        if (name === 'gb2' || name === 'gresidual') {
          assert.equal(maxErr, 0, `${name} is a sum of gy or gy itself: no matmul, no bf16`);
          return;
        }
        // two products in a row, each rounding its inputs to 8 bits of mantissa (sums of 24-40 terms of size ~1)
        assert.ok(maxErr < 0.05 * Math.max(scale, 1), `${name} (bias ${withBias}): max error ${maxErr} for values up to ${scale}`);
        assert.ok(differs, `${name}: bf16 result is bitwise fp32's: the bf16 path did not run`);
      });
      for (const t of [...params, cot]) t.dispose();
    }
  });

  /** A 3x3 conv's output, gx, gw, gb for one fixed input (stride 2 unless given), in fp32 and in bf16 under the given backward mode. */
  function convRun(mode: 'auto' | 'bf16', shape: { N: number; C: number; H: number; O: number; stride?: number }): { f32: number[][]; low: number[][] } {
    const rng = new T.Rng(8);
    const { N, C, H, O } = shape;
    const stride = shape.stride ?? 2;
    const x = T.keep(T.randn([N, C, H, H], { rng, requiresGrad: true }));
    const w = T.keep(T.randn([O, C, 3, 3], { rng, requiresGrad: true }));
    const b = T.keep(T.randn([O], { rng, requiresGrad: true }));
    const cot = T.keep(T.randn([N, O, H / stride, H / stride], { rng }));
    const run = (): number[][] => {
      const out = T.tidy(() => {
        const y = T.conv2d(x, w, b, { stride, padding: 1 }); // [N, O, H/stride, H/stride]
        T.sum(T.mul(y, cot)).backward();
        return y.toArray();
      });
      const r = [out, x.grad!.toArray(), w.grad!.toArray(), b.grad!.toArray()];
      for (const t of [x, w, b]) { t.grad!.dispose(); t.grad = null; }
      return r;
    };
    const old = nativeAddon().convBf16Backward();
    nativeAddon().convBf16Backward(mode);
    // these tests are about which passes multiply in bf16: the output's bf16 storage, which rounds y (and has its own
    // tests in bf16-storage.test.ts), stays off
    const oldStorage = setBf16Storage(false);
    try {
      return fp32AndBf16(run);
    } finally {
      setBf16Storage(oldStorage);
      nativeAddon().convBf16Backward(old);
      for (const t of [x, w, b, cot]) t.dispose();
    }
  }

  test('bf16 conv forward, backward-data and backward-weights agree with fp32 to bf16 rounding', { skip: bf16 ? false : 'no native bf16 on this CPU' }, () => {
    const { f32, low } = convRun('bf16', { N: 4, C: 16, H: 8, O: 32 });
    ['y', 'gx', 'gw', 'gb'].forEach((name, k) => {
      const { maxErr, scale, differs } = deviation(f32[k]!, low[k]!);
      assert.ok(maxErr < 0.03 * scale, `${name}: max error ${maxErr} for values up to ${scale}`);
      // the bias gradient is a plain f32 sum of gy in both precisions
      if (name !== 'gb') assert.ok(differs, `${name}: bf16 result is bitwise fp32's: the bf16 path did not run`);
    });
  });

  test('bf16 conv in "auto" runs backward-weights of a few-pixel conv in f32, its forward and backward-data in bf16', { skip: bf16 ? false : 'no native bf16 on this CPU' }, () => {
    assert.equal(nativeAddon().convBf16Backward(), 'auto');
    assert.throws(() => nativeAddon().convBf16Backward('fp16' as never), /mode must be 'auto' or 'bf16', got 'fp16'/);
    // 8x8 -> 4x4 with stride 2: 16 output pixels, backward-weights on the f32 side of the rule
    const { f32, low } = convRun('auto', { N: 4, C: 16, H: 8, O: 32 });
    for (const [k, name] of [[0, 'y'], [1, 'gx']] as const) {
      const d = deviation(f32[k]!, low[k]!);
      assert.ok(d.differs && d.maxErr < 0.03 * d.scale, `${name}: bf16 expected (max error ${d.maxErr})`);
    }
    assert.deepEqual(low[2], f32[2], 'gw: the f32 backward-weights kernel, bit for bit');
    // 32x32 -> 16x16: 256 output pixels, backward-weights stays bf16
    const big = convRun('auto', { N: 2, C: 16, H: 32, O: 16 });
    const gw = deviation(big.f32[2]!, big.low[2]!);
    assert.ok(gw.differs && gw.maxErr < 0.03 * gw.scale, `gw: bf16 backward-weights expected (max error ${gw.maxErr})`);
    // an RGB stem (3 input channels): forward and backward-weights in f32, bit for bit
    const stem = convRun('auto', { N: 2, C: 3, H: 16, O: 16, stride: 1 });
    assert.deepEqual(stem.low[0], stem.f32[0], 'stem y: the f32 forward kernel, bit for bit');
    assert.deepEqual(stem.low[2], stem.f32[2], 'stem gw: the f32 backward-weights kernel, bit for bit');
  });

  test('bf16 conv outputs and input gradients stay in the activation block layout, as the f32 passes beside them do', {
    skip: !bf16 ? 'no native bf16 on this CPU' : native && nativeAddon().activationLayout() === 'plain' ? 'no blocked layout in use' : false }, () => {
    // AMX writes a bf16 pass's f32 output channels-last; it reaches the caller blocked, like the output of the f32
    // passes it meets in a residual block, so the fused batch norm + add + ReLU reads both without a relayout
    const L = nativeAddon().activationLayout() === 'nChw16c' ? 16 : 8;
    const rng = new T.Rng(3);
    const x = T.keep(T.randn([2, 4 * L, 8, 8], { rng, requiresGrad: true }));
    const w = T.keep(T.randn([4 * L, 4 * L, 3, 3], { rng, requiresGrad: true }));
    const old = setPrecision('bf16');
    try {
      const { blocked, gxBlocked } = T.tidy(() => {
        const y = T.conv2d(x, w, null, { padding: 1 });
        const yb = y.blockedData !== null;
        T.sum(T.mul(y, y)).backward();
        return { blocked: yb, gxBlocked: x.grad!.blockedData !== null };
      });
      assert.equal(blocked, true, 'y: the bf16 forward output is blocked');
      assert.equal(gxBlocked, true, 'gx: the bf16 backward-data output is blocked');
    } finally {
      setPrecision(old);
      for (const t of [x, w]) { t.grad?.dispose(); t.dispose(); }
    }
  });

  test('a backward pass that "auto" runs in f32 takes the f32 session\'s algorithm: Winograd where asked', {
    skip: !bf16 ? 'no native bf16 on this CPU' : native && nativeAddon().activationLayout() === 'plain' ? "oneDNN's Winograd needs the blocked layout" : false }, () => {
    // 4x4 -> 4x4, 3x3 stride 1: 16 output pixels, so backward-weights is on the f32 side of the rule; with the
    // algorithm forced to Winograd, the bf16 session's gw is the fp32 session's Winograd gw bit for bit, and the
    // direct kernel's gw differs from it (Winograd rounds differently)
    const oldAlgo = nativeAddon().convAlgo();
    try {
      nativeAddon().convAlgo('winograd');
      const wino = convRun('auto', { N: 4, C: 16, H: 4, O: 16, stride: 1 });
      assert.deepEqual(wino.low[2], wino.f32[2], 'gw: the f32 Winograd kernel, bit for bit');
      assert.ok(deviation(wino.f32[0]!, wino.low[0]!).differs, 'y: the forward still runs in bf16');
      nativeAddon().convAlgo('direct');
      const direct = convRun('auto', { N: 4, C: 16, H: 4, O: 16, stride: 1 });
      assert.deepEqual(direct.low[2], direct.f32[2], 'gw: the f32 direct kernel, bit for bit');
      const { maxErr, scale, differs } = deviation(direct.f32[2]!, wino.f32[2]!);
      assert.ok(differs && maxErr < 1e-4 * scale, `gw: Winograd expected to differ from direct by rounding only (max error ${maxErr})`);
    } finally {
      nativeAddon().convAlgo(oldAlgo);
    }
  });

  test('refuses bf16 without native bf16, saying why', () => {
    const code = `import { setPrecision } from './src/backend/native.js';
      try { setPrecision('bf16'); console.log('accepted'); } catch (e) { console.log(e.message); }`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code],
      { encoding: 'utf8', env: { ...process.env, ONEDNN_MAX_CPU_ISA: 'AVX2' } });
    assert.match(out, /\[precision\] bf16 needs a CPU with native bf16 .*ISA 'AVX2'.*slower than fp32/);
  });
});
