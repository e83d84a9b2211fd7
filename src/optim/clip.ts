// Gradient clipping by the global norm over all gradients: torch.nn.utils.clip_grad_norm_ semantics.
import type { Tensor } from '../tensor/index.js';
import { floatData } from './optimizer.js';

export interface ClipGradNormOptions {
  /** p of the norm: 2 (default), 1, any p > 0, or Infinity for the max-abs norm */
  normType?: number;
  /** throw instead of scaling when the total norm is NaN or infinite */
  errorIfNonfinite?: boolean;
}

/**
 * Scales every gradient in place by min(1, maxNorm / (totalNorm + 1e-6)) and returns totalNorm, the norm of all
 * gradients viewed as one vector (parameters without a gradient are ignored; 0 when none has one).
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipGradNormOptions = {}): number {
  const normType = opts.normType ?? 2;
  if (!(normType > 0)) throw new Error(`[clipGradNorm] invalid norm type ${normType}`);
  const grads: (Float32Array | Float64Array)[] = [];
  for (const p of params) if (p.grad !== null) grads.push(floatData(p.grad));
  if (grads.length === 0) return 0;
  const allFloat64 = grads.every((g) => g instanceof Float64Array);
  // PyTorch reduces each gradient to its own norm (a float32 scalar for float32 grads), then takes the norm of those
  const round = allFloat64 ? (x: number): number => x : Math.fround;
  let total: number;
  if (normType === Infinity) {
    total = 0;
    for (const g of grads) {
      for (let i = 0; i < g.length; i++) {
        const a = Math.abs(g[i]!);
        if (!(a <= total)) total = a; // NaN propagates
      }
    }
  } else {
    let acc = 0;
    for (const g of grads) {
      let s = 0;
      if (normType === 2) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
      else if (normType === 1) for (let i = 0; i < g.length; i++) s += Math.abs(g[i]!);
      else for (let i = 0; i < g.length; i++) s += Math.abs(g[i]!) ** normType;
      const norm = round(normType === 1 ? s : normType === 2 ? Math.sqrt(s) : s ** (1 / normType));
      acc += normType === 1 ? norm : normType === 2 ? norm * norm : norm ** normType;
    }
    total = round(normType === 1 ? acc : normType === 2 ? Math.sqrt(acc) : acc ** (1 / normType));
  }
  if (opts.errorIfNonfinite === true && !Number.isFinite(total)) {
    throw new Error(`[clipGradNorm] the total norm of order ${normType} of the gradients is non-finite, so it cannot be clipped`);
  }
  const coef = Math.min(round(maxNorm / round(total + 1e-6)), 1);
  // PyTorch multiplies unconditionally (coef 1 leaves values unchanged; NaN coef spreads NaN like it does)
  if (coef !== 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  return total;
}
