// The native (oneDNN) backend against the pure-TypeScript reference, kernel by kernel, plus checks of the
// reference layer kernels themselves: independent computations (conv as im2col + matmul, softmax rows sum to 1)
// and float64 central-difference checks of every backward against its forward.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, BinaryOp, ConvParams, DType, FloatArray, PoolParams, TypedArray, UnaryOp } from '../../src/backend/backend.js';
import { nativeAddon, nativeAvailable, nativeBackend as nb, nativeLoadError } from '../../src/backend/native.js';
import { referenceBackend as rb } from '../../src/backend/reference.js';

// ---------------------------------------------------------------- helpers

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(1234);
const randInt = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

function make(dtype: DType, n: number, gen: (i: number) => number = () => rand() * 2 - 1): TypedArray {
  const a = dtype === 'float32' ? new Float32Array(n) : dtype === 'float64' ? new Float64Array(n)
    : dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = gen(i);
  return a;
}
const f32 = (n: number, gen?: (i: number) => number): Float32Array => make('float32', n, gen) as Float32Array;
const f64 = (n: number, gen?: (i: number) => number): Float64Array => make('float64', n, gen) as Float64Array;
const toF64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
const like = (a: TypedArray): TypedArray => new (a.constructor as new (n: number) => TypedArray)(a.length);

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise; reports the worst element. */
function close(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;  // equal infinities
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) { worst = i; worstExcess = excess; }
  }
  if (worst >= 0) {
    const head = Array.from(actual).slice(0, 6).map((v) => v.toPrecision(6)).join(', ');
    const headE = Array.from(expected).slice(0, 6).map((v) => v.toPrecision(6)).join(', ');
    assert.fail(`${what}: element ${worst} is ${actual[worst]} but expected ${expected[worst]} ` +
      `(diff ${Math.abs(actual[worst]! - expected[worst]!)}); first values [${head}] vs [${headE}]`);
  }
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}
const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** An operand broadcast over `shape`: some dims collapsed to 1 (stride 0), memory order optionally permuted. */
function broadcastOperand(shape: readonly number[], pBroadcast: number): { own: number[]; strides: number[] } {
  const own = shape.map((s) => (rand() < pBroadcast ? 1 : s));
  const order = own.map((_, i) => i);
  if (rand() < 0.3) order.sort(() => rand() - 0.5);  // a permuted (non-contiguous) layout
  const strides = new Array<number>(own.length).fill(0);
  let acc = 1;
  for (let k = order.length - 1; k >= 0; k--) { const d = order[k]!; strides[d] = acc; acc *= own[d]!; }
  return { own, strides: strides.map((s, d) => (own[d] === 1 ? 0 : s)) };
}

function randomShape(maxRank: number, maxDim: number): number[] {
  const rank = randInt(0, maxRank);
  return Array.from({ length: rank }, () => (rand() < 0.05 ? 0 : randInt(1, maxDim)));
}

function convOut(H: number, K: number, s: number, p: number, d: number): number {
  return Math.floor((H + 2 * p - d * (K - 1) - 1) / s) + 1;
}
function convParams(o: Partial<ConvParams> & { N: number; C: number; H: number; W: number; O: number; KH: number; KW: number }): ConvParams {
  const q = { strideH: 1, strideW: 1, padH: 0, padW: 0, dilationH: 1, dilationW: 1, groups: 1, ...o };
  return { ...q, OH: convOut(q.H, q.KH, q.strideH, q.padH, q.dilationH), OW: convOut(q.W, q.KW, q.strideW, q.padW, q.dilationW) };
}
function poolParams(N: number, C: number, H: number, W: number, K: number, s: number, p: number, countIncludePad: boolean): PoolParams {
  return { N, C, H, W, KH: K, KW: K, strideH: s, strideW: s, padH: p, padW: p, countIncludePad,
    OH: Math.floor((H + 2 * p - K) / s) + 1, OW: Math.floor((W + 2 * p - K) / s) + 1 };
}

const native = { skip: nativeAvailable() ? false : (nativeLoadError() ?? 'native addon missing') };

// ---------------------------------------------------------------- memory

describe('native memory', native, () => {
  test('alloc: dtypes, zero fill, zero size', () => {
    for (const dtype of ['float32', 'float64', 'int32', 'uint8'] as const) {
      const a = nb.alloc(dtype, 37, true);
      assert.equal(a.length, 37);
      assert.equal(a.constructor.name, { float32: 'Float32Array', float64: 'Float64Array', int32: 'Int32Array', uint8: 'Uint8Array' }[dtype]);
      assert.ok(a.every((v) => v === 0));
      nb.free(a);
      const e = nb.alloc(dtype, 0, false);
      assert.equal(e.length, 0);
      nb.free(e);
    }
  });

  test('free detaches now, recycles through the cache, ignores foreign and freed arrays', () => {
    const addon = nativeAddon();
    const before = addon.memoryStats();
    const a = nb.alloc('float32', 1000, false);
    assert.equal(addon.memoryStats().liveBytes, before.liveBytes + 4032);
    nb.free(a);
    assert.equal(a.length, 0);  // detached: later use cannot touch freed memory
    assert.equal(addon.memoryStats().liveBytes, before.liveBytes);
    const cached = addon.memoryStats().cachedBytes;
    const b = nb.alloc('float32', 1000, true);  // same size: comes from the cache, still zeroed
    assert.equal(addon.memoryStats().cachedBytes, cached - 4032);
    assert.ok(b.every((v) => v === 0));
    nb.free(b);
    nb.free(b);  // double free is a no-op
    nb.free(new Float32Array(4));  // not ours: left to the GC
    assert.equal(addon.memoryStats().liveBytes, before.liveBytes);
    const view = nb.alloc('float32', 64, false);
    nb.free(view.subarray(8));  // a view frees (and detaches) its whole buffer
    assert.equal(view.length, 0);
    addon.trimCache();
    assert.equal(addon.memoryStats().cachedBytes, 0);
  });

  test('errors are one line prefixed with the kernel name', () => {
    const p = convParams({ N: 1, C: 4, H: 5, W: 5, O: 4, KH: 3, KW: 3 });
    assert.throws(() => nb.conv2d(f32(4 * 9), f32(100), f32(100), null, p), /^Error: \[conv2d\] x has 100 elements, expected 100|\[conv2d\] w has 100 elements, expected 144/);
    assert.throws(() => nb.conv2d(f32(36), f32(100), f32(100), null, p), /\[conv2d\] w has 100 elements, expected 144/);
    assert.throws(() => nb.matmul(new Float64Array(4), f64(4), f64(4), null, 1, 2, 2, 2, false, false, 0, 0), /\[matmul\] out must be float32/);
    assert.throws(() => nb.gather(f32(2), f32(3), Int32Array.of(0, 5), 1, 3, 1, 2), /\[gather\] index 5 out of range/);
    assert.throws(() => nb.binary('add', f32(6), f32(6), f32(2), [2, 3], [3, 1], [1, 1]), /\[binary\] b strides reach element 3/);
    assert.throws(() => nb.strided(f32(4), 2, [1], f32(4), 0, [1], [4], false), /\[strided\] out strides reach/);
  });
});

