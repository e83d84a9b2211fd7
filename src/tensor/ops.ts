// Primitive ops: validation, forward through the tensor's backend, and the backward rule, all in one place.
// Backward rules are written with ops where ops express them; the ops whose gradient has a kernel of its own
// (activations, slice, indexSelect, conv, batch norm, layer norm, softmax, pools) call that
// backward kernel, which every backend implements (the reference one is the oracle tests compare against).
// Composite ops (mean, var, softmax over other dims, cross-entropy, attention, ...) live in composite.ts.
import type { BinaryOp, BlockedAct, BlockedKernels, ConvParams, DType, DeviceName, FloatArray, PoolParams, TypedArray,
  UnaryOp } from '../backend/backend.js';
import { record, noGrad } from './autograd.js';
import { empty, emptyBf16Blocked, fmtShape, sizeOf, contiguousStrides, Tensor, Storage, type Shape } from './tensor.js';
import { getBackend } from './device.js';
import { globalRng, type Rng } from './rng.js';

// ---------------------------------------------------------------- helpers

function live(op: string, ...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) {
    if (t != null && t.isDisposed) throw new Error(`[${op}] use of a freed tensor (shape ${fmtShape(t.shape)})`);
  }
}

function sameDevice(op: string, a: Tensor, b: Tensor): void {
  if (a.device !== b.device) {
    throw new Error(`[${op}] tensors on different devices: ${a.device} ${fmtShape(a.shape)} and ${b.device} ${fmtShape(b.shape)}`);
  }
}

function sameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw new Error(`[${op}] dtype mismatch: ${a.dtype} ${fmtShape(a.shape)} and ${b.dtype} ${fmtShape(b.shape)}`);
  }
}

function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

function requireFloat(op: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new Error(`[${op}] expected a float tensor, got ${t.dtype} ${fmtShape(t.shape)}`);
}

function fdata(t: Tensor): FloatArray {
  return t.data as FloatArray;
}

function like(t: Tensor, shape: Shape = t.shape, dtype: DType = t.dtype, zero = false): Tensor {
  return empty(shape, dtype, t.device, zero);
}

