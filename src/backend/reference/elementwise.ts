// Reference elementwise, reduction and strided-copy kernels: plain loops, dtype-generic, float64-capable.
// No Node-only APIs: this file must run in a browser.
import type { BinaryOp, FloatArray, ReduceOp, TypedArray, UnaryGradOp, UnaryOp } from '../backend.js';

// Abramowitz-Stegun 7.1.26 is too coarse for a float64 oracle; this is W. J. Cody's rational erf,
// accurate to ~1e-16, so gelu's gradient check in float64 is meaningful.
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 0.5) {
    const t = x * x;
    const top = (((0.185777706184603153 * t + 3.16112374387056560) * t + 113.864154151050156) * t
      + 377.485237685302021) * t + 3209.37758913846947;
    const bot = (((t + 23.6012909523441209) * t + 244.024637934444173) * t + 1282.61652607737228) * t
      + 2844.23683333400025;
    return x * top / bot;
  }
  return x < 0 ? -1 + erfcPositive(ax) : 1 - erfcPositive(ax);
}

function erfcPositive(x: number): number {
  if (x > 27) return 0;
  let r: number;
  if (x < 4) {
    const p = [5.64188496988670089e-1, 8.88314979438837594, 6.61191906371416295e1, 2.98635138197400131e2,
      8.81952221241769090e2, 1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3,
      2.15311535474403846e-8];
    const q = [1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2, 1.62138957456669019e3,
      3.29079923573345963e3, 4.36261909014324716e3, 3.43936767414372164e3, 1.23033935480374942e3];
    let top = p[8]! * x;
    let bot = x;
    for (let i = 0; i < 7; i++) { top = (top + p[i]!) * x; bot = (bot + q[i]!) * x; }
    r = (top + p[7]!) / (bot + q[7]!);
  } else {
    const p = [3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4, 1.63153871373020978e-2];
    const q = [2.56852019228982242, 1.87295284992346725, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3];
    const z = 1 / (x * x);
    let top = p[5]! * z;
    let bot = z;
    for (let i = 0; i < 4; i++) { top = (top + p[i]!) * z; bot = (bot + q[i]!) * z; }
    r = z * (top + p[4]!) / (bot + q[4]!);
    r = (0.564189583547756287 - r) / x;
  }
  // exp(-x^2) split as in Cody's code to keep precision
  const xsq = Math.trunc(x * 16) / 16;
  const del = (x - xsq) * (x + xsq);
  return Math.exp(-xsq * xsq) * Math.exp(-del) * r;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export function fill(out: TypedArray, value: number): void {
  out.fill(value);
}

export function cast(out: TypedArray, x: TypedArray): void {
  if (out instanceof Int32Array || out instanceof Uint8Array) {
    for (let i = 0; i < x.length; i++) out[i] = Math.trunc(x[i]!);
  } else {
    for (let i = 0; i < x.length; i++) out[i] = x[i]!;
  }
}

function unaryFn(op: UnaryOp, p0: number, p1: number): (v: number) => number {
  switch (op) {
    case 'neg': return (v) => -v;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (v) => 1 / Math.sqrt(v);
    case 'abs': return Math.abs;
    case 'sign': return (v) => (v > 0 ? 1 : v < 0 ? -1 : v);
    case 'square': return (v) => v * v;
    case 'reciprocal': return (v) => 1 / v;
    case 'relu': return (v) => (v > 0 ? v : v !== v ? v : 0);
    case 'gelu': return (v) => 0.5 * v * (1 + erf(v * SQRT1_2));
    case 'sigmoid': return (v) => 1 / (1 + Math.exp(-v));
    case 'tanh': return Math.tanh;
    case 'erf': return erf;
    case 'addScalar': return (v) => v + p0;
    case 'mulScalar': return (v) => v * p0;
    case 'powScalar': return (v) => Math.pow(v, p0);
    case 'rsubScalar': return (v) => p0 - v;
    case 'rdivScalar': return (v) => p0 / v;
    case 'clamp': return (v) => (v < p0 ? p0 : v > p1 ? p1 : v);
    case 'gtScalar': return (v) => (v > p0 ? 1 : 0);
  }
}

export function unary(op: UnaryOp, out: TypedArray, x: TypedArray, p0: number, p1: number): void {
  const f = unaryFn(op, p0, p1);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]!);
}