// ---------------------------------------------------------------- elementwise

describe('native elementwise vs reference', native, () => {
  test('fill and cast across dtypes (float -> int truncates toward zero)', () => {
    const dtypes = ['float32', 'int32', 'uint8'] as const;
    for (const dt of dtypes) {
      const a = make(dt, 50000); const b = like(a);
      nb.fill(a, 3.75); rb.fill(b, 3.75);
      close(`fill ${dt}`, a, b, 0, 0);
    }
    const x = f32(1001, () => (rand() * 2 - 1) * 300);
    x[0] = NaN; x[1] = 3e9; x[2] = -3e9; x[3] = -0.7; x[4] = 255.9; x[5] = 256.5;
    for (const dt of ['float32', 'float64', 'int32', 'uint8'] as const) {
      const o1 = make(dt, x.length); const o2 = make(dt, x.length);
      nb.cast(o1, x); rb.cast(o2, x);
      close(`cast float32 -> ${dt}`, o1, o2, 0, 0);
      const back1 = f32(x.length); const back2 = f32(x.length);
      nb.cast(back1, o1); rb.cast(back2, o2);
      close(`cast ${dt} -> float32`, back1, back2, 0, 0);
    }
  });

  test('unary ops (float32, and int32 where meaningful)', () => {
    const ops: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sign', 'square', 'reciprocal', 'relu', 'gelu',
      'sigmoid', 'tanh', 'erf', 'addScalar', 'mulScalar', 'powScalar', 'rsubScalar', 'rdivScalar', 'clamp', 'gtScalar'];
    const positive = new Set<UnaryOp>(['log', 'sqrt', 'rsqrt', 'powScalar', 'reciprocal', 'rdivScalar']);
    for (const n of [0, 1, 7, 40000]) {
      for (const op of ops) {
        const x = f32(n, () => (positive.has(op) ? 0.1 + rand() * 3 : (rand() * 2 - 1) * 4));
        if (n > 0) x[0] = positive.has(op) ? 1 : 0;  // a kink
        const o1 = f32(n); const o2 = new Float64Array(n);
        nb.unary(op, o1, x, 0.7, 1.5); rb.unary(op, o2, toF64(x), 0.7, 1.5);
        close(`unary ${op} n=${n}`, o1, o2, 1e-6, 2e-6);
      }
    }
    for (const op of ['neg', 'abs', 'square', 'mulScalar', 'addScalar', 'clamp', 'gtScalar'] as UnaryOp[]) {
      const x = make('int32', 300, () => randInt(-20, 20)); const o1 = like(x); const o2 = like(x);
      nb.unary(op, o1, x, 3, 7); rb.unary(op, o2, x, 3, 7);
      close(`unary ${op} int32`, o1, o2, 0, 0);
    }
  });

  test('unaryGrad ops', () => {
    for (const op of ['relu', 'gelu', 'sigmoid', 'tanh'] as const) {
      for (const n of [0, 5, 40000]) {
        const x = f32(n, () => (rand() * 2 - 1) * 4); const gy = f32(n);
        const y = f32(n); nb.unary(op, y, x, 0, 0);
        const g1 = f32(n); const g2 = new Float64Array(n);
        nb.unaryGrad(op, g1, gy, x, y); rb.unaryGrad(op, g2, toF64(gy), toF64(x), toF64(y));
        close(`unaryGrad ${op} n=${n}`, g1, g2, 1e-6, 1e-5);
      }
    }
  });

  test('binary ops over random broadcast shapes, all dtypes, comparisons into uint8 or the input dtype', () => {
    const arith: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'];
    const cmp: BinaryOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'];
    const cases: number[][] = [[], [0], [1], [7], [3, 0, 2], [1, 1, 1], [2, 3, 4, 5], [33, 1100], [4, 128, 130]];
    for (let i = 0; i < 40; i++) cases.push(randomShape(5, 6));
    for (const shape of cases) {
      for (const dtype of ['float32', 'int32', 'uint8'] as const) {
        const A = broadcastOperand(shape, 0.3); const B = broadcastOperand(shape, rand() < 0.2 ? 1 : 0.3);
        const gen = dtype === 'float32' ? () => (rand() < 0.2 ? 1 : rand() * 4 - 2) : () => randInt(dtype === 'uint8' ? 0 : -5, 5);
        const a = make(dtype, numel(A.own), gen); const b = make(dtype, numel(B.own), gen);
        const n = numel(shape);
        for (const op of [...arith, ...cmp]) {
          if (op === 'pow' && dtype !== 'float32') continue;  // int pow overflow is implementation-defined
          const outDtype = cmp.includes(op) && rand() < 0.5 ? 'uint8' : dtype;
          const o1 = make(outDtype, n); const o2 = make(outDtype, n);
          const ra = dtype === 'float32' ? toF64(a) : a; const rbb = dtype === 'float32' ? toF64(b) : b;
          nb.binary(op, o1, a, b, shape, A.strides, B.strides);
          rb.binary(op, o2, ra, rbb, shape, A.strides, B.strides);
          if (dtype === 'float32' && outDtype === 'float32') { const r = new Float32Array(o2); close(`${op} ${dtype} [${shape}]`, o1, r, 1e-6, 1e-6); }
          else close(`${op} ${dtype}->${outDtype} [${shape}]`, o1, o2, 0, 0);
        }
      }
    }
  });

  test('where over broadcast shapes', () => {
    for (let i = 0; i < 30; i++) {
      const shape = i === 0 ? [200, 300] : randomShape(4, 5);
      const C = broadcastOperand(shape, 0.3); const A = broadcastOperand(shape, 0.3); const B = broadcastOperand(shape, 0.3);
      const cond = make('uint8', numel(C.own), () => (rand() < 0.5 ? 1 : 0)) as Uint8Array;
      for (const dtype of ['float32', 'int32'] as const) {
        const a = make(dtype, numel(A.own), () => randInt(-9, 9)); const b = make(dtype, numel(B.own), () => randInt(-9, 9));
        const o1 = make(dtype, numel(shape)); const o2 = make(dtype, numel(shape));
        nb.where(o1, cond, a, b, shape, C.strides, A.strides, B.strides);
        rb.where(o2, cond, a, b, shape, C.strides, A.strides, B.strides);
        close(`where ${dtype} [${shape}]`, o1, o2, 0, 0);
      }
    }
  });

  test('reduce and argReduce over [outer, r, inner]', () => {
    const cases = [[1, 1, 1], [3, 0, 2], [0, 4, 3], [5, 7, 1], [1, 100000, 1], [2, 300, 257], [64, 1000, 1], [3, 5, 40000], [1, 3, 1025], [1, 2176, 192], [1, 300, 512]];
    for (const [outer, r, inner] of cases as [number, number, number][]) {
      for (const dtype of ['float32', 'int32'] as const) {
        const x = make(dtype, outer * r * inner, () => (dtype === 'float32' ? rand() * 2 - 1 : randInt(-3, 3)));
        for (const op of ['sum', 'max', 'min'] as const) {
          const o1 = make(dtype, outer * inner); const o2 = dtype === 'float32' ? new Float64Array(outer * inner) : make(dtype, outer * inner);
          nb.reduce(op, o1, x, outer, r, inner); rb.reduce(op, o2, dtype === 'float32' ? toF64(x) : x, outer, r, inner);
          close(`reduce ${op} ${dtype} [${outer},${r},${inner}]`, o1, o2, 1e-5, 1e-5);
        }
        if (r === 0) continue;
        for (const op of ['max', 'min'] as const) {
          const o1 = new Int32Array(outer * inner); const o2 = new Int32Array(outer * inner);
          nb.argReduce(op, o1, x, outer, r, inner); rb.argReduce(op, o2, x, outer, r, inner);
          close(`argReduce ${op} ${dtype} [${outer},${r},${inner}] (ties: first index)`, o1, o2, 0, 0);
        }
      }
    }
  });

  test('strided copies: permute, slice at an offset, accumulate', () => {
    for (let i = 0; i < 30; i++) {
      const shape = i === 0 ? [64, 33, 40] : randomShape(4, 6);
      const X = broadcastOperand(shape, 0);  // a permuted source
      const x = f32(numel(X.own) + 3);
      const outShape = shape.map((s) => s + randInt(0, 2));  // write into a slice of a larger buffer
      const outStrides = contiguousStrides(outShape);
      const size = numel(outShape) + 2;
      const o1 = f32(size, () => 0.5); const o2 = new Float32Array(o1);
      nb.strided(o1, 1, outStrides, x, 3, X.strides, shape, false);
      rb.strided(o2, 1, outStrides, x, 3, X.strides, shape, false);
      close(`strided copy [${shape}]`, o1, o2, 0, 0);
      // accumulate: the backward of expand, several indices onto one out element
      const red = shape.map((s) => (rand() < 0.5 ? 1 : s));
      const redStrides = contiguousStrides(red).map((s, d) => (red[d] === 1 ? 0 : s));
      const a1 = f32(numel(red), () => 1); const a2 = new Float64Array(a1);
      const src = f32(numel(shape));
      nb.strided(a1, 0, redStrides, src, 0, contiguousStrides(shape), shape, true);
      rb.strided(a2, 0, redStrides, toF64(src), 0, contiguousStrides(shape), shape, true);
      close(`strided accumulate [${shape}] -> [${red}]`, a1, a2, 1e-5, 1e-5);
    }
    const i1 = make('int32', 12, (i) => i); const i2 = make('int32', 12); const i3 = make('int32', 12);
    nb.strided(i2, 0, [1, 4], i1, 0, [3, 1], [4, 3], false); rb.strided(i3, 0, [1, 4], i1, 0, [3, 1], [4, 3], false);
    close('strided int32 transpose', i2, i3, 0, 0);
  });

  test('a few long rows (a contiguous tensor is one row) are cut into pieces across threads, element for element', () => {
    // [rows, inner] with rows below 4 per thread: for_rows splits each row; odd sizes leave a short last piece
    for (const [rows, inner] of [[1, 200003], [3, 100001], [2, 65536 + 64], [1, 16384 * 2 + 1]] as [number, number][]) {
      const shape = [rows, inner];
      const a = f32(rows * inner); const b = f32(rows * inner); const bcol = f32(rows);
      const contig = contiguousStrides(shape);
      for (const [name, bb, bStrides] of [['contiguous', b, contig], ['b broadcast along the row', bcol, [1, 0]]] as const) {
        const o1 = f32(rows * inner); const o2 = f32(rows * inner);  // f32 both ways: one rounding, the same bits
        nb.binary('sub', o1, a, bb, shape, contig, bStrides);
        rb.binary('sub', o2, a, bb, shape, contig, bStrides);
        close(`sub [${shape}] ${name}`, o1, o2, 0, 0);
      }
      const cond = make('uint8', rows * inner, () => (rand() < 0.5 ? 1 : 0)) as Uint8Array;
      const w1 = f32(rows * inner); const w2 = f32(rows * inner);
      nb.where(w1, cond, a, b, shape, contig, contig, contig); rb.where(w2, cond, a, b, shape, contig, contig, contig);
      close(`where [${shape}]`, w1, w2, 0, 0);
      // a strided copy reading every other element of a source twice as long, into a slice at an offset
      const src = f32(rows * inner * 2 + 5);
      const c1 = f32(rows * inner + 1, () => 0.5); const c2 = new Float32Array(c1);
      nb.strided(c1, 1, contig, src, 5, [2 * inner, 2], shape, false);
      rb.strided(c2, 1, contig, src, 5, [2 * inner, 2], shape, false);
      close(`strided copy [${shape}] stride 2`, c1, c2, 0, 0);
    }
  });

  test('gather, scatterAdd, indexSelect, indexAdd', () => {
    const cases = [[1, 1, 1, 1], [2, 5, 3, 4], [3, 7, 1, 9], [1, 1000, 64, 500], [0, 3, 2, 2], [4, 6, 5, 0], [300, 10, 1, 200]];
    for (const [outer, dim, inner, k] of cases as [number, number, number, number][]) {
      for (const dtype of ['float32', 'int32'] as const) {
        const x = make(dtype, outer * dim * inner, () => randInt(-50, 50));
        const idx = make('int32', outer * k * inner, () => randInt(0, dim - 1)) as Int32Array;
        const o1 = make(dtype, outer * k * inner); const o2 = make(dtype, outer * k * inner);
        nb.gather(o1, x, idx, outer, dim, inner, k); rb.gather(o2, x, idx, outer, dim, inner, k);
        close(`gather ${dtype}`, o1, o2, 0, 0);
        const src = make(dtype, outer * k * inner, () => randInt(-5, 5));
        const s1 = make(dtype, outer * dim * inner, () => 1); const s2 = make(dtype, outer * dim * inner, () => 1);
        nb.scatterAdd(s1, idx, src, outer, dim, inner, k); rb.scatterAdd(s2, idx, src, outer, dim, inner, k);
        close(`scatterAdd ${dtype}`, s1, s2, 0, 0);
        const sel = make('int32', k, () => randInt(0, dim - 1)) as Int32Array;
        const q1 = make(dtype, outer * k * inner); const q2 = make(dtype, outer * k * inner);
        nb.indexSelect(q1, x, sel, outer, dim, inner, k); rb.indexSelect(q2, x, sel, outer, dim, inner, k);
        close(`indexSelect ${dtype}`, q1, q2, 0, 0);
        const a1 = make(dtype, outer * dim * inner, () => 2); const a2 = make(dtype, outer * dim * inner, () => 2);
        nb.indexAdd(a1, sel, src, outer, dim, inner, k); rb.indexAdd(a2, sel, src, outer, dim, inner, k);
        close(`indexAdd ${dtype}`, a1, a2, 0, 0);
      }
    }
  });
});