export function normDim(op: string, dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) {
    throw new Error(`[${op}] dim ${dim} out of range for a ${ndim}-D tensor`);
  }
  return d;
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`[${op}] shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of a contiguous tensor of `shape` laid over `outShape` (0 where broadcast). */
function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const s = contiguousStrides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : s[i - off]!));
}

/** Sums a broadcast gradient back down to `shape`. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const off = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) dims.push(i);
  const s = sum(g, dims, true);
  return reshape(s, shape);
}

// ---------------------------------------------------------------- creation

export interface CreateOptions { dtype?: DType; device?: DeviceName; requiresGrad?: boolean }

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad === true) {
    if (!isFloat(t.dtype)) throw new Error(`[tensor] only float tensors can require grad, got ${t.dtype}`);
    t.requiresGrad = true;
  }
  return t;
}

/** A tensor from numbers or a typed array; shape defaults to 1-D. */
export function tensor(values: ArrayLike<number>, shape?: Shape, opts: CreateOptions = {}): Tensor {
  const sh = shape ?? [values.length];
  if (sizeOf(sh) !== values.length) {
    throw new Error(`[tensor] ${values.length} values do not fill shape ${fmtShape(sh)}`);
  }
  const dtype = opts.dtype ?? (values instanceof Float64Array ? 'float64' : values instanceof Int32Array ? 'int32'
    : values instanceof Uint8Array ? 'uint8' : 'float32');
  const t = empty(sh, dtype, opts.device);
  const d = t.data;
  if (d instanceof Int32Array || d instanceof Uint8Array) {
    for (let i = 0; i < values.length; i++) d[i] = Math.trunc(values[i]!);
  } else {
    d.set(values);
  }
  return finish(t, opts);
}

export function scalar(value: number, opts: CreateOptions = {}): Tensor {
  return tensor([value], [], opts);
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  const t = empty(shape, opts.dtype ?? 'float32', opts.device, value === 0);
  if (value !== 0) t.backend.fill(t.data, value);
  return finish(t, opts);
}

export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor { return full(shape, 0, opts); }
export function ones(shape: Shape, opts: CreateOptions = {}): Tensor { return full(shape, 1, opts); }
export function zerosLike(t: Tensor): Tensor { return full(t.shape, 0, { dtype: t.dtype, device: t.device }); }
export function onesLike(t: Tensor): Tensor { return full(t.shape, 1, { dtype: t.dtype, device: t.device }); }

export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  const [lo, hi] = end === undefined ? [0, start] : [start, end];
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const vals = new Array<number>(n);
  for (let i = 0; i < n; i++) vals[i] = lo + i * step;
  return tensor(vals, [n], { dtype: 'float32', ...opts });
}

function fromGenerator(shape: Shape, opts: CreateOptions, gen: () => number): Tensor {
  const n = sizeOf(shape);
  const t = empty(shape, opts.dtype ?? 'float32', opts.device);
  const d = t.data;
  for (let i = 0; i < n; i++) d[i] = gen();
  return finish(t, opts);
}

export interface RandomOptions extends CreateOptions { rng?: Rng }

export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  return fromGenerator(shape, opts, () => rng.uniform());
}

export function uniform(shape: Shape, lo: number, hi: number, opts: RandomOptions = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  return fromGenerator(shape, opts, () => rng.uniformRange(lo, hi));
}

export function randn(shape: Shape, opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  const mean = opts.mean ?? 0;
  const std = opts.std ?? 1;
  return fromGenerator(shape, opts, () => mean + std * rng.normal());
}

export function truncNormal(shape: Shape, std: number, opts: RandomOptions & { mean?: number; a?: number; b?: number } = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  const mean = opts.mean ?? 0;
  return fromGenerator(shape, opts, () => rng.truncatedNormal(mean, std, opts.a ?? -2, opts.b ?? 2));
}

export function bernoulli(shape: Shape, p: number, opts: RandomOptions = {}): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`[bernoulli] p must be in [0, 1], got ${p}`);
  const rng = opts.rng ?? globalRng;
  return fromGenerator(shape, opts, () => rng.bernoulli(p));
}

export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  return tensor(rng.randperm(n), [n], { dtype: 'int32', ...(opts.device !== undefined ? { device: opts.device } : {}) });
}

export function randint(shape: Shape, low: number, high: number, opts: RandomOptions = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  return fromGenerator(shape, { dtype: 'int32', ...opts }, () => low + rng.int(high - low));
}

/** A copy of t on another device (or with another dtype). */
export function to(t: Tensor, device: DeviceName, dtype: DType = t.dtype): Tensor {
  live('to', t);
  const b = getBackend(device);
  if (!b.supports(dtype)) throw new Error(`[to] device '${device}' does not support dtype ${dtype}`);
  const out = empty(t.shape, dtype, device);
  const src = t.data;
  const dst = out.data;
  if (dtype === t.dtype) dst.set(src as never);
  else getBackend('reference').cast(dst, src);
  return out;
}

// ---------------------------------------------------------------- elementwise

function unaryOp(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  live(op, x);
  const out = like(x);
  // elementwise: a blocked input gives a blocked output, element for element
  const xb = x.blockedData;
  x.backend.unary(op, out.data, xb ?? x.data, p0, p1);
  if (xb !== null) out.markBlocked();
  return out;
}

export function neg(x: Tensor): Tensor {
  return record(unaryOp('neg', x), 'neg', [x], (g) => [neg(g)]);
}

export function exp(x: Tensor): Tensor {
  const y = unaryOp('exp', x);
  return record(y, 'exp', [x], (g) => [mul(g, y)]);
}

export function log(x: Tensor): Tensor {
  return record(unaryOp('log', x), 'log', [x], (g) => [div(g, x)]);
}

export function sqrt(x: Tensor): Tensor {
  const y = unaryOp('sqrt', x);
  return record(y, 'sqrt', [x], (g) => [div(mulScalar(g, 0.5), y)]);
}

export function rsqrt(x: Tensor): Tensor {
  const y = unaryOp('rsqrt', x);
  // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  return record(y, 'rsqrt', [x], (g) => [mul(g, mulScalar(unaryOp('powScalar', y, 3), -0.5))]);
}

export function abs(x: Tensor): Tensor {
  return record(unaryOp('abs', x), 'abs', [x], (g) => [mul(g, unaryOp('sign', x))]);
}

export function sign(x: Tensor): Tensor {
  return unaryOp('sign', x);
}

export function square(x: Tensor): Tensor {
  return record(unaryOp('square', x), 'square', [x], (g) => [mul(g, mulScalar(x, 2))]);
}

function activation(op: 'relu' | 'gelu' | 'sigmoid' | 'tanh', x: Tensor): Tensor {
  requireFloat(op, x);
  const y = unaryOp(op, x);
  return record(y, op, [x], (g) => {
    const gx = like(x);
    const gb = g.blockedData, xb = x.blockedData, yb = y.blockedData;
    if (gb !== null && xb !== null && yb !== null) {
      x.backend.unaryGrad(op, fdata(gx), gb, xb, yb);
      gx.markBlocked();
    } else {
      x.backend.unaryGrad(op, fdata(gx), fdata(g), fdata(x), fdata(y));
    }
    return [gx];
  });
}

export function relu(x: Tensor): Tensor { return activation('relu', x); }
/** GELU in its exact erf form, as nn.GELU() and timm's ViT use. */
export function gelu(x: Tensor): Tensor { return activation('gelu', x); }
export function sigmoid(x: Tensor): Tensor { return activation('sigmoid', x); }
export function tanh(x: Tensor): Tensor { return activation('tanh', x); }

export function erf(x: Tensor): Tensor {
  // d/dx erf(x) = 2/sqrt(pi) exp(-x^2)
  return record(unaryOp('erf', x), 'erf', [x], (g) => [mul(g, mulScalar(exp(neg(square(x))), 2 / Math.sqrt(Math.PI)))]);
}

export function addScalar(x: Tensor, s: number): Tensor {
  return record(unaryOp('addScalar', x, s), 'addScalar', [x], (g) => [g]);
}

export function mulScalar(x: Tensor, s: number): Tensor {
  return record(unaryOp('mulScalar', x, s), 'mulScalar', [x], (g) => [mulScalar(g, s)]);
}

export function powScalar(x: Tensor, p: number): Tensor {
  return record(unaryOp('powScalar', x, p), 'powScalar', [x],
    (g) => [mul(g, mulScalar(unaryOp('powScalar', x, p - 1), p))]);
}

export function rsubScalar(x: Tensor, s: number): Tensor {
  return record(unaryOp('rsubScalar', x, s), 'rsubScalar', [x], (g) => [neg(g)]);
}

export function rdivScalar(x: Tensor, s: number): Tensor {
  // d/dx s/x = -s/x^2
  return record(unaryOp('rdivScalar', x, s), 'rdivScalar', [x],
    (g) => [mul(g, mulScalar(unaryOp('powScalar', x, -2), -s))]);
}

/** Clamps into [min, max]; the gradient passes where min <= x <= max, as in PyTorch. */
export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  if (min > max) throw new Error(`[clamp] min ${min} > max ${max}`);
  return record(unaryOp('clamp', x, min, max), 'clamp', [x], (g) => {
    const inside = mul(cmpScalar('ge', x, min), cmpScalar('le', x, max));
    return [mul(g, inside)];
  });
}

function cmpScalar(op: 'ge' | 'le', x: Tensor, s: number): Tensor {
  const sc = full([], s, { dtype: x.dtype, device: x.device });
  const out = like(x);
  x.backend.binary(op, out.data, x.data, sc.data, x.shape, contiguousStrides(x.shape), x.shape.map(() => 0));
  sc.dispose();
  return out;
}

function binaryForward(op: BinaryOp, a: Tensor, b: Tensor, outDtype: DType): Tensor {
  live(op, a, b);
  sameDevice(op, a, b);
  sameDtype(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = like(a, shape, outDtype);
  const ab = a.blockedData, bb = b.blockedData;
  if (ab !== null && bb !== null && sameShape(a.shape, b.shape) && outDtype === a.dtype) {
    // both blocked (the same layout): elementwise over the buffers as they are
    a.backend.binary(op, out.data, ab, bb, [out.size], [1], [1]);
    out.markBlocked();
    return out;
  }
  a.backend.binary(op, out.data, a.data, b.data, shape, broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape));
  return out;
}

type Operand = Tensor | number;

export function add(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return addScalar(a, b);
  const y = binaryForward('add', a, b, a.dtype);
  return record(y, 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return addScalar(a, -b);
  const y = binaryForward('sub', a, b, a.dtype);
  return record(y, 'sub', [a, b], (g) => [sumTo(g, a.shape), sumTo(neg(g), b.shape)]);
}

export function mul(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return mulScalar(a, b);
  const y = binaryForward('mul', a, b, a.dtype);
  return record(y, 'mul', [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
  ]);
}

export function div(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return mulScalar(a, 1 / b);
  const y = binaryForward('div', a, b, a.dtype);
  return record(y, 'div', [a, b], (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    // d/db a/b = -a/b^2 = -y/b
    b.requiresGrad ? sumTo(neg(div(mul(g, y), b)), b.shape) : null,
  ]);
}

export function pow(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return powScalar(a, b);
  const y = binaryForward('pow', a, b, a.dtype);
  return record(y, 'pow', [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, mul(b, pow(a, addScalar(b, -1)))), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, mul(y, log(a))), b.shape) : null,
  ]);
}

/** Elementwise max; on ties the gradient is split evenly, as torch.maximum does. */
export function maximum(a: Tensor, b: Tensor): Tensor {
  const y = binaryForward('maximum', a, b, a.dtype);
  return record(y, 'maximum', [a, b], (g) => minMaxGrad(g, a, b, 'gt'));
}

export function minimum(a: Tensor, b: Tensor): Tensor {
  const y = binaryForward('minimum', a, b, a.dtype);
  return record(y, 'minimum', [a, b], (g) => minMaxGrad(g, a, b, 'lt'));
}

function minMaxGrad(g: Tensor, a: Tensor, b: Tensor, wins: 'gt' | 'lt'): Tensor[] {
  const aw = binaryForward(wins, a, b, a.dtype);
  const tie = mulScalar(binaryForward('eq', a, b, a.dtype), 0.5);
  const wa = add(aw, tie);
  const wb = rsubScalar(wa, 1);
  return [sumTo(mul(g, wa), a.shape), sumTo(mul(g, wb), b.shape)];
}

/** Comparisons return uint8 masks (no gradient). */
export function compare(op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', a: Tensor, b: Operand): Tensor {
  const bt = typeof b === 'number' ? full([], b, { dtype: a.dtype, device: a.device }) : b;
  const out = binaryForward(op, a, bt, 'uint8');
  if (bt !== b) bt.dispose();
  return out;
}

/** out = cond ? a : b with broadcasting; cond is a uint8 mask. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  live('where', cond, a, b);
  if (cond.dtype !== 'uint8') throw new Error(`[where] condition must be uint8, got ${cond.dtype} ${fmtShape(cond.shape)}`);
  sameDevice('where', a, b);
  sameDevice('where', cond, a);
  sameDtype('where', a, b);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, a.shape), b.shape);
  const out = like(a, shape);
  a.backend.where(out.data, cond.data as Uint8Array, a.data, b.data, shape, broadcastStrides(cond.shape, shape),
    broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape));
  return record(out, 'where', [a, b], (g) => {
    const z = zerosLike(g);
    return [sumTo(where(cond, g, z), a.shape), sumTo(where(cond, z, g), b.shape)];
  });
}

/** Converts dtype; float-to-float casts pass gradients through. */
export function cast(x: Tensor, dtype: DType): Tensor {
  live('cast', x);
  if (x.dtype === dtype) return x;
  if (!x.backend.supports(dtype)) throw new Error(`[cast] device '${x.device}' does not support dtype ${dtype}`);
  const out = like(x, x.shape, dtype);
  x.backend.cast(out.data, x.data);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}

/** A copy with its own buffer; gradients pass through. */
export function clone(x: Tensor): Tensor {
  live('clone', x);
  const out = like(x);
  (out.data as TypedArray & { set(a: ArrayLike<number>): void }).set(x.data);
  return record(out, 'clone', [x], (g) => [g]);
}

/** Cuts the graph: a tensor over the same buffer that requires no grad. */
export function detach(x: Tensor): Tensor {
  live('detach', x);
  return new Tensor(x.storageRef(), x.shape, x.dtype);
}

// ---------------------------------------------------------------- reductions

function normDims(op: string, dims: number | readonly number[] | undefined, ndim: number): number[] {
  if (dims === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : [...dims];
  const out = [...new Set(list.map((d) => normDim(op, d, ndim)))].sort((a, b) => a - b);
  return out;
}

function keptShape(shape: Shape, dims: readonly number[]): number[] {
  return shape.map((d, i) => (dims.includes(i) ? 1 : d));
}

/** Reduces dims one contiguous run at a time as [outer, r, inner] problems. */
function reduceForward(op: 'sum' | 'max' | 'min', x: Tensor, dims: readonly number[]): Tensor {
  let cur = x;
  let shape = [...x.shape];
  // group adjacent dims into runs, reduce from the last run to the first
  const runs: [number, number][] = [];
  for (const d of dims) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === d) last[1] = d + 1;
    else runs.push([d, d + 1]);
  }
  for (let k = runs.length - 1; k >= 0; k--) {
    const [s, e] = runs[k]!;
    const outer = sizeOf(shape.slice(0, s));
    const r = sizeOf(shape.slice(s, e));
    const inner = sizeOf(shape.slice(e));
    if (r === 0 && op !== 'sum') throw new Error(`[${op}] cannot reduce over a zero-size dim of ${fmtShape(x.shape)}`);
    const nshape = [...shape.slice(0, s), ...shape.slice(s, e).map(() => 1), ...shape.slice(e)];
    const out = like(x, nshape, x.dtype, r === 0);
    if (r > 0) x.backend.reduce(op, out.data, cur.data, outer, r, inner);
    if (cur !== x) cur.dispose();
    cur = out;
    shape = nshape;
  }
  if (cur === x) {
    cur = like(x);
    (cur.data as Float32Array).set(x.data as Float32Array);
  }
  return cur;
}

export function sum(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  live('sum', x);
  const ds = normDims('sum', dims, x.ndim);
  const kept = reduceForward('sum', x, ds);
  const y = keepdim ? kept : kept.view(ds.length === x.ndim ? [] : x.shape.filter((_, i) => !ds.includes(i)));
  if (!keepdim) kept.dispose();
  return record(y, 'sum', [x], (g) => [expand(reshape(g, keptShape(x.shape, ds)), x.shape)]);
}

function extremum(op: 'max' | 'min', x: Tensor, dims: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  live(op, x);
  const ds = normDims(op, dims, x.ndim);
  const kept = reduceForward(op, x, ds);
  const y = keepdim ? kept : kept.view(x.shape.filter((_, i) => !ds.includes(i)));
  if (!keepdim) kept.dispose();
  return record(y, op, [x], (g) => {
    // the gradient is shared evenly between tied extrema, as torch.amax does
    const yk = reshape(y, keptShape(x.shape, ds));
    const mask = cast(compare('eq', x, yk), x.dtype);
    const count = sum(mask, ds, true);
    return [mul(mask, div(reshape(g, keptShape(x.shape, ds)), count))];
  });
}

/** Max over dims (all when omitted), like torch.amax. */
export function max(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  return extremum('max', x, dims, keepdim);
}

export function min(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  return extremum('min', x, dims, keepdim);
}

function argExtremum(op: 'max' | 'min', x: Tensor, dim: number, keepdim: boolean): Tensor {
  live(`arg${op}`, x);
  const d = normDim(`arg${op}`, dim, x.ndim);
  const r = x.shape[d]!;
  if (r === 0) throw new Error(`[arg${op}] cannot reduce over a zero-size dim of ${fmtShape(x.shape)}`);
  const shape = keepdim ? keptShape(x.shape, [d]) : x.shape.filter((_, i) => i !== d);
  const out = like(x, shape, 'int32');
  x.backend.argReduce(op, out.data as Int32Array, x.data, sizeOf(x.shape.slice(0, d)), r, sizeOf(x.shape.slice(d + 1)));
  return out;
}

export function argmax(x: Tensor, dim: number, keepdim = false): Tensor { return argExtremum('max', x, dim, keepdim); }
export function argmin(x: Tensor, dim: number, keepdim = false): Tensor { return argExtremum('min', x, dim, keepdim); }

// ---------------------------------------------------------------- shape and layout

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  live('reshape', x);
  const infer = shape.indexOf(-1);
  let sh = [...shape];
  if (infer >= 0) {
    const known = sizeOf(shape.filter((d, i) => i !== infer));
    if (known === 0 || x.size % known !== 0) {
      throw new Error(`[reshape] cannot reshape ${fmtShape(x.shape)} into ${fmtShape(shape)}`);
    }
    sh[infer] = x.size / known;
  }
  if (sh.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(sh) !== x.size) {
    throw new Error(`[reshape] cannot reshape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)}`);
  }
  if (sameShape(sh, x.shape) && !x.requiresGrad) sh = [...x.shape];
  const y = x.view(sh);
  return record(y, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  live('permute', x);
  if (perm.length !== x.ndim) throw new Error(`[permute] permutation ${fmtShape(perm)} does not match a ${x.ndim}-D tensor ${fmtShape(x.shape)}`);
  const p = perm.map((d) => normDim('permute', d, x.ndim));
  if (new Set(p).size !== p.length) throw new Error(`[permute] repeated dims in ${fmtShape(perm)}`);
  const shape = p.map((d) => x.shape[d]!);
  const xs = contiguousStrides(x.shape);
  const out = like(x, shape);
  x.backend.strided(out.data, 0, contiguousStrides(shape), x.data, 0, p.map((d) => xs[d]!), shape, false);
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => { inv[d] = i; });
  return record(out, 'permute', [x], (g) => [permute(g, inv)]);
}

/** Broadcasts x to `shape` (materialised copy); the backward sums over broadcast dims. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  live('expand', x);
  const sh = shape.map((d, i) => (d === -1 ? x.shape[i - (shape.length - x.ndim)]! : d));
  const b = broadcastShapes('expand', x.shape, sh);
  if (!sameShape(b, sh)) throw new Error(`[expand] cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  if (sameShape(x.shape, sh)) return x;
  const out = like(x, sh);
  x.backend.strided(out.data, 0, contiguousStrides(sh), x.data, 0, broadcastStrides(x.shape, sh), sh, false);
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** x[..., start:end, ...] along one dim (copy), with PyTorch's clamping of start and end. */
export function slice(x: Tensor, dim: number, start: number, end?: number): Tensor {
  live('slice', x);
  const d = normDim('slice', dim, x.ndim);
  const n = x.shape[d]!;
  const clampIdx = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const s = clampIdx(start);
  const e = Math.max(s, clampIdx(end ?? n));
  const shape = x.shape.map((v, i) => (i === d ? e - s : v));
  const xs = contiguousStrides(x.shape);
  const out = like(x, shape);
  x.backend.strided(out.data, 0, contiguousStrides(shape), x.data, s * xs[d]!, xs, shape, false);
  return record(out, 'slice', [x], (g) => {
    const gx = like(x, x.shape, g.dtype, true);
    x.backend.strided(gx.data, s * xs[d]!, xs, g.data, 0, contiguousStrides(shape), shape, false);
    return [gx];
  });
}

