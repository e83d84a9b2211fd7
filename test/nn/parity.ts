// Runs one PyTorch-parity fixture (written by reference/make_fixtures.py) against our modules: loads the weights by
// state-dict name, runs forward and backward of (output * cotangent).sum(), and compares the output, every input and
// parameter gradient and the updated buffers.
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import type { DeviceName, Tensor } from '../../src/tensor/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { Module } from '../../src/nn/module.js';

export const FIXTURE_DIR = 'test/fixtures/parity';
export const MAGIC = 'selfsup-parity';
export const VERSION = '1';
const REGEN = 'regenerate with: /usr/bin/python3 reference/make_fixtures.py';

export interface Fixture {
  tensors: Map<string, Tensor>;
  config: Record<string, unknown>;
  get(name: string): Tensor;
  /** names under a prefix, with the prefix removed */
  under(prefix: string): Map<string, Tensor>;
}

export function loadFixture(name: string): Fixture {
  const path = `${FIXTURE_DIR}/${name}.safetensors`;
  const f = readSafetensors(path);
  if (f.metadata.magic !== MAGIC || f.metadata.version !== VERSION) {
    throw new Error(`${path}: header magic/version ${f.metadata.magic}/${f.metadata.version}, expected ${MAGIC}/${VERSION}; ${REGEN}`);
  }
  const tensors = f.tensors;
  return {
    tensors,
    config: JSON.parse(f.metadata.config ?? '{}') as Record<string, unknown>,
    get(n) {
      const t = tensors.get(n);
      if (t === undefined) throw new Error(`${path}: no tensor '${n}'; ${REGEN}`);
      return t;
    },
    under(prefix) {
      const m = new Map<string, Tensor>();
      for (const [k, v] of tensors) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), v);
      return m;
    },
  };
}

export interface Target { device: DeviceName; dtype: 'float32' | 'float64' }

/** float64 on the reference backend always; native float32 when the addon is built. */
export function parityTargets(nativeOk: boolean): Target[] {
  return [{ device: 'reference', dtype: 'float64' }, ...(nativeOk ? [{ device: 'native', dtype: 'float32' } as const] : [])];
}

export interface Tolerance { rtol: number; atol: number }
/** float64 reference vs PyTorch float64 (stored as float32): only the storage rounding differs */
export const TOL64: Tolerance = { rtol: 1e-4, atol: 1e-6 };
/** native float32: accumulation-order error, relative to the tensor's largest magnitude for small entries */
export const TOL32: Tolerance = { rtol: 2e-3, atol: 1e-3 };

/**
 * Elementwise |a - e| <= rtol |e| + atol * max|e| (atol is relative to the tensor's scale, so near-zero entries of a
 * large-gradient tensor are not held to a relative bound). On failure prints the max difference and the first values.
 */
export function assertMatches(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, tol: Tolerance): void {
  assert.equal(actual.length, expected.length, `${label}: ${actual.length} values, fixture has ${expected.length}`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = -1;
  let worstExcess = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    maxAbs = Math.max(maxAbs, Number.isNaN(d) ? Infinity : d);
    const bound = tol.rtol * Math.abs(expected[i]!) + tol.atol * scale + 1e-30;
    const excess = Number.isNaN(d) ? Infinity : d / bound;
    if (excess > 1 && excess > worstExcess) { worst = i; worstExcess = excess; }
  }
  if (worst >= 0) {
    const fmt = (a: ArrayLike<number>): string => Array.from(a).slice(0, 6).map((v) => v.toPrecision(7)).join(', ');
    assert.fail(`${label}: max abs difference ${maxAbs.toExponential(3)} (scale ${scale.toExponential(3)}); `
      + `worst at ${worst}: ${actual[worst]} vs ${expected[worst]}\n  ours    [${fmt(actual)}]\n  PyTorch [${fmt(expected)}]\n`
      + `  (if the fixture is stale, ${REGEN})`);
  }
}

export interface ParityOptions {
  device: DeviceName;
  dtype: 'float32' | 'float64';
  /** forward on the fixture's inputs (input.* converted to dtype and device, float ones requiring grad) */
  forward: (inputs: Map<string, Tensor>) => Tensor;
  module?: Module;
  tol?: Tolerance;
}

/** Loads the fixture's state into the module, runs the case and compares everything. */
export function checkParity(name: string, opts: ParityOptions): void {
  const fx = loadFixture(name);
  const tol = opts.tol ?? (opts.dtype === 'float64' ? TOL64 : TOL32);
  const label = `[${name} ${opts.device}/${opts.dtype}]`;
  const m = opts.module;
  T.tidy(() => {
    if (m !== undefined) {
      m.to(opts.device, opts.dtype);
      m.loadStateDict(fx.under('state.'), { strict: true });
      m.zeroGrad();
    }
    const inputs = new Map<string, Tensor>();
    for (const [k, v] of fx.under('input.')) {
      const isFloat = v.dtype === 'float32' || v.dtype === 'float64';
      const t = T.to(v, opts.device, isFloat ? opts.dtype : v.dtype);
      if (isFloat) t.requiresGrad_(true);
      inputs.set(k, t);
    }
    const out = opts.forward(inputs);
    const expected = fx.get('output');
    assert.deepEqual([...out.shape], [...expected.shape], `${label} output shape`);
    assertMatches(out.data, expected.data, `${label} output`, tol);
    const cot = fx.tensors.get('cotangent');
    const loss = cot === undefined ? out : T.sum(T.mul(out, T.to(cot, opts.device, opts.dtype)));
    loss.backward();
    for (const [k, g] of fx.under('grad.input.')) {
      const t = inputs.get(k)!;
      assert.ok(t.grad !== null, `${label} no gradient for input ${k}`);
      assertMatches(t.grad.data, g.data, `${label} grad of input ${k}`, tol);
    }
    if (m !== undefined) {
      const ours = new Map(m.namedParameters());
      const expectedGrads = fx.under('grad.param.');
      const withGrad = [...ours].filter(([, p]) => p.requiresGrad).map(([k]) => k).sort();
      assert.deepEqual(withGrad, [...expectedGrads.keys()].sort(), `${label} the trainable parameters differ from PyTorch's`);
      for (const [k, g] of expectedGrads) {
        const p = ours.get(k)!;
        assert.ok(p.grad !== null, `${label} no gradient for parameter ${k}`);
        assertMatches(p.grad.data, g.data, `${label} grad of ${k}`, tol);
      }
      const buffers = new Map(m.namedBuffers());
      for (const [k, b] of fx.under('state_after.')) {
        const ob = buffers.get(k);
        assert.ok(ob !== undefined, `${label} missing buffer ${k}`);
        if (b.dtype === 'int32') assert.deepEqual(ob.toArray(), b.toArray(), `${label} buffer ${k}`);
        else assertMatches(ob.data, b.data, `${label} buffer ${k}`, tol);
      }
      m.zeroGrad();
    }
  });
  for (const t of fx.tensors.values()) t.dispose();
}