// ---------------------------------------------------------------- layers

describe('native layer kernels vs reference', native, () => {
  test('matmul: transposes, batch strides (0 broadcasts), bias, odd and empty sizes', () => {
    const cases = [[1, 1, 1, 1], [1, 3, 5, 7], [4, 17, 9, 33], [3, 64, 65, 1], [2, 0, 4, 3], [2, 3, 4, 0], [1, 70, 130, 90]];
    for (const [batch, M, N, K] of cases as [number, number, number, number][]) {
      for (const transA of [false, true]) for (const transB of [false, true]) for (const bcast of [0, 1, 2, 3]) {
        const aBS = bcast & 1 ? 0 : M * K; const bBS = bcast & 2 ? 0 : K * N;
        const a = f32(Math.max(1, batch * M * K)); const b = f32(Math.max(1, batch * K * N));
        const bias = (M + N + bcast) % 2 ? f32(N) : null;
        const o1 = f32(batch * M * N); const o2 = new Float64Array(batch * M * N);
        nb.matmul(o1, a, b, bias, batch, M, N, K, transA, transB, aBS, bBS);
        rb.matmul(o2, toF64(a), toF64(b), bias && toF64(bias), batch, M, N, K, transA, transB, aBS, bBS);
        close(`matmul b=${batch} ${M}x${N}x${K} tA=${transA} tB=${transB} bs=${aBS},${bBS}`, o1, o2, 1e-5, 1e-4);
      }
    }
  });

  const convCases: ConvParams[] = [
    convParams({ N: 2, C: 3, H: 7, W: 6, O: 4, KH: 3, KW: 3, padH: 1, padW: 1 }),
    convParams({ N: 1, C: 8, H: 9, W: 9, O: 16, KH: 3, KW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1 }),
    convParams({ N: 3, C: 4, H: 8, W: 10, O: 6, KH: 3, KW: 2, dilationH: 2, dilationW: 1, padH: 2, padW: 0 }),
    convParams({ N: 2, C: 6, H: 5, W: 5, O: 4, KH: 3, KW: 3, groups: 2, padH: 1, padW: 1 }),
    convParams({ N: 2, C: 16, H: 6, W: 6, O: 32, KH: 1, KW: 1, strideH: 2, strideW: 2 }),
    convParams({ N: 2, C: 3, H: 11, W: 11, O: 8, KH: 7, KW: 7, strideH: 2, strideW: 2, padH: 3, padW: 3 }),
    convParams({ N: 1, C: 1, H: 1, W: 1, O: 1, KH: 1, KW: 1 }),
    convParams({ N: 0, C: 3, H: 4, W: 4, O: 2, KH: 3, KW: 3, padH: 1, padW: 1 }),
    convParams({ N: 4, C: 16, H: 8, W: 8, O: 16, KH: 3, KW: 3, padH: 1, padW: 1 }),
  ];

  for (const layout of ['blocked', 'plain'] as const) {
    test(`conv2d forward, backward-data, backward-weight (${layout} layout)`, () => {
      const addon = nativeAddon();
      const saved = addon.convLayout();
      addon.convLayout(layout);
      try {
        for (const p of convCases) {
          const xs = p.N * p.C * p.H * p.W; const ws = p.O * (p.C / p.groups) * p.KH * p.KW; const ys = p.N * p.O * p.OH * p.OW;
          const x = f32(xs); const w = f32(ws); const bias = f32(p.O); const gy = f32(ys);
          const tag = `conv ${JSON.stringify(p)}`;
          for (const withBias of [true, false]) {
            const y1 = f32(ys); const y2 = new Float64Array(ys);
            nb.conv2d(y1, x, w, withBias ? bias : null, p); rb.conv2d(y2, toF64(x), toF64(w), withBias ? toF64(bias) : null, p);
            close(`${tag} forward`, y1, y2, 1e-5, 1e-4);
          }
          const gx1 = f32(xs, () => 9); const gx2 = new Float64Array(xs);
          nb.conv2dBackwardData(gx1, gy, w, p); rb.conv2dBackwardData(gx2, toF64(gy), toF64(w), p);
          close(`${tag} backward data`, gx1, gx2, 1e-5, 1e-4);
          const gw1 = f32(ws, () => 9); const gb1 = f32(p.O, () => 9); const gw2 = new Float64Array(ws); const gb2 = new Float64Array(p.O);
          nb.conv2dBackwardWeight(gw1, gb1, gy, x, p); rb.conv2dBackwardWeight(gw2, gb2, toF64(gy), toF64(x), p);
          close(`${tag} backward weight`, gw1, gw2, 1e-4, 1e-4);
          close(`${tag} backward bias`, gb1, gb2, 1e-4, 1e-4);
          nb.conv2dBackwardWeight(gw1, null, gy, x, p);
          close(`${tag} backward weight without bias`, gw1, gw2, 1e-4, 1e-4);
        }
      } finally {
        addon.convLayout(saved);
      }
    });
  }

  // oneDNN's Winograd kernels (SELFSUP_CONV_ALGO, convAlgo): forced on ('winograd', wherever oneDNN implements it) and
  // as 'auto' picks them, against the reference on every case above plus 3x3 stride-1 shapes Winograd takes, in both
  // layouts and, where a blocked layout is in use, on blocked inputs and outputs as they pass between layers.
  // Winograd F(4x4, 3x3) rounds differently from a direct sum (transforms with coefficients up to 8): 1e-4 of the
  // largest entry, float32 rounding for these sums.
  for (const layout of ['blocked', 'plain'] as const) {
    test(`conv2d with Winograd ('winograd' and 'auto' algorithms, ${layout} layout)`, () => {
      const addon = nativeAddon();
      const saved = [addon.convLayout(), addon.convAlgo()] as const;
      addon.convLayout(layout);
      const L = addon.info().preferredBlock;
      const scale = (a: ArrayLike<number>): number => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const wino = [convParams({ N: 2, C: 16, H: 6, W: 6, O: 32, KH: 3, KW: 3, padH: 1, padW: 1 }),
        convParams({ N: 3, C: 32, H: 9, W: 7, O: 16, KH: 3, KW: 3, padH: 1, padW: 1 }),
        convParams({ N: 2, C: 32, H: 4, W: 4, O: 32, KH: 3, KW: 3, padH: 1, padW: 1 }),
        convParams({ N: 2, C: 16, H: 10, W: 10, O: 16, KH: 3, KW: 3 })];
      let winoRan = 0;
      try {
        for (const algo of ['winograd', 'auto'] as const) {
          addon.convAlgo(algo);
          for (const p of [...convCases, ...wino]) {
            const xs = p.N * p.C * p.H * p.W; const ws = p.O * (p.C / p.groups) * p.KH * p.KW; const ys = p.N * p.O * p.OH * p.OW;
            const x = f32(xs); const w = f32(ws); const bias = f32(p.O); const gy = f32(ys);
            const tag = `${algo} conv ${JSON.stringify(p)}`;
            if (p.N > 0) winoRan += ['conv_fwd', 'conv_bwd_data', 'conv_bwd_weights'].filter((k) => /wino/.test(addon.convImpl(k as 'conv_fwd', p))).length;
            const y1 = f32(ys); const y2 = new Float64Array(ys);
            nb.conv2d(y1, x, w, bias, p); rb.conv2d(y2, toF64(x), toF64(w), toF64(bias), p);
            close(`${tag} forward`, y1, y2, 1e-4 * scale(y2), 1e-4);
            const gx1 = f32(xs, () => 9); const gx2 = new Float64Array(xs);
            nb.conv2dBackwardData(gx1, gy, w, p); rb.conv2dBackwardData(gx2, toF64(gy), toF64(w), p);
            close(`${tag} backward data`, gx1, gx2, 1e-4 * scale(gx2), 1e-4);
            const gw1 = f32(ws, () => 9); const gb1 = f32(p.O, () => 9); const gw2 = new Float64Array(ws); const gb2 = new Float64Array(p.O);
            nb.conv2dBackwardWeight(gw1, gb1, gy, x, p); rb.conv2dBackwardWeight(gw2, gb2, toF64(gy), toF64(x), p);
            close(`${tag} backward weight`, gw1, gw2, 1e-4 * scale(gw2), 1e-4);
            close(`${tag} backward bias`, gb1, gb2, 1e-4, 1e-4);
            if (layout === 'blocked' && L > 0 && p.C % L === 0 && p.O % L === 0 && p.groups === 1 && p.N > 0) {
              // blocked in, blocked out (as between layers): the same values once read back as NCHW
              const blocked = (a: Float32Array, C: number, H: number, W: number): Float32Array => {
                const c = f32(a.length); c.set(a); addon.relayout(c, p.N, C, H, W, true); return c;
              };
              const xb = blocked(x, p.C, p.H, p.W), gyb = blocked(gy, p.O, p.OH, p.OW);
              const y3 = f32(ys);
              if (addon.conv2d(y3, xb, w, bias, p, true, true)) addon.relayout(y3, p.N, p.O, p.OH, p.OW, false);
              close(`${tag} forward, blocked`, y3, y2, 1e-4 * scale(y2), 1e-4);
              const gx3 = f32(xs, () => 9);
              if (addon.conv2dBackwardData(gx3, gyb, w, p, true, true)) addon.relayout(gx3, p.N, p.C, p.H, p.W, false);
              close(`${tag} backward data, blocked`, gx3, gx2, 1e-4 * scale(gx2), 1e-4);
              const gw3 = f32(ws, () => 9);
              addon.conv2dBackwardWeight(gw3, null, gyb, xb, p, true, true);
              close(`${tag} backward weight, blocked`, gw3, gw2, 1e-4 * scale(gw2), 1e-4);
            }
          }
        }
        // where oneDNN has Winograd kernels (AVX-512), 'winograd' ran them; elsewhere (AVX2) every pass fell back to direct
        const isa = addon.info().isa;
        if (/^AVX512_CORE/.test(isa) && layout === 'blocked') assert.ok(winoRan > 0, `no Winograd kernel ran on ${isa}`);
        if (!/^AVX512/.test(isa)) assert.equal(winoRan, 0, `a Winograd kernel ran on ${isa}`);
        addon.convAlgo('direct');
        assert.doesNotMatch(addon.convImpl('conv_fwd', wino[0]!), /wino/, "'direct' ran Winograd");
        assert.throws(() => addon.convAlgo('fast' as 'auto'), /\[convAlgo\] algo must be 'auto', 'direct' or 'winograd', got 'fast'/);
      } finally {
        addon.convLayout(saved[0]); addon.convAlgo(saved[1]);
      }
    });
  }

  test('batch norm forward (training), inference, backward; with and without affine', () => {
    for (const [N, C, HW] of [[4, 3, 25], [1, 1, 1], [2, 5, 1], [37, 130, 1], [0, 70, 1], [8, 16, 300], [0, 2, 3]] as [number, number, number][]) {
      for (const affine of [true, false]) {
        const n = N * C * HW;
        const x = f32(n, () => rand() * 3 + 1); const gy = f32(n);
        const gamma = affine ? f32(C, () => 0.5 + rand()) : null; const beta = affine ? f32(C) : null;
        const y1 = f32(n); const m1 = f32(C); const s1 = f32(C);
        const y2 = new Float64Array(n); const m2 = new Float64Array(C); const s2 = new Float64Array(C);
        nb.batchNormForward(y1, m1, s1, x, gamma, beta, N, C, HW, 1e-5);
        rb.batchNormForward(y2, m2, s2, toF64(x), gamma && toF64(gamma), beta && toF64(beta), N, C, HW, 1e-5);
        const tag = `bn [${N},${C},${HW}] affine=${affine}`;
        if (n === 0) continue;
        close(`${tag} out`, y1, y2, 1e-4, 1e-4); close(`${tag} mean`, m1, m2); close(`${tag} invstd`, s1, s2, 1e-4, 1e-4);
        const variance = f32(C, () => 0.5 + rand());
        const i1 = f32(n); const i2 = new Float64Array(n);
        nb.batchNormInference(i1, x, m1, variance, gamma, beta, N, C, HW, 1e-5);
        rb.batchNormInference(i2, toF64(x), toF64(m1), toF64(variance), gamma && toF64(gamma), beta && toF64(beta), N, C, HW, 1e-5);
        close(`${tag} inference`, i1, i2);
        if (N * HW === 1) continue;  // zero variance: the gradient is all invstd-amplified rounding
        const gx1 = f32(n); const gg1 = f32(C); const gb1 = f32(C);
        const gx2 = new Float64Array(n); const gg2 = new Float64Array(C); const gb2 = new Float64Array(C);
        nb.batchNormBackward(gx1, affine ? gg1 : null, affine ? gb1 : null, gy, x, m1, s1, gamma, N, C, HW);
        rb.batchNormBackward(gx2, affine ? gg2 : null, affine ? gb2 : null, toF64(gy), toF64(x), toF64(m1), toF64(s1), gamma && toF64(gamma), N, C, HW);
        close(`${tag} gx`, gx1, gx2, 1e-4, 1e-3);
        if (affine) { close(`${tag} ggamma`, gg1, gg2, 1e-4, 1e-4); close(`${tag} gbeta`, gb1, gb2, 1e-4, 1e-4); }
      }
    }
  });

  test('fused batch norm + residual add + ReLU, forward and backward; with and without affine and residual', () => {
    for (const [N, C, HW] of [[4, 3, 25], [2, 5, 1], [37, 130, 1], [8, 16, 300], [0, 2, 3]] as [number, number, number][]) {
      for (const [affine, withResidual] of [[true, true], [false, true], [true, false]] as [boolean, boolean][]) {
        const n = N * C * HW;
        const x = f32(n, () => rand() * 3 + 1); const gy = f32(n); const r = withResidual ? f32(n) : null;
        const gamma = affine ? f32(C, () => 0.5 + rand()) : null; const beta = affine ? f32(C) : null;
        const y1 = f32(n); const m1 = f32(C); const s1 = f32(C);
        const y2 = new Float64Array(n); const m2 = new Float64Array(C); const s2 = new Float64Array(C);
        nb.batchNormReluForward(y1, m1, s1, x, r, gamma, beta, N, C, HW, 1e-5);
        rb.batchNormReluForward(y2, m2, s2, toF64(x), r && toF64(r), gamma && toF64(gamma), beta && toF64(beta), N, C, HW, 1e-5);
        const tag = `bn+relu [${N},${C},${HW}] affine=${affine} residual=${withResidual}`;
        if (n === 0) continue;
        close(`${tag} out`, y1, y2, 1e-4, 1e-4); close(`${tag} mean`, m1, m2); close(`${tag} invstd`, s1, s2, 1e-4, 1e-4);
        assert.ok(y1.some((v) => v === 0) && y1.some((v) => v > 0), `${tag}: the test needs both sides of the ReLU`);
        const gx1 = f32(n); const gr1 = f32(n); const gg1 = f32(C); const gb1 = f32(C);
        const gx2 = new Float64Array(n); const gr2 = new Float64Array(n); const gg2 = new Float64Array(C); const gb2 = new Float64Array(C);
        // the mask comes from the native output for both, so a value rounded to 0 on one side cannot flip it
        nb.batchNormReluBackward(gx1, withResidual ? gr1 : null, affine ? gg1 : null, affine ? gb1 : null, gy, y1, x, m1, s1, gamma, N, C, HW);
        rb.batchNormReluBackward(gx2, withResidual ? gr2 : null, affine ? gg2 : null, affine ? gb2 : null, toF64(gy), toF64(y1), toF64(x),
          toF64(m1), toF64(s1), gamma && toF64(gamma), N, C, HW);
        close(`${tag} gx`, gx1, gx2, 1e-4, 1e-3);
        if (withResidual) close(`${tag} gresidual`, gr1, gr2, 0, 0);
        if (affine) { close(`${tag} ggamma`, gg1, gg2, 1e-4, 1e-4); close(`${tag} gbeta`, gb1, gb2, 1e-4, 1e-4); }
      }
    }
  });

  test('layer norm forward and backward; with and without affine', () => {
    for (const [rows, D] of [[3, 8], [1, 1], [5, 1], [257, 192], [2000, 33], [0, 4]] as [number, number][]) {
      for (const affine of [true, false]) {
        const n = rows * D;
        const x = f32(n, () => rand() * 2 + 0.5); const gy = f32(n);
        const gamma = affine ? f32(D, () => 0.5 + rand()) : null; const beta = affine ? f32(D) : null;
        const y1 = f32(n); const m1 = f32(rows); const s1 = f32(rows);
        const y2 = new Float64Array(n); const m2 = new Float64Array(rows); const s2 = new Float64Array(rows);
        nb.layerNormForward(y1, m1, s1, x, gamma, beta, rows, D, 1e-5);
        rb.layerNormForward(y2, m2, s2, toF64(x), gamma && toF64(gamma), beta && toF64(beta), rows, D, 1e-5);
        const tag = `ln [${rows},${D}] affine=${affine}`;
        close(`${tag} out`, y1, y2, 1e-4, 1e-4); close(`${tag} mean`, m1, m2); close(`${tag} rstd`, s1, s2, 1e-4, 1e-4);
        if (D === 1) continue;
        const gx1 = f32(n); const gg1 = f32(D); const gb1 = f32(D);
        const gx2 = new Float64Array(n); const gg2 = new Float64Array(D); const gb2 = new Float64Array(D);
        nb.layerNormBackward(gx1, affine ? gg1 : null, affine ? gb1 : null, gy, x, m1, s1, gamma, rows, D);
        rb.layerNormBackward(gx2, affine ? gg2 : null, affine ? gb2 : null, toF64(gy), toF64(x), toF64(m1), toF64(s1), gamma && toF64(gamma), rows, D);
        close(`${tag} gx`, gx1, gx2, 1e-4, 1e-3);
        if (affine) { close(`${tag} ggamma`, gg1, gg2, 1e-3, 1e-4); close(`${tag} gbeta`, gb1, gb2, 1e-3, 1e-4); }
      }
    }
  });

  test('softmax and log-softmax, forward and backward', () => {
    for (const [rows, D] of [[1, 1], [3, 5], [64, 1000], [1000, 17], [0, 3], [2, 4099]] as [number, number][]) {
      for (const log of [false, true]) {
        const n = rows * D;
        const x = f32(n, () => (rand() * 2 - 1) * 8); const gy = f32(n);
        const y1 = f32(n); const y2 = new Float64Array(n);
        nb.softmax(y1, x, rows, D, log); rb.softmax(y2, toF64(x), rows, D, log);
        close(`softmax [${rows},${D}] log=${log}`, y1, y2, log ? 5e-6 : 1e-6, 1e-5);
        const g1 = f32(n); const g2 = new Float64Array(n);
        nb.softmaxBackward(g1, gy, y1, rows, D, log); rb.softmaxBackward(g2, toF64(gy), toF64(y1), rows, D, log);
        close(`softmax backward [${rows},${D}] log=${log}`, g1, g2, 1e-5, 1e-4);
      }
    }
  });

  test('fused attention forward and backward: qkv [B, N, 3, H, hd] in, heads merged out', () => {
    // ViT-Tiny's encoder (17 tokens, 3 heads of 64) and decoder (65 tokens, 4 heads of 32) shapes, and odd ones
    for (const [B, N, H, hd, scale] of [[2, 17, 3, 64, 0.125], [1, 65, 4, 32, 32 ** -0.5], [3, 1, 1, 1, 1], [2, 7, 2, 5, 3], [0, 4, 2, 8, 1]] as [number, number, number, number, number][]) {
      const C = H * hd;
      const qkv = f32(3 * B * N * C, () => (rand() * 2 - 1) * 2); const gout = f32(B * N * C);
      const o1 = f32(B * N * C); const p1 = f32(B * H * N * N);
      const o2 = new Float64Array(B * N * C); const p2 = new Float64Array(B * H * N * N);
      nb.attentionForward(o1, p1, qkv, B, N, H, hd, scale);
      rb.attentionForward(o2, p2, toF64(qkv), B, N, H, hd, scale);
      const tag = `attention [B${B} N${N} H${H} hd${hd}]`;
      close(`${tag} out`, o1, o2, 1e-5, 1e-4); close(`${tag} probs`, p1, p2, 1e-6, 1e-4);
      const g1 = f32(3 * B * N * C, () => 7); const g2 = new Float64Array(3 * B * N * C);
      nb.attentionBackward(g1, gout, qkv, p1, B, N, H, hd, scale);
      rb.attentionBackward(g2, toF64(gout), toF64(qkv), toF64(p1), B, N, H, hd, scale);
      close(`${tag} gqkv`, g1, g2, 1e-4, 1e-4);
    }
  });

  test('fused Linear + GELU forward and the scaled Linear backward (a fused MLP\'s kernels)', () => {
    // ViT-Tiny's encoder and decoder fc1 rows/widths (cut to a few rows), odd sizes, one row, zero rows
    for (const [rows, I, O] of [[37, 192, 768], [29, 128, 512], [7, 5, 3], [1, 1, 1], [0, 4, 6]] as [number, number, number][]) {
      // spread wide enough to reach GELU's tails (|v| up to ~8) where 1 - erf would cancel
      const x = f32(rows * I, () => (rand() * 2 - 1) * 3); const w = f32(O * I, () => (rand() * 2 - 1) / Math.sqrt(Math.max(I, 1)) * 4);
      const bias = f32(O);
      const o1 = f32(rows * O); const d1 = f32(rows * O); const o2 = new Float64Array(rows * O); const d2 = new Float64Array(rows * O);
      nb.linearGelu(o1, d1, x, w, bias, rows, I, O);
      rb.linearGelu(o2, d2, toF64(x), toF64(w), toF64(bias), rows, I, O);
      const tag = `linearGelu [${rows}, ${I}] -> ${O}`;
      close(`${tag} out`, o1, o2, 1e-5, 1e-4); close(`${tag} deriv`, d1, d2, 1e-5, 1e-4);
      // the backward of a Linear [rows, O] -> [rows, I'] reading that output, its gx scaled by deriv
      const I2 = O, O2 = Math.max(1, I >> 1);
      const w2 = f32(O2 * I2); const gy = f32(rows * O2);
      const gx1 = f32(rows * I2, () => 7); const gw1 = f32(O2 * I2, () => 7); const gb1 = f32(O2, () => 7);
      const gx2 = new Float64Array(rows * I2); const gw2 = new Float64Array(O2 * I2); const gb2 = new Float64Array(O2);
      nb.linearBackwardScaled(gx1, gw1, gb1, d1, gy, o1, w2, rows, I2, O2);
      rb.linearBackwardScaled(gx2, gw2, gb2, toF64(d1), toF64(gy), toF64(o1), toF64(w2), rows, I2, O2);
      close(`${tag} scaled backward gx`, gx1, gx2, 1e-4, 1e-4); close(`${tag} scaled backward gw`, gw1, gw2, 1e-4, 1e-4);
      close(`${tag} scaled backward gb`, gb1, gb2, 1e-4, 1e-4);
    }
    assert.throws(() => nb.linearBackwardScaled(f32(6), null, null, null, f32(6), f32(6), f32(1), 6, 1, 1), /gxScale is null but gx is requested/);
  });

  test('max and avg pooling, forward and backward, with padding and count_include_pad', () => {
    const cases: PoolParams[] = [
      poolParams(2, 3, 8, 8, 2, 2, 0, true), poolParams(2, 3, 7, 9, 3, 2, 1, true), poolParams(2, 3, 7, 9, 3, 2, 1, false),
      poolParams(1, 1, 1, 1, 1, 1, 0, true), poolParams(4, 64, 16, 16, 3, 2, 1, false), poolParams(3, 2, 5, 5, 3, 1, 1, true),
      poolParams(0, 2, 4, 4, 2, 2, 0, true),
    ];
    for (const p of cases) {
      const xs = p.N * p.C * p.H * p.W; const ys = p.N * p.C * p.OH * p.OW;
      const x = f32(xs); const gy = f32(ys);
      const tag = `pool ${JSON.stringify(p)}`;
      const y1 = f32(ys); const i1 = new Int32Array(ys); const y2 = new Float64Array(ys); const i2 = new Int32Array(ys);
      nb.maxPool2d(y1, i1, x, p); rb.maxPool2d(y2, i2, toF64(x), p);
      close(`${tag} max`, y1, y2, 0, 0); close(`${tag} max indices`, i1, i2, 0, 0);
      const g1 = f32(xs, () => 9); const g2 = new Float64Array(xs);
      nb.maxPool2dBackward(g1, gy, i1, p); rb.maxPool2dBackward(g2, toF64(gy), i2, p);
      close(`${tag} max backward`, g1, g2, 1e-6, 1e-6);
      const a1 = f32(ys); const a2 = new Float64Array(ys);
      nb.avgPool2d(a1, x, p); rb.avgPool2d(a2, toF64(x), p);
      close(`${tag} avg`, a1, a2, 1e-6, 1e-5);
      const h1 = f32(xs, () => 9); const h2 = new Float64Array(xs);
      nb.avgPool2dBackward(h1, gy, p); rb.avgPool2dBackward(h2, toF64(gy), p);
      close(`${tag} avg backward`, h1, h2, 1e-6, 1e-5);
    }
  });
});