export function concat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('[concat] needs at least one tensor');
  live('concat', ...tensors);
  const first = tensors[0]!;
  const d = normDim('concat', dim, first.ndim);
  for (const t of tensors) {
    sameDevice('concat', first, t);
    sameDtype('concat', first, t);
    if (t.ndim !== first.ndim || t.shape.some((v, i) => i !== d && v !== first.shape[i])) {
      throw new Error(`[concat] shapes ${tensors.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${d}`);
    }
  }
  const shape = first.shape.map((v, i) => (i === d ? tensors.reduce((a, t) => a + t.shape[d]!, 0) : v));
  const out = like(first, shape);
  const os = contiguousStrides(shape);
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(off);
    first.backend.strided(out.data, off * os[d]!, os, t.data, 0, contiguousStrides(t.shape), t.shape, false);
    off += t.shape[d]!;
  }
  return record(out, 'concat', tensors, (g) => tensors.map((t, i) =>
    t.requiresGrad ? slice(g, d, offsets[i]!, offsets[i]! + t.shape[d]!) : null));
}

// ---------------------------------------------------------------- indexing

function indexArgs(op: string, x: Tensor, dim: number, idx: Tensor): number {
  live(op, x, idx);
  if (idx.dtype !== 'int32') throw new Error(`[${op}] index must be int32, got ${idx.dtype} ${fmtShape(idx.shape)}`);
  sameDevice(op, x, idx);
  return normDim(op, dim, x.ndim);
}

