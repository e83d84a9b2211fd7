// One helper checks any op: float64 central-difference gradients on the reference backend, then
// native float32 against the reference (values and gradients of sum(f(x) * y) for a random cotangent y).
import assert from 'node:assert/strict';
import { it, type TestContext } from 'node:test';
import { Rng, tensor, noGrad, tidy, getBackend, type Tensor, type DeviceName } from '../src/tensor/index.js';

export interface InputSpec {
  shape: number[];
  /** integer inputs (indices) are given directly and are not differentiated */
  int?: Int32Array;
  /** uint8 masks, given directly */
  mask?: Uint8Array;
  /** value generator for float inputs (defaults to normal(0, 1)) */
  gen?: (rng: Rng, i: number) => number;
  /** whether to differentiate this input (default: true for floats) */
  grad?: boolean;
}

export function nativeAvailable(): boolean {
  try {
    getBackend('native');
    return true;
  } catch {
    return false;
  }
}

function makeInputs(specs: InputSpec[], values: number[][], device: DeviceName, dtype: 'float32' | 'float64'): Tensor[] {
  return specs.map((s, k) => {
    if (s.int !== undefined) return tensor(s.int, s.shape, { dtype: 'int32', device });
    if (s.mask !== undefined) return tensor(s.mask, s.shape, { dtype: 'uint8', device });
    return tensor(values[k]!, s.shape, { dtype, device, requiresGrad: s.grad !== false });
  });
}

function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, atol: number): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const e = Math.abs(x - y) / (atol + Math.abs(y));
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string,
  rtol = 1e-4, atol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const x = actual[i]!;
    const y = expected[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y))) {
      const first = Array.from(actual).slice(0, 6).map((v) => v.toPrecision(6)).join(', ');
      const firstE = Array.from(expected).slice(0, 6).map((v) => v.toPrecision(6)).join(', ');
      assert.fail(`${label}: element ${i}: ${x} vs expected ${y} (max rel err ${maxRelErr(actual, expected, atol).toExponential(2)})\n  got      [${first}]\n  expected [${firstE}]`);
    }
  }
}

/** The test an opTest is running, so checkOp can report a skipped native half on it. */
let current: TestContext | null = null;

/**
 * A test of ops: like it(), and a checkOp inside it that cannot run its native half (no addon) marks the test
 * skipped with the reason instead of passing silently. SELFSUP_REQUIRE_NATIVE=1 makes that skip a failure (CI
 * machines that build the addon).
 */
export function opTest(name: string, fn: () => void): void {
  it(name, (t) => {
    current = t;
    try {
      fn();
    } finally {
      current = null;
    }
  });
}

/** Reports that checkOp(name) compared no native result; returns the message. */
function reportNativeSkip(name: string): string {
  const msg = `[${name}] native half skipped: ${nativeSkipReason()}`;
  if (process.env.SELFSUP_REQUIRE_NATIVE === '1') assert.fail(`${msg} (SELFSUP_REQUIRE_NATIVE=1)`);
  if (current !== null) {
    current.diagnostic(msg);
    current.skip(msg);
  } else {
    process.emitWarning(msg, 'NativeSkipped');
  }
  return msg;
}

function nativeSkipReason(): string {
  try {
    getBackend('native');
    return 'unknown';
  } catch (e) {
    return (e as Error).message.split('\n')[0] ?? 'the native backend did not load';
  }
}

export interface CheckOptions {
  seed?: number;
  /** skip the finite-difference check (non-differentiable ops) */
  noGrad?: boolean;
  /** skip the native comparison */
  noNative?: boolean;
  /** tolerance of native float32 vs reference */
  rtol?: number;
  atol?: number;
  eps?: number;
}

/**
 * Checks op f on inputs: shape/dtype agreement, float64 gradcheck on the reference backend,
 * and native-vs-reference values and gradients.
 */
