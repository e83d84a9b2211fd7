// Composite ops, built only from primitives in ops.ts: they need no backward rules of their own.
import type { Tensor } from './tensor.js';
import { fmtShape, sizeOf } from './tensor.js';
import {
  add, addScalar, avgPool2d, bernoulli, clamp, concat, div, gather, logSoftmax, matmul, mul,
  mulScalar, neg, normDim, permute, reshape, slice, softmax, sqrt, square, sub, sum,
} from './ops.js';
import type { Rng } from './rng.js';

export function mean(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const ds = dims === undefined ? x.shape.map((_, i) => i) : typeof dims === 'number' ? [dims] : dims;
  const n = sizeOf(ds.map((d) => x.shape[normDim('mean', d, x.ndim)]!));
  return mulScalar(sum(x, ds, keepdim), 1 / n);
}

/** Variance with Bessel's correction by default (torch.var's correction=1). */
export function variance(x: Tensor, dims?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  const ds = dims === undefined ? x.shape.map((_, i) => i) : typeof dims === 'number' ? [dims] : dims;
  const n = sizeOf(ds.map((d) => x.shape[normDim('var', d, x.ndim)]!));
  const centered = sub(x, mean(x, ds, true));
  return mulScalar(sum(square(centered), ds, keepdim), 1 / Math.max(n - correction, 0));
}

export function std(x: Tensor, dims?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  return sqrt(variance(x, dims, keepdim, correction));
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim('flatten', startDim, x.ndim);
  const e = normDim('flatten', endDim, x.ndim);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim('unsqueeze', dim, x.ndim + 1);
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normDim('squeeze', dim, x.ndim);
  if (x.shape[d] !== 1) return x;
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = normDim('transpose', dim0, x.ndim);
  const b = normDim('transpose', dim1, x.ndim);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('[stack] needs at least one tensor');
  const first = tensors[0]!;
  for (const t of tensors) {
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i])) {
      throw new Error(`[stack] all tensors must have the same shape, got ${tensors.map((q) => fmtShape(q.shape)).join(', ')}`);
    }
  }
  const d = normDim('stack', dim, first.ndim + 1);
  return concat(tensors.map((t) => unsqueeze(t, d)), d);
}

/** Splits along dim into pieces of `size` (the last may be smaller), or into the given sizes. */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normDim('split', dim, x.ndim);
  const n = x.shape[d]!;
  let parts: number[];
  if (typeof sizes === 'number') {
    if (!(sizes > 0)) throw new Error(`[split] split size must be positive, got ${sizes}`);
    parts = [];
    for (let s = 0; s < n; s += sizes) parts.push(Math.min(sizes, n - s));
  } else {
    parts = [...sizes];
    const total = parts.reduce((a, b) => a + b, 0);
    if (total !== n) throw new Error(`[split] sizes ${fmtShape(parts)} sum to ${total}, but dim ${d} of ${fmtShape(x.shape)} has ${n}`);
  }
  const out: Tensor[] = [];
  let off = 0;
  for (const p of parts) { out.push(slice(x, d, off, off + p)); off += p; }
  return out;
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const n = x.shape[normDim('chunk', dim, x.ndim)]!;
  return split(x, Math.max(1, Math.ceil(n / chunks)), dim);
}

export interface CrossEntropyOptions {
  labelSmoothing?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy over logits [N, C]: hard int32 labels [N] or soft float targets [N, C],
 * with label smoothing as in torch.nn.functional.cross_entropy.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  if (logits.ndim !== 2) throw new Error(`[crossEntropy] expected logits [N, C], got ${fmtShape(logits.shape)}`);
  const [N, C] = logits.shape as [number, number];
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`[crossEntropy] labelSmoothing must be in [0, 1], got ${eps}`);
  const logp = logSoftmax(logits, 1); // [N, C]
  let loss: Tensor; // [N]
  if (target.dtype === 'int32') {
    if (target.ndim !== 1 || target.shape[0] !== N) {
      throw new Error(`[crossEntropy] labels ${fmtShape(target.shape)} do not match logits ${fmtShape(logits.shape)}`);
    }
    const nll = neg(reshape(gather(logp, 1, reshape(target, [N, 1])), [N]));
    loss = eps > 0 ? add(mulScalar(nll, 1 - eps), mulScalar(neg(sum(logp, 1)), eps / C)) : nll;
  } else {
    if (target.ndim !== 2 || target.shape[0] !== N || target.shape[1] !== C) {
      throw new Error(`[crossEntropy] soft targets ${fmtShape(target.shape)} do not match logits ${fmtShape(logits.shape)}`);
    }
    const t = eps > 0 ? addScalar(mulScalar(target, 1 - eps), eps / C) : target;
    loss = neg(sum(mul(t, logp), 1));
  }
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') return loss;
  if (reduction === 'sum') return sum(loss);
  return mean(loss);
}