function checkRange(op: string, idx: Int32Array, n: number): void {
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (v < 0 || v >= n) throw new Error(`[${op}] index ${v} out of range for a dim of size ${n}`);
  }
}

/** torch.gather: out[i][j][k] = x[i][idx[i][j][k]][k] (for dim 1); idx matches x outside dim. */
export function gather(x: Tensor, dim: number, idx: Tensor): Tensor {
  const d = indexArgs('gather', x, dim, idx);
  if (idx.ndim !== x.ndim || idx.shape.some((v, i) => i !== d && v !== x.shape[i])) {
    throw new Error(`[gather] index shape ${fmtShape(idx.shape)} must match input ${fmtShape(x.shape)} outside dim ${d}`);
  }
  checkRange('gather', idx.data as Int32Array, x.shape[d]!);
  const out = like(x, idx.shape);
  const outer = sizeOf(x.shape.slice(0, d));
  const inner = sizeOf(x.shape.slice(d + 1));
  x.backend.gather(out.data, x.data, idx.data as Int32Array, outer, x.shape[d]!, inner, idx.shape[d]!);
  return record(out, 'gather', [x], (g) => [scatterAdd(zerosLike(x), d, idx, g)]);
}

/** x + scatter of src into positions idx along dim (torch.scatter_add, out of place). */
export function scatterAdd(x: Tensor, dim: number, idx: Tensor, src: Tensor): Tensor {
  const d = indexArgs('scatterAdd', x, dim, idx);
  sameDtype('scatterAdd', x, src);
  if (!sameShape(idx.shape, src.shape) || idx.ndim !== x.ndim || idx.shape.some((v, i) => i !== d && v !== x.shape[i])) {
    throw new Error(`[scatterAdd] index ${fmtShape(idx.shape)} and src ${fmtShape(src.shape)} must match each other, and input ${fmtShape(x.shape)} outside dim ${d}`);
  }
  checkRange('scatterAdd', idx.data as Int32Array, x.shape[d]!);
  const out = clone(noGrad(() => x));
  const outer = sizeOf(x.shape.slice(0, d));
  const inner = sizeOf(x.shape.slice(d + 1));
  x.backend.scatterAdd(out.data, idx.data as Int32Array, src.data, outer, x.shape[d]!, inner, idx.shape[d]!);
  return record(out, 'scatterAdd', [x, src], (g) => [g, gather(g, d, idx)]);
}

/** Rows (or slices along dim) picked by a 1-D int32 index. */
export function indexSelect(x: Tensor, dim: number, idx: Tensor): Tensor {
  const d = indexArgs('indexSelect', x, dim, idx);
  if (idx.ndim !== 1) throw new Error(`[indexSelect] index must be 1-D, got ${fmtShape(idx.shape)}`);
  checkRange('indexSelect', idx.data as Int32Array, x.shape[d]!);
  const n = idx.shape[0]!;
  const shape = x.shape.map((v, i) => (i === d ? n : v));
  const out = like(x, shape);
  const outer = sizeOf(x.shape.slice(0, d));
  const inner = sizeOf(x.shape.slice(d + 1));
  x.backend.indexSelect(out.data, x.data, idx.data as Int32Array, outer, x.shape[d]!, inner, n);
  return record(out, 'indexSelect', [x], (g) => {
    const gx = zerosLike(x);
    x.backend.indexAdd(gx.data, idx.data as Int32Array, g.data, outer, x.shape[d]!, inner, n);
    return [gx];
  });
}

/** Indices that sort x along dim (stable). Not differentiable; use gather with them. */
export function argsort(x: Tensor, dim = -1, descending = false): Tensor {
  live('argsort', x);
  const d = normDim('argsort', dim, x.ndim);
  const n = x.shape[d]!;
  const outer = sizeOf(x.shape.slice(0, d));
  const inner = sizeOf(x.shape.slice(d + 1));
  const out = like(x, x.shape, 'int32');
  const src = x.data;
  const dst = out.data as Int32Array;
  const order = new Array<number>(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      for (let j = 0; j < n; j++) order[j] = j;
      order.sort((p, q) => {
        const a = src[base + p * inner]!;
        const b = src[base + q * inner]!;
        const c = descending ? b - a : a - b;
        return c !== 0 && c === c ? c : p - q;
      });
      for (let j = 0; j < n; j++) dst[base + j * inner] = order[j]!;
    }
  }
  return out;
}

/** The k largest (or smallest) values along dim, sorted, with their indices. */
export function topk(x: Tensor, k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
  const d = normDim('topk', dim, x.ndim);
  if (!Number.isInteger(k) || k < 0 || k > x.shape[d]!) {
    throw new Error(`[topk] k=${k} out of range for dim ${d} of size ${x.shape[d]} in ${fmtShape(x.shape)}`);
  }
  const order = argsort(x, d, largest);
  const indices = slice(order, d, 0, k);
  order.dispose();
  return { values: gather(x, d, indices), indices };
}

// ---------------------------------------------------------------- linear algebra

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/**
 * a @ b with batch broadcasting. transA/transB read a or b as transposed in their last two dims
 * without copying them (q @ k^T in attention, x @ W^T in linear).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  live('matmul', a, b);
  sameDevice('matmul', a, b);
  sameDtype('matmul', a, b);
  requireFloat('matmul', a);
  if (a.ndim < 1 || b.ndim < 1) throw new Error(`[matmul] operands must be at least 1-D, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const transA = opts.transA === true;
  const transB = opts.transB === true;
  // 1-D operands as in torch.matmul: a vector on the left is a row, on the right a column
  if (a.ndim === 1) {
    const y = matmul(reshape(a, transA ? [a.shape[0]!, 1] : [1, a.shape[0]!]), b, opts);
    return reshape(y, [...y.shape.slice(0, -2), y.shape[y.ndim - 1]!]);
  }
  if (b.ndim === 1) {
    const y = matmul(a, reshape(b, transB ? [1, b.shape[0]!] : [b.shape[0]!, 1]), opts);
    return reshape(y, y.shape.slice(0, -1));
  }
  const [M, Ka] = transA ? [a.shape[a.ndim - 1]!, a.shape[a.ndim - 2]!] : [a.shape[a.ndim - 2]!, a.shape[a.ndim - 1]!];
  const [Kb, N] = transB ? [b.shape[b.ndim - 1]!, b.shape[b.ndim - 2]!] : [b.shape[b.ndim - 2]!, b.shape[b.ndim - 1]!];
  if (Ka !== Kb) {
    throw new Error(`[matmul] inner dims differ: ${fmtShape(a.shape)}${transA ? '^T' : ''} @ ${fmtShape(b.shape)}${transB ? '^T' : ''} (${Ka} vs ${Kb})`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes('matmul', aBatch, bBatch);
  const batch = sizeOf(batchShape);
  // a batch operand either matches the output batch or is a single matrix (stride 0); otherwise materialise it
  const fit = (t: Tensor, tb: Shape): Tensor =>
    sizeOf(tb) === 1 || sameShape(tb, batchShape) ? t : noGrad(() => expand(t, [...batchShape, ...t.shape.slice(-2)]));
  const a2 = fit(a, aBatch);
  const b2 = fit(b, bBatch);
  const out = like(a, [...batchShape, M, N]);
  a.backend.matmul(fdata(out), fdata(a2), fdata(b2), null, batch, M, N, Ka, transA, transB,
    sizeOf(a2.shape.slice(0, -2)) === 1 ? 0 : M * Ka, sizeOf(b2.shape.slice(0, -2)) === 1 ? 0 : Ka * N);
  if (a2 !== a) a2.dispose();
  if (b2 !== b) b2.dispose();
  return record(out, 'matmul', [a, b], (g) => [
    a.requiresGrad ? sumTo(transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB }), a.shape) : null,
    b.requiresGrad ? sumTo(transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA }), b.shape) : null,
  ]);
}

/** y = x @ W^T + b over the last dim of x, with the bias fused into the matmul. W is [out, in]. */
/** Checks a Linear's operands (x [.., I], weight [O, I], bias [O] or null) for op `op`; returns [O, I]. */
function linearShape(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, what = 'weight'): [number, number] {
  live(op, x, weight, bias);
  sameDevice(op, x, weight);
  sameDtype(op, x, weight);
  requireFloat(op, x);
  if (weight.ndim !== 2) throw new Error(`[${op}] ${what} must be 2-D [out, in], got ${fmtShape(weight.shape)}`);
  const [O, I] = weight.shape as [number, number];
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== I) {
    throw new Error(`[${op}] input ${fmtShape(x.shape)} does not end in ${I} (${what} ${fmtShape(weight.shape)})`);
  }
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== O)) {
    throw new Error(`[${op}] bias ${fmtShape(bias.shape)} does not match ${what} ${fmtShape(weight.shape)}`);
  }
  return [O, I];
}