// ---------------------------------------------------------------- reference layer kernels, independently

/** conv2d as im2col + the reference matmul: cols [C*KH*KW, OH*OW] per image, out = w [O, C*KH*KW] @ cols. */
function convIm2col(x: Float64Array, w: Float64Array, bias: Float64Array | null, p: ConvParams, backend: Backend): Float64Array {
  assert.equal(p.groups, 1);
  const { N, C, H, W, O, KH, KW, OH, OW } = p;
  const Kd = C * KH * KW; const L = OH * OW;
  const out = new Float64Array(N * O * L);
  for (let n = 0; n < N; n++) {
    const cols = new Float64Array(Kd * L);
    for (let c = 0; c < C; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const row = (c * KH + kh) * KW + kw;
      for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
        const ih = oh * p.strideH - p.padH + kh * p.dilationH; const iw = ow * p.strideW - p.padW + kw * p.dilationW;
        cols[row * L + oh * OW + ow] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((n * C + c) * H + ih) * W + iw]! : 0;
      }
    }
    const o = new Float64Array(O * L);
    backend.matmul(o, w, cols, null, 1, O, L, Kd, false, false, 0, 0);
    for (let k = 0; k < O * L; k++) out[n * O * L + k] = o[k]! + (bias ? bias[Math.floor(k / L)]! : 0);
  }
  return out;
}