/** x / max(||x||_2, eps) along dim, as torch.nn.functional.normalize. */
export function l2Normalize(x: Tensor, dim = -1, eps = 1e-12): Tensor {
  const norm = sqrt(sum(square(x), dim, true));
  return div(x, clamp(norm, eps));
}

/** Cosine similarity along dim, each side normalised with eps (torch >= 2.0 semantics). */
export function cosineSimilarity(a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor {
  return sum(mul(l2Normalize(a, dim, eps), l2Normalize(b, dim, eps)), dim);
}

export interface AttentionOptions {
  /** multiplies q @ k^T; defaults to 1/sqrt(head dim) */
  scale?: number;
}

/** softmax(q k^T * scale) v over [.., L, D] inputs; the transposed k is read without a copy. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (q.ndim < 2 || k.ndim !== q.ndim || v.ndim !== q.ndim) {
    throw new Error(`[scaledDotProductAttention] expected q, k, v of the same rank >= 2, got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  }
  const D = q.shape[q.ndim - 1]!;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const attn = softmax(mulScalar(matmul(q, k, { transB: true }), scale), -1); // [.., Lq, Lk]
  return matmul(attn, v); // [.., Lq, Dv]
}

/** Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p) in training. */
export function dropout(x: Tensor, p: number, training: boolean, rng?: Rng): Tensor {
  if (!(p >= 0 && p < 1)) {
    if (p === 1 && training) return mulScalar(x, 0);
    throw new Error(`[dropout] p must be in [0, 1), got ${p}`);
  }
  if (!training || p === 0) return x;
  const mask = bernoulli(x.shape, 1 - p, { dtype: x.dtype, device: x.device, ...(rng !== undefined ? { rng } : {}) });
  return mul(x, mulScalar(mask, 1 / (1 - p)));
}

/** Adaptive average pooling with PyTorch's bins: start = floor(i*H/OH), end = ceil((i+1)*H/OH). */
export function adaptiveAvgPool2d(x: Tensor, output: number | [number, number]): Tensor {
  if (x.ndim !== 4) throw new Error(`[adaptiveAvgPool2d] expected 4-D input [N, C, H, W], got ${fmtShape(x.shape)}`);
  const [OH, OW] = typeof output === 'number' ? [output, output] : output;
  const H = x.shape[2]!;
  const W = x.shape[3]!;
  if (OH === 1 && OW === 1) return mean(x, [2, 3], true);
  if (H % OH === 0 && W % OW === 0) return avgPool2d(x, [H / OH, W / OW]);
  const rows: Tensor[] = [];
  for (let i = 0; i < OH; i++) {
    const h0 = Math.floor((i * H) / OH);
    const h1 = Math.ceil(((i + 1) * H) / OH);
    const cols: Tensor[] = [];
    for (let j = 0; j < OW; j++) {
      const w0 = Math.floor((j * W) / OW);
      const w1 = Math.ceil(((j + 1) * W) / OW);
      cols.push(mean(slice(slice(x, 2, h0, h1), 3, w0, w1), [2, 3], true));
    }
    rows.push(concat(cols, 3));
  }
  return concat(rows, 2);
}

/** Fraction of rows whose argmax equals the label (top-k when k > 1). */
export function accuracy(logits: Tensor, labels: Tensor, k = 1): number {
  const [N, C] = logits.shape as [number, number];
  const l = logits.data;
  const y = labels.data;
  let hits = 0;
  for (let i = 0; i < N; i++) {
    const target = l[i * C + y[i]!]!;
    let above = 0;
    for (let c = 0; c < C; c++) if (l[i * C + c]! > target) above++;
    if (above < k) hits++;
  }
  return N === 0 ? 0 : hits / N;
}