/**
 * With a residual (shaped like the output) it returns residual + linear(x): on the native backend the sum happens
 * inside the matmul (a post-op; a transformer block's attention projection and skip connection), so the projection's
 * own output never takes memory, and in fp32 the result is add(residual, linear(x)) bit for bit; elsewhere it is that
 * add.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, residual: Tensor | null = null): Tensor {
  const [O, I] = linearShape('linear', x, weight, bias);
  const rows = x.size / I;
  const outShape = [...x.shape.slice(0, -1), O];
  if (residual !== null) {
    live('linear', residual);
    sameDevice('linear', x, residual);
    sameDtype('linear', x, residual);
    if (!sameShape(residual.shape, outShape)) {
      throw new Error(`[linear] residual ${fmtShape(residual.shape)} does not match the output ${fmtShape(outShape)}`);
    }
    if (!(x.backend.linearAdd !== undefined && rows * O * I > 0)) return add(residual, linear(x, weight, bias));
  }
  const out = like(x, outShape);
  if (residual !== null) {
    x.backend.linearAdd!(fdata(out) as Float32Array, fdata(x) as Float32Array, fdata(residual) as Float32Array,
      fdata(weight) as Float32Array, bias === null ? null : fdata(bias) as Float32Array, rows, I, O);
  } else {
    x.backend.matmul(fdata(out), fdata(x), fdata(weight), bias === null ? null : fdata(bias), 1, rows, O, I, false, true, 0, 0);
  }
  const inputs = [x, weight, ...(bias !== null ? [bias] : []), ...(residual !== null ? [residual] : [])];
  return record(out, 'linear', inputs, (g) => {
    // one kernel for the three gradients: in bf16 it converts g once for both products
    const gx = x.requiresGrad ? like(x) : null;
    const gw = weight.requiresGrad ? like(weight) : null;
    const gb = bias !== null && bias.requiresGrad ? like(bias) : null;
    x.backend.linearBackward(gx === null ? null : fdata(gx), gw === null ? null : fdata(gw), gb === null ? null : fdata(gb),
      fdata(g), fdata(x), fdata(weight), rows, I, O);
    // the residual's gradient is g itself
    return [gx, gw, ...(bias !== null ? [gb] : []), ...(residual !== null ? [residual.requiresGrad ? g : null] : [])];
  });
}

/**
 * A transformer MLP, fc2(gelu(fc1(x))) with the exact erf GELU (timm's Mlp without dropout), fused: fc1's kernel
 * applies GELU and saves GELU's derivative instead of the pre-activation, and fc2's backward multiplies its input
 * gradient by that derivative inside the matmul, so neither the GELU backward pass nor fc2's unscaled input gradient
 * ever goes through memory. linear -> gelu -> linear is the composed version (and the oracle in the tests).
 * With a residual (a transformer block's skip connection, shaped like the output) it returns residual + mlp(x); on
 * the native backend the sum happens inside fc2's matmul, so the MLP's own output never takes memory.
 */
export function mlp(x: Tensor, fc1Weight: Tensor, fc1Bias: Tensor | null, fc2Weight: Tensor, fc2Bias: Tensor | null,
  residual: Tensor | null = null): Tensor {
  const [Hd, I] = linearShape('mlp', x, fc1Weight, fc1Bias, 'fc1 weight');
  sameDevice('mlp', x, fc2Weight);
  sameDtype('mlp', x, fc2Weight);
  if (fc2Weight.ndim !== 2 || fc2Weight.shape[1] !== Hd) {
    throw new Error(`[mlp] fc2 weight ${fmtShape(fc2Weight.shape)} does not take fc1's ${Hd} outputs (fc1 weight ${fmtShape(fc1Weight.shape)})`);
  }
  const O = fc2Weight.shape[0]!;
  if (fc2Bias !== null && (fc2Bias.ndim !== 1 || fc2Bias.shape[0] !== O)) {
    throw new Error(`[mlp] bias ${fmtShape(fc2Bias.shape)} does not match fc2 weight ${fmtShape(fc2Weight.shape)}`);
  }
  live('mlp', fc2Weight, fc2Bias, residual);
  const rows = x.size / I;
  const lead = x.shape.slice(0, -1);
  if (residual !== null) {
    sameDevice('mlp', x, residual);
    sameDtype('mlp', x, residual);
    if (!sameShape(residual.shape, [...lead, O])) {
      throw new Error(`[mlp] residual ${fmtShape(residual.shape)} does not match the output ${fmtShape([...lead, O])}`);
    }
  }
  const b = x.backend;
  if (b.bf16Compute?.() === true && b.mlpForwardBf16 !== undefined && rows * I * Hd * O > 0) {
    return mlpBf16(x, fc1Weight, fc1Bias, fc2Weight, fc2Bias, residual, rows, I, Hd, O);
  }
  // the residual is added inside fc2's matmul (a post-op) where the backend has that kernel
  if (residual !== null && (b.linearAdd === undefined || rows * Hd * O === 0)) {
    return add(residual, mlp(x, fc1Weight, fc1Bias, fc2Weight, fc2Bias));
  }
  const hidden = like(x, [...lead, Hd]); // [.., Hd] gelu(fc1(x))
  const deriv = like(x, [...lead, Hd]); // [.., Hd] gelu'(fc1(x)), saved for the backward
  const out = like(x, [...lead, O]); // [.., O]
  b.linearGelu(fdata(hidden), fdata(deriv), fdata(x), fdata(fc1Weight), fc1Bias === null ? null : fdata(fc1Bias), rows, I, Hd);
  const b2 = fc2Bias === null ? null : fdata(fc2Bias);
  if (residual !== null) {
    b.linearAdd!(fdata(out) as Float32Array, fdata(hidden) as Float32Array, fdata(residual) as Float32Array,
      fdata(fc2Weight) as Float32Array, b2 as Float32Array | null, rows, Hd, O);
  } else {
    b.matmul(fdata(out), fdata(hidden), fdata(fc2Weight), b2, 1, rows, O, Hd, false, true, 0, 0);
  }
  const inputs = [x, fc1Weight, ...(fc1Bias !== null ? [fc1Bias] : []), fc2Weight, ...(fc2Bias !== null ? [fc2Bias] : []),
    ...(residual !== null ? [residual] : [])];
  return record(out, 'mlp', inputs, (g) => {
    const grad = (t: Tensor | null): Tensor | null => (t !== null && t.requiresGrad ? like(t) : null);
    const [gw1, gb1, gw2, gb2] = [fc1Weight, fc1Bias, fc2Weight, fc2Bias].map(grad) as (Tensor | null)[];
    const gx = x.requiresGrad ? like(x) : null;
    const opt = (t: Tensor | null): FloatArray | null => (t === null ? null : fdata(t));
    // gpre [.., Hd]: the gradient of fc1's pre-activation, (g fc2Weight) * gelu'
    const gpre = gx !== null || gw1 !== null || gb1 !== null ? like(x, [...lead, Hd]) : null;
    b.linearBackwardScaled(opt(gpre), opt(gw2!), opt(gb2!), gpre === null ? null : fdata(deriv), fdata(g), fdata(hidden),
      fdata(fc2Weight), rows, Hd, O);
    if (gpre !== null) {
      b.linearBackward(opt(gx), opt(gw1!), opt(gb1!), fdata(gpre), fdata(x), fdata(fc1Weight), rows, I, Hd);
      gpre.dispose();
    }
    // the residual's gradient is g itself
    return [gx, gw1!, ...(fc1Bias !== null ? [gb1!] : []), gw2!, ...(fc2Bias !== null ? [gb2!] : []),
      ...(residual !== null ? [residual.requiresGrad ? g : null] : [])];
  });
}

/**
 * mlp in bf16 precision: hidden and GELU's derivative live in bf16 storage (uint8 tensors of 2 bytes per value), half
 * the memory of the f32 pair; the kernels read and write them directly, so fc2 needs no conversion of its input.
 */