describe('reference layer kernels, independent checks', () => {
  test('conv2d equals im2col + matmul', () => {
    for (const p of [convParams({ N: 2, C: 3, H: 6, W: 7, O: 4, KH: 3, KW: 3, padH: 1, padW: 1 }),
      convParams({ N: 1, C: 2, H: 9, W: 8, O: 3, KH: 3, KW: 2, strideH: 2, strideW: 1, dilationH: 2, padW: 1 })]) {
      const x = f64(p.N * p.C * p.H * p.W); const w = f64(p.O * p.C * p.KH * p.KW); const bias = f64(p.O);
      const y = new Float64Array(p.N * p.O * p.OH * p.OW);
      rb.conv2d(y, x, w, bias, p);
      close('conv2d vs im2col', y, convIm2col(x, w, bias, p, rb), 1e-12, 1e-12);
    }
  });

  test('matmul transposed operands equal explicit transposes', () => {
    const [M, N, K] = [5, 4, 3];
    const a = f64(M * K); const b = f64(K * N);
    const aT = new Float64Array(M * K); const bT = new Float64Array(K * N);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) aT[k * M + i] = a[i * K + k]!;
    for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) bT[j * K + k] = b[k * N + j]!;
    const o1 = new Float64Array(M * N); const o2 = new Float64Array(M * N);
    rb.matmul(o1, a, b, null, 1, M, N, K, false, false, 0, 0);
    rb.matmul(o2, aT, bT, null, 1, M, N, K, true, true, 0, 0);
    close('matmul transposes', o2, o1, 1e-14, 1e-14);
    let naive = 0;
    for (let k = 0; k < K; k++) naive += a[1 * K + k]! * b[k * N + 2]!;
    close('matmul element', [o1[1 * N + 2]!], [naive], 1e-14, 1e-14);
  });

  test('softmax rows sum to 1; log-softmax exponentiates to softmax', () => {
    const rows = 7; const D = 13;
    const x = f64(rows * D, () => (rand() * 2 - 1) * 30);
    const y = new Float64Array(rows * D); const ly = new Float64Array(rows * D);
    rb.softmax(y, x, rows, D, false); rb.softmax(ly, x, rows, D, true);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += y[r * D + i]!;
      assert.ok(Math.abs(s - 1) < 1e-12, `row ${r} sums to ${s}`);
    }
    close('exp(log-softmax)', ly.map(Math.exp), y, 1e-15, 1e-12);
  });

  test('batch norm output has zero mean and unit variance per channel', () => {
    const [N, C, HW] = [3, 4, 10];
    const x = f64(N * C * HW, () => rand() * 5 + 2);
    const y = new Float64Array(N * C * HW); const m = new Float64Array(C); const s = new Float64Array(C);
    rb.batchNormForward(y, m, s, x, null, null, N, C, HW, 0);
    for (let c = 0; c < C; c++) {
      let mu = 0; let v = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) mu += y[(n * C + c) * HW + i]!;
      mu /= N * HW;
      for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) v += (y[(n * C + c) * HW + i]! - mu) ** 2;
      assert.ok(Math.abs(mu) < 1e-12 && Math.abs(v / (N * HW) - 1) < 1e-10, `channel ${c}: mean ${mu}, var ${v / (N * HW)}`);
    }
  });
});