export function unaryGrad(op: UnaryGradOp, gx: FloatArray, gy: FloatArray, x: FloatArray, y: FloatArray): void {
  const n = gy.length;
  switch (op) {
    case 'relu':
      for (let i = 0; i < n; i++) gx[i] = x[i]! > 0 ? gy[i]! : 0;
      return;
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const cdf = 0.5 * (1 + erf(v * SQRT1_2));
        const pdf = INV_SQRT_2PI * Math.exp(-0.5 * v * v);
        gx[i] = gy[i]! * (cdf + v * pdf);
      }
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) gx[i] = gy[i]! * y[i]! * (1 - y[i]!);
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) gx[i] = gy[i]! * (1 - y[i]! * y[i]!);
      return;
  }
}

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return Math.pow;
    // NaN propagates, as in torch.maximum
    case 'maximum': return (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b);
    case 'minimum': return (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b);
    case 'eq': return (a, b) => (a === b ? 1 : 0);
    case 'ne': return (a, b) => (a !== b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
  }
}

/** Calls body(outIndex, offsets...) for every element of `shape`, walking several strided operands. */
function forEachIndex(shape: readonly number[], strides: readonly (readonly number[])[],
  body: (i: number, offs: number[]) => void): void {
  const nd = shape.length;
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  const idx = new Array<number>(nd).fill(0);
  const offs = strides.map(() => 0);
  for (let i = 0; i < n; i++) {
    body(i, offs);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      for (let k = 0; k < strides.length; k++) offs[k]! += strides[k]![d]!;
      if (idx[d]! < shape[d]!) break;
      for (let k = 0; k < strides.length; k++) offs[k]! -= strides[k]![d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export function binary(op: BinaryOp, out: TypedArray, a: TypedArray, b: TypedArray, shape: readonly number[],
  aStrides: readonly number[], bStrides: readonly number[]): void {
  const f = binaryFn(op);
  forEachIndex(shape, [aStrides, bStrides], (i, o) => { out[i] = f(a[o[0]!]!, b[o[1]!]!); });
}

export function where(out: TypedArray, cond: Uint8Array, a: TypedArray, b: TypedArray, shape: readonly number[],
  condStrides: readonly number[], aStrides: readonly number[], bStrides: readonly number[]): void {
  forEachIndex(shape, [condStrides, aStrides, bStrides], (i, o) => {
    out[i] = cond[o[0]!]! ? a[o[1]!]! : b[o[2]!]!;
  });
}

export function reduce(op: ReduceOp, out: TypedArray, x: TypedArray, outer: number, r: number, inner: number): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * r * inner + i;
      let acc = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
      for (let j = 0; j < r; j++) {
        const v = x[base + j * inner]!;
        if (op === 'sum') acc += v;
        else if (v !== v) { acc = NaN; break; }
        else if (op === 'max' ? v > acc : v < acc) acc = v;
      }
      out[o * inner + i] = acc;
    }
  }
}

export function argReduce(op: 'max' | 'min', out: Int32Array, x: TypedArray, outer: number, r: number, inner: number): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * r * inner + i;
      let best = 0;
      let bv = x[base]!;
      for (let j = 1; j < r; j++) {
        const v = x[base + j * inner]!;
        if (bv !== bv) break; // NaN wins, as in PyTorch
        if (v !== v || (op === 'max' ? v > bv : v < bv)) { bv = v; best = j; }
      }
      out[o * inner + i] = best;
    }
  }
}

export function strided(out: TypedArray, outOffset: number, outStrides: readonly number[],
  x: TypedArray, xOffset: number, xStrides: readonly number[], shape: readonly number[], accumulate: boolean): void {
  if (accumulate) {
    forEachIndex(shape, [outStrides, xStrides], (_i, o) => {
      const k = outOffset + o[0]!;
      out[k] = out[k]! + x[xOffset + o[1]!]!;
    });
  } else {
    forEachIndex(shape, [outStrides, xStrides], (_i, o) => { out[outOffset + o[0]!] = x[xOffset + o[1]!]!; });
  }
}