function mlpBf16(x: Tensor, fc1Weight: Tensor, fc1Bias: Tensor | null, fc2Weight: Tensor, fc2Bias: Tensor | null,
  residual: Tensor | null, rows: number, I: number, Hd: number, O: number): Tensor {
  const b = x.backend;
  const f32 = (t: Tensor): Float32Array => fdata(t) as Float32Array;
  const opt = (t: Tensor | null): Float32Array | null => (t === null ? null : f32(t));
  const hidden = like(x, [rows, Hd * 2], 'uint8'); // [rows, Hd] bf16: gelu(fc1(x))
  const deriv = like(x, [rows, Hd * 2], 'uint8'); // [rows, Hd] bf16: gelu'(fc1(x)), saved for the backward
  const out = like(x, [...x.shape.slice(0, -1), O]); // [.., O]
  b.mlpForwardBf16!(f32(out), hidden.data as Uint8Array, deriv.data as Uint8Array, f32(x), opt(residual), f32(fc1Weight),
    opt(fc1Bias), f32(fc2Weight), opt(fc2Bias), rows, I, Hd, O);
  const inputs = [x, fc1Weight, ...(fc1Bias !== null ? [fc1Bias] : []), fc2Weight, ...(fc2Bias !== null ? [fc2Bias] : []),
    ...(residual !== null ? [residual] : [])];
  return record(out, 'mlp', inputs, (g) => {
    const grad = (t: Tensor | null): Tensor | null => (t !== null && t.requiresGrad ? like(t) : null);
    const [gw1, gb1, gw2, gb2] = [fc1Weight, fc1Bias, fc2Weight, fc2Bias].map(grad) as (Tensor | null)[];
    const gx = grad(x);
    b.mlpBackwardBf16!(opt(gx), opt(gw1!), opt(gb1!), opt(gw2!), opt(gb2!), f32(g), hidden.data as Uint8Array,
      deriv.data as Uint8Array, f32(x), f32(fc1Weight), f32(fc2Weight), rows, I, Hd, O);
    // the residual's gradient is g itself
    return [gx, gw1!, ...(fc1Bias !== null ? [gb1!] : []), gw2!, ...(fc2Bias !== null ? [gb2!] : []),
      ...(residual !== null ? [residual.requiresGrad ? g : null] : [])];
  });
}

// ---------------------------------------------------------------- convolution

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