// ---------------------------------------------------------------- finite differences (float64, reference)

const EPS = 1e-6;

/**
 * Checks an analytic gradient against central differences of L(x) = sum(f(x) * y), eps 1e-6,
 * atol 1e-5, rtol 1e-3 (PyTorch's gradcheck settings).
 */
function gradcheck(what: string, x: Float64Array, loss: () => number, analytic: Float64Array): void {
  const numeric = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v + EPS; const lp = loss();
    x[i] = v - EPS; const lm = loss();
    x[i] = v;
    numeric[i] = (lp - lm) / (2 * EPS);
  }
  close(`${what} (analytic vs central differences)`, analytic, numeric, 1e-5, 1e-3);
}
const dot = (a: Float64Array, b: Float64Array): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };

describe('reference backward kernels: float64 finite differences', () => {
  test('conv2d backward data, weight, bias', () => {
    for (const p of [convParams({ N: 2, C: 2, H: 5, W: 4, O: 3, KH: 3, KW: 2, padH: 1, padW: 1, strideH: 2 }),
      convParams({ N: 1, C: 4, H: 4, W: 4, O: 2, KH: 2, KW: 2, groups: 2, dilationH: 2, padH: 1 })]) {
      const x = f64(p.N * p.C * p.H * p.W); const w = f64(p.O * (p.C / p.groups) * p.KH * p.KW); const bias = f64(p.O);
      const cot = f64(p.N * p.O * p.OH * p.OW);
      const loss = (): number => { const y = new Float64Array(cot.length); rb.conv2d(y, x, w, bias, p); return dot(y, cot); };
      const gx = new Float64Array(x.length); const gw = new Float64Array(w.length); const gb = new Float64Array(p.O);
      rb.conv2dBackwardData(gx, cot, w, p); rb.conv2dBackwardWeight(gw, gb, cot, x, p);
      gradcheck('conv2d gx', x, loss, gx); gradcheck('conv2d gw', w, loss, gw); gradcheck('conv2d gb', bias, loss, gb);
    }
  });

  test('batch norm backward (x, gamma, beta)', () => {
    const [N, C, HW] = [3, 2, 4];
    const x = f64(N * C * HW); const gamma = f64(C, () => 0.5 + rand()); const beta = f64(C); const cot = f64(N * C * HW);
    const loss = (): number => {
      const y = new Float64Array(x.length);
      rb.batchNormForward(y, new Float64Array(C), new Float64Array(C), x, gamma, beta, N, C, HW, 1e-5);
      return dot(y, cot);
    };
    const y = new Float64Array(x.length); const m = new Float64Array(C); const s = new Float64Array(C);
    rb.batchNormForward(y, m, s, x, gamma, beta, N, C, HW, 1e-5);
    const gx = new Float64Array(x.length); const gg = new Float64Array(C); const gb = new Float64Array(C);
    rb.batchNormBackward(gx, gg, gb, cot, x, m, s, gamma, N, C, HW);
    gradcheck('bn gx', x, loss, gx); gradcheck('bn ggamma', gamma, loss, gg); gradcheck('bn gbeta', beta, loss, gb);
  });

  test('layer norm backward (x, gamma, beta)', () => {
    const [rows, D] = [4, 6];
    const x = f64(rows * D); const gamma = f64(D, () => 0.5 + rand()); const beta = f64(D); const cot = f64(rows * D);
    const loss = (): number => {
      const y = new Float64Array(x.length);
      rb.layerNormForward(y, new Float64Array(rows), new Float64Array(rows), x, gamma, beta, rows, D, 1e-5);
      return dot(y, cot);
    };
    const y = new Float64Array(x.length); const m = new Float64Array(rows); const s = new Float64Array(rows);
    rb.layerNormForward(y, m, s, x, gamma, beta, rows, D, 1e-5);
    const gx = new Float64Array(x.length); const gg = new Float64Array(D); const gb = new Float64Array(D);
    rb.layerNormBackward(gx, gg, gb, cot, x, m, s, gamma, rows, D);
    gradcheck('ln gx', x, loss, gx); gradcheck('ln ggamma', gamma, loss, gg); gradcheck('ln gbeta', beta, loss, gb);
  });

  test('softmax and log-softmax backward', () => {
    const [rows, D] = [3, 5];
    for (const log of [false, true]) {
      const x = f64(rows * D, () => (rand() * 2 - 1) * 3); const cot = f64(rows * D);
      const loss = (): number => { const y = new Float64Array(x.length); rb.softmax(y, x, rows, D, log); return dot(y, cot); };
      const y = new Float64Array(x.length); rb.softmax(y, x, rows, D, log);
      const gx = new Float64Array(x.length); rb.softmaxBackward(gx, cot, y, rows, D, log);
      gradcheck(`softmax log=${log} gx`, x, loss, gx);
    }
  });

  test('max and avg pool backward', () => {
    for (const p of [poolParams(2, 2, 5, 6, 3, 2, 1, true), poolParams(1, 2, 5, 5, 2, 1, 1, false), poolParams(1, 1, 4, 4, 2, 2, 0, true)]) {
      const xs = p.N * p.C * p.H * p.W; const ys = p.N * p.C * p.OH * p.OW;
      const x = f64(xs); const cot = f64(ys);  // distinct random values: no ties, so max is differentiable
      const idx = new Int32Array(ys);
      const maxLoss = (): number => { const y = new Float64Array(ys); rb.maxPool2d(y, new Int32Array(ys), x, p); return dot(y, cot); };
      rb.maxPool2d(new Float64Array(ys), idx, x, p);
      const gx = new Float64Array(xs); rb.maxPool2dBackward(gx, cot, idx, p);
      gradcheck(`maxpool ${JSON.stringify(p)}`, x, maxLoss, gx);
      const avgLoss = (): number => { const y = new Float64Array(ys); rb.avgPool2d(y, x, p); return dot(y, cot); };
      const ga = new Float64Array(xs); rb.avgPool2dBackward(ga, cot, p);
      gradcheck(`avgpool ${JSON.stringify(p)}`, x, avgLoss, ga);
    }
  });
});