export function checkOp(name: string, f: (...xs: Tensor[]) => Tensor, specs: InputSpec[], opts: CheckOptions = {}): { native: 'compared' | 'skipped' | 'not asked' } {
  let native: 'compared' | 'skipped' | 'not asked' = opts.noNative === true ? 'not asked' : 'compared';
  const rng = new Rng(opts.seed ?? 1234);
  const values = specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    return Array.from({ length: n }, (_, i) => (s.gen ? s.gen(rng, i) : rng.normal()));
  });
  tidy(() => {
    // ---- reference float64: analytic gradient of sum(f(x) * y) vs central differences ----
    const xs = makeInputs(specs, values, 'reference', 'float64');
    const out = f(...xs);
    const ny = out.size;
    const cot = Array.from({ length: ny }, () => rng.normal());
    const cotT = tensor(cot, out.shape, { dtype: out.dtype === 'float32' ? 'float32' : 'float64', device: 'reference' });
    const isFloatOut = out.dtype === 'float64' || out.dtype === 'float32';
    if (!opts.noGrad && isFloatOut) {
      assert.equal(out.dtype, 'float64', `[${name}] float64 inputs must give a float64 output`);
      const loss = out.mul(cotT).sum();
      loss.backward();
      const eps = opts.eps ?? 1e-6;
      specs.forEach((s, k) => {
        if (s.int !== undefined || s.mask !== undefined || s.grad === false) return;
        const x = xs[k]!;
        const analytic = x.grad === null ? new Float64Array(x.size) : (x.grad.data as Float64Array);
        const numeric = new Float64Array(x.size);
        const d = x.data as Float64Array;
        noGrad(() => {
          for (let i = 0; i < x.size; i++) {
            const orig = d[i]!;
            d[i] = orig + eps;
            const lp = tidy(() => f(...xs).mul(cotT).sum().item());
            d[i] = orig - eps;
            const lm = tidy(() => f(...xs).mul(cotT).sum().item());
            d[i] = orig;
            numeric[i] = (lp - lm) / (2 * eps);
          }
        });
        assertClose(analytic, numeric, `[${name}] gradcheck of input ${k} ${JSON.stringify(s.shape)}`, 1e-3, 1e-5);
      });
    }
    // ---- native float32 vs reference ----
    if (opts.noNative) return;
    if (!nativeAvailable()) {
      native = 'skipped';
      reportNativeSkip(name);
      return;
    }
    const refIn = makeInputs(specs, values, 'reference', 'float64');
    const natIn = makeInputs(specs, values, 'native', 'float32');
    const refOut = f(...refIn);
    const natOut = f(...natIn);
    assert.deepEqual([...natOut.shape], [...refOut.shape], `[${name}] native shape ${JSON.stringify(natOut.shape)} vs reference ${JSON.stringify(refOut.shape)}`);
    const rtol = opts.rtol ?? 1e-4;
    const atol = opts.atol ?? 1e-5;
    assertClose(natOut.data, refOut.data, `[${name}] native vs reference values`, rtol, atol);
    if (!opts.noGrad && isFloatOut && natOut.size > 0) {
      const natCot = tensor(cot, natOut.shape, { device: 'native' });
      natOut.mul(natCot).sum().backward();
      refOut.mul(tensor(cot, refOut.shape, { dtype: 'float64', device: 'reference' })).sum().backward();
      specs.forEach((s, k) => {
        if (s.int !== undefined || s.mask !== undefined || s.grad === false) return;
        const gn = natIn[k]!.grad;
        const gr = refIn[k]!.grad;
        if (gr === null) { assert.equal(gn, null); return; }
        assert.ok(gn !== null, `[${name}] native produced no gradient for input ${k}`);
        assertClose(gn.data, gr.data, `[${name}] native vs reference gradient of input ${k}`, rtol * 10, atol * 10);
      });
    }
  });
  return { native };
}

export function randomInts(n: number, hi: number, seed = 7): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(hi));
}