function pair(v: number | [number, number] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  return typeof v === 'number' ? [v, v] : v;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  live('conv2d', x, weight, bias);
  sameDevice('conv2d', x, weight);
  sameDtype('conv2d', x, weight);
  requireFloat('conv2d', x);
  if (x.ndim !== 4) throw new Error(`[conv2d] expected 4-D input [N, C, H, W], got ${fmtShape(x.shape)}`);
  if (weight.ndim !== 4) throw new Error(`[conv2d] expected 4-D weight [O, C/groups, KH, KW], got ${fmtShape(weight.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [O, Cg, KH, KW] = weight.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [strideH, strideW] = pair(opts.stride, 1);
  const [padH, padW] = pair(opts.padding, 0);
  const [dilationH, dilationW] = pair(opts.dilation, 1);
  if (C % groups !== 0 || O % groups !== 0 || Cg * groups !== C) {
    throw new Error(`[conv2d] input ${fmtShape(x.shape)} and weight ${fmtShape(weight.shape)} do not agree with groups=${groups}`);
  }
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== O)) {
    throw new Error(`[conv2d] bias ${fmtShape(bias.shape)} does not match ${O} output channels`);
  }
  const OH = Math.floor((H + 2 * padH - dilationH * (KH - 1) - 1) / strideH) + 1;
  const OW = Math.floor((W + 2 * padW - dilationW * (KW - 1) - 1) / strideW) + 1;
  if (OH <= 0 || OW <= 0) {
    throw new Error(`[conv2d] input ${fmtShape(x.shape)} is too small for kernel ${KH}x${KW} (padding ${padH},${padW}, dilation ${dilationH},${dilationW})`);
  }
  const p: ConvParams = { N, C, H, W, O, KH, KW, OH, OW, strideH, strideW, padH, padW, dilationH, dilationW, groups };
  // native: activations with channels in multiples of the block stay in oneDNN's blocked layout between layers, and
  // in bf16 precision in bf16 storage (as autocast keeps conv outputs in bf16)
  const bk = x.backend.blocked !== undefined && x.backend.blocked.enabled() && groups === 1 ? x.backend.blocked : null;
  const half = bk !== null && out16(bk, O);
  const out = half ? emptyBf16Blocked([N, O, OH, OW], x.backend) : like(x, [N, O, OH, OW]);
  if (out.size > 0) {
    if (bk !== null) {
      const xin = blockedIn(x);
      const bl = bk.conv2d(half ? out.bf16Data! : fdata(out) as Float32Array, xin ?? fdata(x) as Float32Array,
        fdata(weight) as Float32Array, bias === null ? null : fdata(bias) as Float32Array, p, xin !== null, true);
      if (bl && !half) out.markBlocked();
    } else {
      x.backend.conv2d(fdata(out), fdata(x), fdata(weight), bias === null ? null : fdata(bias), p);
    }
  }
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record(out, 'conv2d', inputs, (g) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    let gb: Tensor | null = null;
    // The kernels overwrite their outputs: zero-fill only when an empty g skips them.
    const zero = g.size === 0;
    const bkNow = bk !== null && bk.enabled() ? bk : null;
    if (x.requiresGrad) {
      gx = like(x, x.shape, x.dtype, zero);
      if (g.size > 0 && bkNow !== null) {
        const gbl = g.blockedData;
        const bl = bkNow.conv2dBackwardData(fdata(gx) as Float32Array, gbl ?? fdata(g) as Float32Array,
          fdata(weight) as Float32Array, p, gbl !== null, true);
        if (bl) gx.markBlocked();
      } else if (g.size > 0) {
        x.backend.conv2dBackwardData(fdata(gx), fdata(g), fdata(weight), p);
      }
    }
    if (weight.requiresGrad || (bias !== null && bias.requiresGrad)) {
      gw = like(weight, weight.shape, weight.dtype, zero);
      gb = bias !== null ? like(bias, bias.shape, bias.dtype, zero) : null;
      if (g.size > 0 && bkNow !== null) {
        const gbl = g.blockedData, xin = blockedIn(x);
        bkNow.conv2dBackwardWeight(fdata(gw) as Float32Array, gb === null ? null : fdata(gb) as Float32Array,
          gbl ?? fdata(g) as Float32Array, xin ?? fdata(x) as Float32Array, p, gbl !== null, xin !== null);
      } else if (g.size > 0) {
        x.backend.conv2dBackwardWeight(fdata(gw), gb === null ? null : fdata(gb), fdata(g), fdata(x), p);
      }
    }
    return [gx, weight.requiresGrad ? gw : null, bias !== null && bias.requiresGrad ? gb : null];
  });
}

/** Whether a conv with O output channels writes its output in bf16 storage now (bk.bf16Storage, whole blocks). */
function out16(bk: BlockedKernels, O: number): boolean {
  const L = bk.block();
  return L > 0 && O % L === 0 && bk.bf16Storage();
}

/** A blocked activation as the conv and batch norm kernels read it: bf16 storage as it is, else f32; null if NCHW. */
function blockedIn(t: Tensor): BlockedAct | null {
  return t.bf16Data ?? t.blockedData;
}

// ---------------------------------------------------------------- normalization

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
}

/** Checks batch norm's arguments against x [N, C, ...]; returns N, C and HW (the product of the trailing dims). */
function checkBatchNorm(op: string, x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null,
  weight: Tensor | null, bias: Tensor | null): [number, number, number] {
  live(op, x, runningMean, runningVar, weight, bias);
  requireFloat(op, x);
  if (x.ndim < 2) throw new Error(`[${op}] expected input [N, C, ...], got ${fmtShape(x.shape)}`);
  const [N, C] = x.shape as [number, number];
  for (const [name, t] of [['runningMean', runningMean], ['runningVar', runningVar], ['weight', weight], ['bias', bias]] as const) {
    if (t !== null && (t.ndim !== 1 || t.shape[0] !== C)) {
      throw new Error(`[${op}] ${name} ${fmtShape(t.shape)} does not match ${C} channels of input ${fmtShape(x.shape)}`);
    }
    if (t !== null) sameDtype(op, x, t);
  }
  return [N, C, sizeOf(x.shape.slice(2))];
}

/**
 * Batch norm over [N, C, ...]: in training, normalises with batch statistics and updates the running
 * statistics in place (unbiased variance, as PyTorch); in eval, uses the running statistics.
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null,
  bias: Tensor | null, opts: BatchNormOptions): Tensor {
  const [N, C, HW] = checkBatchNorm('batchNorm', x, runningMean, runningVar, weight, bias);
  const eps = opts.eps ?? 1e-5;
  if (!opts.training) {
    if (runningMean === null || runningVar === null) throw new Error('[batchNorm] eval mode needs running statistics');
    if (!needsGrad([x, weight, bias])) {
      // bf16 storage in, bf16 storage out; a blocked input stays blocked
      const xh = x.bf16Data, xb = xh ?? x.blockedData;
      const out = xh !== null ? emptyBf16Blocked(x.shape, x.backend) : like(x);
      const gamma = weight === null ? null : fdata(weight), beta = bias === null ? null : fdata(bias);
      if (xb !== null) {
        x.backend.blocked!.batchNormInference(out.bf16Data ?? fdata(out), xb, fdata(runningMean), fdata(runningVar),
          gamma, beta, N, C, HW, eps);
        out.markBlocked();
      } else {
        x.backend.batchNormInference(fdata(out), fdata(x), fdata(runningMean), fdata(runningVar), gamma, beta, N, C, HW, eps);
      }
      return out;
    }
    // with gradients (fine-tuning a frozen-statistics BN): compose from ops
    const bshape = [1, C, ...x.shape.slice(2).map(() => 1)];
    const scale = reshape(rsqrt(addScalar(runningVar, eps)), bshape);
    let y = mul(sub(x, reshape(runningMean, bshape)), weight === null ? scale : mul(scale, reshape(weight, bshape)));
    if (bias !== null) y = add(y, reshape(bias, bshape));
    return y;
  }
  return batchNormTraining('batchNorm', x, runningMean, runningVar, weight, bias, null, false, N, C, HW, eps,
    opts.momentum ?? 0.1);
}

/**
 * relu(batchNorm(x) + residual) (residual null: relu(batchNorm(x))), as a ResNet block ends. In training one fused
 * kernel normalises, adds and clamps in a single pass, and the backward masks by the output, so batch norm's own
 * output is never stored (oneDNN's fuse_norm_relu, with the residual add folded in); in eval it is the composition.
 */
export function batchNormRelu(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null,
  bias: Tensor | null, residual: Tensor | null, opts: BatchNormOptions): Tensor {
  const [N, C, HW] = checkBatchNorm('batchNormRelu', x, runningMean, runningVar, weight, bias);
  if (residual !== null) {
    live('batchNormRelu', residual);
    sameDtype('batchNormRelu', x, residual);
    if (!sameShape(residual.shape, x.shape)) {
      throw new Error(`[batchNormRelu] residual ${fmtShape(residual.shape)} does not match input ${fmtShape(x.shape)}`);
    }
  }
  if (!opts.training) {
    const y = batchNorm(x, runningMean, runningVar, weight, bias, opts);
    return relu(residual === null ? y : add(y, residual));
  }
  return batchNormTraining('batchNormRelu', x, runningMean, runningVar, weight, bias, residual, true, N, C, HW,
    opts.eps ?? 1e-5, opts.momentum ?? 0.1);
}

/** Training-mode batch norm, plain (fuseRelu false) or fused with the residual add and ReLU. */
function batchNormTraining(op: string, x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null,
  weight: Tensor | null, bias: Tensor | null, residual: Tensor | null, fuseRelu: boolean, N: number, C: number,
  HW: number, eps: number, momentum: number): Tensor {
  if (N * HW <= 1) {
    throw new Error(`[${op}] expected more than 1 value per channel when training, got input ${fmtShape(x.shape)}`);
  }
  const mean = like(x, [C]);
  const invstd = like(x, [C]);
  const gamma = weight === null ? null : fdata(weight), beta = bias === null ? null : fdata(bias);
  // an input in bf16 storage (left by a conv in bf16 precision) gives an output in bf16 storage when the residual is
  // in it too; otherwise a blocked input (left by a conv) is normalised in that layout and stays in it, and a residual
  // must be blocked too. Reading a bf16 input as blocked f32 widens it.
  const xh = x.bf16Data, rh = residual === null ? null : residual.bf16Data;
  const half = xh !== null && (residual === null || rh !== null);
  const xbl = half ? xh : x.blockedData;
  const rbl = residual === null ? null : half ? rh : residual.blockedData;
  const inBlocked = xbl !== null && (residual === null || rbl !== null);
  const out = half ? emptyBf16Blocked(x.shape, x.backend) : like(x);
  const m = fdata(mean), is = fdata(invstd);
  if (inBlocked) {
    const bk = x.backend.blocked!, o = out.bf16Data ?? fdata(out);
    if (fuseRelu) bk.batchNormReluForward(o, m, is, xbl, rbl, gamma, beta, N, C, HW, eps);
    else bk.batchNormForward(o, m, is, xbl, gamma, beta, N, C, HW, eps);
    out.markBlocked();
  } else if (fuseRelu) {
    x.backend.batchNormReluForward(fdata(out), m, is, fdata(x), residual === null ? null : fdata(residual), gamma, beta,
      N, C, HW, eps);
  } else {
    x.backend.batchNormForward(fdata(out), m, is, fdata(x), gamma, beta, N, C, HW, eps);
  }
  if (runningMean !== null && runningVar !== null) {
    const rm = runningMean.data as FloatArray;
    const rv = runningVar.data as FloatArray;
    const m = mean.data as FloatArray;
    const is = invstd.data as FloatArray;
    const n = N * HW;
    for (let c = 0; c < C; c++) {
      const biasedVar = 1 / (is[c]! * is[c]!) - eps;
      rm[c] = (1 - momentum) * rm[c]! + momentum * m[c]!;
      rv[c] = (1 - momentum) * rv[c]! + momentum * biasedVar * (n / (n - 1));
    }
  }
  const inputs = [x, ...(weight !== null ? [weight] : []), ...(bias !== null ? [bias] : []),
    ...(residual !== null ? [residual] : [])];
  return record(out, op, inputs, (g) => {
    const gx = like(x);
    const gw = weight !== null ? like(weight) : null;
    const gb = bias !== null ? like(bias) : null;
    const gr = residual !== null && residual.requiresGrad ? like(residual) : null;
    // blocked only when g, x (and the output the mask is read from) still are; otherwise reading them turns all NCHW.
    // x and y are read in bf16 storage where both still are in it (else as f32, which widens them).
    const gbl = g.blockedData;
    const xh = x.bf16Data, yh = fuseRelu ? out.bf16Data : null;
    const half = gbl !== null && xh !== null && (!fuseRelu || yh !== null);
    const xb = half ? xh : x.blockedData, yb = half ? yh : fuseRelu ? out.blockedData : null;
    const blocked = gbl !== null && xb !== null && (!fuseRelu || yb !== null);
    const ggamma = gw === null ? null : fdata(gw), gbeta = gb === null ? null : fdata(gb);
    const gamma = weight === null ? null : fdata(weight);
    const gxd = fdata(gx) as Float32Array, grd = gr === null ? null : fdata(gr) as Float32Array;
    if (blocked) {
      const bk = x.backend.blocked!;
      const m = fdata(mean), is = fdata(invstd);
      if (fuseRelu) bk.batchNormReluBackward(gxd, grd, ggamma, gbeta, gbl, yb!, xb, m, is, gamma, N, C, HW);
      else bk.batchNormBackward(gxd, ggamma, gbeta, gbl, xb, m, is, gamma, N, C, HW);
    } else if (fuseRelu) {
      x.backend.batchNormReluBackward(gxd, grd, ggamma, gbeta, fdata(g), fdata(out), fdata(x), fdata(mean),
        fdata(invstd), gamma, N, C, HW);
    } else {
      x.backend.batchNormBackward(gxd, ggamma, gbeta, fdata(g), fdata(x), fdata(mean), fdata(invstd), gamma, N, C, HW);
    }
    if (blocked) {
      gx.markBlocked();
      gr?.markBlocked();
    }
    return [gx, ...(gw !== null ? [gw] : []), ...(gb !== null ? [gb] : []), ...(residual !== null ? [gr] : [])];
  });
}

function needsGrad(ts: (Tensor | null)[]): boolean {
  return ts.some((t) => t !== null && t.requiresGrad);
}

/** Layer norm over the last dim. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  live('layerNorm', x, weight, bias);
  requireFloat('layerNorm', x);
  if (x.ndim < 1) throw new Error(`[layerNorm] expected at least 1-D input, got ${fmtShape(x.shape)}`);
  const D = x.shape[x.ndim - 1]!;
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t !== null && (t.ndim !== 1 || t.shape[0] !== D)) {
      throw new Error(`[layerNorm] ${name} ${fmtShape(t.shape)} does not match last dim ${D} of input ${fmtShape(x.shape)}`);
    }
  }
  const rows = D === 0 ? 0 : x.size / D;
  const out = like(x);
  const mean = like(x, [rows]);
  const rstd = like(x, [rows]);
  if (out.size > 0) {
    x.backend.layerNormForward(fdata(out), fdata(mean), fdata(rstd), fdata(x), weight === null ? null : fdata(weight),
      bias === null ? null : fdata(bias), rows, D, eps);
  }
  const inputs = [x, ...(weight !== null ? [weight] : []), ...(bias !== null ? [bias] : [])];
  return record(out, 'layerNorm', inputs, (g) => {
    const gx = like(x);
    const gw = weight !== null ? like(weight) : null;
    const gb = bias !== null ? like(bias) : null;
    x.backend.layerNormBackward(fdata(gx), gw === null ? null : fdata(gw), gb === null ? null : fdata(gb), fdata(g),
      fdata(x), fdata(mean), fdata(rstd), weight === null ? null : fdata(weight), rows, D);
    return [gx, ...(gw !== null ? [gw] : []), ...(gb !== null ? [gb] : [])];
  });
}

// ---------------------------------------------------------------- softmax (last dim)

function softmaxLast(x: Tensor, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  live(op, x);
  requireFloat(op, x);
  if (x.ndim < 1) throw new Error(`[${op}] expected at least 1-D input, got a scalar`);
  const D = x.shape[x.ndim - 1]!;
  const rows = D === 0 ? 0 : x.size / D;
  const y = like(x);
  if (y.size > 0) x.backend.softmax(fdata(y), fdata(x), rows, D, log);
  return record(y, op, [x], (g) => {
    const gx = like(x);
    if (gx.size > 0) x.backend.softmaxBackward(fdata(gx), fdata(g), fdata(y), rows, D, log);
    return [gx];
  });
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return alongLast(x, dim, 'softmax', (t) => softmaxLast(t, false));
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return alongLast(x, dim, 'logSoftmax', (t) => softmaxLast(t, true));
}

// ---------------------------------------------------------------- fused attention

/**
 * Multi-head self-attention on the qkv projection's output, fused: qkv [B, N, 3 * C] (timm's layout, read as
 * [B, N, 3, H, C / H]) -> softmax(q k^T * scale) v with the heads merged, [B, N, C]. The same as splitting the heads,
 * scaledDotProductAttention and merging them back (the composed version, kept as the oracle), without the permuted
 * copies; no dropout on the attention weights.
 */
export function attention(qkv: Tensor, numHeads: number, scale: number): Tensor {
  live('attention', qkv);
  requireFloat('attention', qkv);
  if (qkv.ndim !== 3) throw new Error(`[attention] expected qkv [B, N, 3 * C], got ${fmtShape(qkv.shape)}`);
  const [B, N, C3] = qkv.shape as [number, number, number];
  if (!Number.isInteger(numHeads) || numHeads < 1 || C3 % (3 * numHeads) !== 0) {
    throw new Error(`[attention] last dim ${C3} of qkv ${fmtShape(qkv.shape)} is not 3 x ${numHeads} heads x head dim`);
  }
  const H = numHeads;
  const hd = C3 / (3 * H);
  const out = like(qkv, [B, N, H * hd]); // [B, N, C]
  const probs = like(qkv, [B, H, N, N]); // saved for the backward
  if (out.size > 0) qkv.backend.attentionForward(fdata(out), fdata(probs), fdata(qkv), B, N, H, hd, scale);
  return record(out, 'attention', [qkv], (g) => {
    const gqkv = like(qkv);
    if (gqkv.size > 0) qkv.backend.attentionBackward(fdata(gqkv), fdata(g), fdata(qkv), fdata(probs), B, N, H, hd, scale);
    return [gqkv];
  });
}

function alongLast(x: Tensor, dim: number, op: string, f: (t: Tensor) => Tensor): Tensor {
  const d = normDim(op, dim, x.ndim);
  if (d === x.ndim - 1) return f(x);
  const perm = x.shape.map((_, i) => i);
  perm[d] = x.ndim - 1;
  perm[x.ndim - 1] = d;
  return permute(f(permute(x, perm)), perm);
}

// ---------------------------------------------------------------- pooling

export interface Pool2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  /** avg pool: count padded zeros in the divisor (PyTorch's default true) */
  countIncludePad?: boolean;
  ceilMode?: false;
}

function poolParams(op: string, x: Tensor, kernel: number | [number, number], opts: Pool2dOptions): PoolParams {
  live(op, x);
  requireFloat(op, x);
  if (x.ndim !== 4) throw new Error(`[${op}] expected 4-D input [N, C, H, W], got ${fmtShape(x.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [KH, KW] = pair(kernel, 1);
  const [strideH, strideW] = pair(opts.stride, 0);
  const sh = strideH === 0 ? KH : strideH;
  const sw = strideW === 0 ? KW : strideW;
  const [padH, padW] = pair(opts.padding, 0);
  if (padH * 2 > KH || padW * 2 > KW) throw new Error(`[${op}] padding ${padH},${padW} must be at most half of kernel ${KH}x${KW}`);
  const OH = Math.floor((H + 2 * padH - KH) / sh) + 1;
  const OW = Math.floor((W + 2 * padW - KW) / sw) + 1;
  if (OH <= 0 || OW <= 0) throw new Error(`[${op}] input ${fmtShape(x.shape)} is too small for kernel ${KH}x${KW}`);
  return { N, C, H, W, OH, OW, KH, KW, strideH: sh, strideW: sw, padH, padW, countIncludePad: opts.countIncludePad ?? true };
}

export function maxPool2d(x: Tensor, kernel: number | [number, number], opts: Pool2dOptions = {}): Tensor {
  const p = poolParams('maxPool2d', x, kernel, opts);
  const out = like(x, [p.N, p.C, p.OH, p.OW]);
  const indices = like(x, out.shape, 'int32');
  if (out.size > 0) x.backend.maxPool2d(fdata(out), indices.data as Int32Array, fdata(x), p);
  return record(out, 'maxPool2d', [x], (g) => {
    const gx = like(x, x.shape, x.dtype, true);
    if (g.size > 0) x.backend.maxPool2dBackward(fdata(gx), fdata(g), indices.data as Int32Array, p);
    return [gx];
  });
}

export function avgPool2d(x: Tensor, kernel: number | [number, number], opts: Pool2dOptions = {}): Tensor {
  const p = poolParams('avgPool2d', x, kernel, opts);
  const out = like(x, [p.N, p.C, p.OH, p.OW]);
  if (out.size > 0) x.backend.avgPool2d(fdata(out), fdata(x), p);
  return record(out, 'avgPool2d', [x], (g) => {
    const gx = like(x, x.shape, x.dtype, true);
    if (g.size > 0) x.backend.avgPool2dBackward(fdata(gx), fdata(g), p);
    return [gx];
  });
}

// ---------------------------------------------------------------- in-place updates (optimizers, EMA; no graph)

/** Copies src's values into dst's buffer (same shape and dtype). Never recorded in a graph. */
export function copy_(dst: Tensor, src: Tensor): Tensor {
  live('copy_', dst, src);
  sameDtype('copy_', dst, src);
  if (!sameShape(dst.shape, src.shape)) throw new Error(`[copy_] shape ${fmtShape(src.shape)} does not match ${fmtShape(dst.shape)}`);
  if (dst.device === src.device) (dst.data as Float32Array).set(src.data as Float32Array);
  else dst.backend.cast(dst.data, src.data);
  return dst;
}

/** Wraps an existing typed array as a tensor on the reference device (no copy). */
export function fromTyped(data: TypedArray, shape: Shape): Tensor {
  if (sizeOf(shape) !== data.length) throw new Error(`[fromTyped] ${data.length} values do not fill shape ${fmtShape(shape)}`);
  const dtype: DType = data instanceof Float64Array ? 'float64' : data instanceof Int32Array ? 'int32'
    : data instanceof Uint8Array ? 'uint8' : 'float32';
  return new Tensor(new Storage(data, getBackend('reference')), shape, dtype);
}
