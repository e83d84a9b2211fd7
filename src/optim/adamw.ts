// AdamW with decoupled weight decay: torch.optim.AdamW (1.13, single-tensor path), as used by MAE and MoCo v3 ViTs.
// Order per step: step += 1; p *= 1 - lr * wd; moments; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
import type { Tensor } from '../tensor/index.js';
import type { Backend } from '../backend/backend.js';
import { Optimizer, floatData, type CommonGroupOptions, type FusedItem, type ParamGroup, type ParamState, type ParamsInit } from './optimizer.js';

export interface AdamWHyper {
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
}

export type AdamWOptions = Partial<AdamWHyper & CommonGroupOptions>;

export class AdamW extends Optimizer<AdamWHyper> {
  get kind(): 'adamw' { return 'adamw'; }
  protected override readonly countsSteps = true;

  constructor(params: ParamsInit<AdamWHyper>, opts: AdamWOptions = {}) {
    super(params, {
      lr: opts.lr ?? 1e-3, betas: opts.betas ?? [0.9, 0.999], eps: opts.eps ?? 1e-8, amsgrad: opts.amsgrad ?? false,
      weightDecay: opts.weightDecay ?? 1e-2, lrScale: opts.lrScale ?? 1, fixedLr: opts.fixedLr ?? false,
    });
  }

  protected override validateGroup(group: ParamGroup<AdamWHyper>): void {
    super.validateGroup(group);
    const [b1, b2] = group.betas;
    if (!(b1 >= 0 && b1 < 1)) throw new Error(`[adamw] invalid beta parameter at index 0: ${b1}`);
    if (!(b2 >= 0 && b2 < 1)) throw new Error(`[adamw] invalid beta parameter at index 1: ${b2}`);
    if (!(group.eps >= 0)) throw new Error(`[adamw] invalid epsilon ${group.eps}`);
  }

  protected override fusedGroupStep(backend: Backend, group: ParamGroup<AdamWHyper>, items: readonly FusedItem[]): boolean {
    if (backend.adamwStep === undefined || group.amsgrad) return false;
    const { lr, weightDecay: wd, eps } = group;
    const [b1, b2] = group.betas;
    const stepSize = new Float64Array(items.length);
    const bc2Sqrt = new Float64Array(items.length);
    const m1: Float32Array[] = [];
    const m2: Float32Array[] = [];
    items.forEach((it, t) => {
      m1.push(this.buffer(it.p, it.state, 'exp_avg').buf.data as Float32Array);
      m2.push(this.buffer(it.p, it.state, 'exp_avg_sq').buf.data as Float32Array);
      it.state.step += 1;
      stepSize[t] = lr / (1 - b1 ** it.state.step);
      bc2Sqrt[t] = Math.sqrt(1 - b2 ** it.state.step);
    });
    backend.adamwStep(items.map((it) => it.p.data as Float32Array), items.map((it) => it.g.data as Float32Array), m1, m2,
      stepSize, bc2Sqrt, 1 - lr * wd, b1, b2, eps);
    return true;
  }

  protected override updateParam(p: Tensor, grad: Tensor, group: ParamGroup<AdamWHyper>, state: ParamState): void {
    const w = floatData(p);
    const g = floatData(grad);
    const expAvg = floatData(this.buffer(p, state, 'exp_avg').buf);
    const expAvgSq = floatData(this.buffer(p, state, 'exp_avg_sq').buf);
    const maxExpAvgSq = group.amsgrad ? floatData(this.buffer(p, state, 'max_exp_avg_sq').buf) : null;
    const { lr, weightDecay: wd, eps } = group;
    const [b1, b2] = group.betas;
    state.step += 1;
    const biasCorrection1 = 1 - b1 ** state.step;
    const biasCorrection2Sqrt = Math.sqrt(1 - b2 ** state.step);
    const stepSize = lr / biasCorrection1;
    const decay = 1 - lr * wd;
    const n = w.length;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    // amsgrad gets its own loop: a per-element branch would slow the loop several times over in V8
    if (maxExpAvgSq === null) {
      for (let i = 0; i < n; i++) {
        const gi = g[i]!;
        expAvg[i] = b1 * expAvg[i]! + c1 * gi;
        expAvgSq[i] = b2 * expAvgSq[i]! + c2 * gi * gi;
        const denom = Math.sqrt(expAvgSq[i]!) / biasCorrection2Sqrt + eps;
        w[i] = w[i]! * decay; // rounded to the parameter's precision first, as PyTorch's in-place mul_
        w[i] = w[i]! - stepSize * (expAvg[i]! / denom);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const gi = g[i]!;
        expAvg[i] = b1 * expAvg[i]! + c1 * gi;
        expAvgSq[i] = b2 * expAvgSq[i]! + c2 * gi * gi;
        // Math.max propagates NaN like torch.maximum
        maxExpAvgSq[i] = Math.max(maxExpAvgSq[i]!, expAvgSq[i]!);
        const denom = Math.sqrt(maxExpAvgSq[i]!) / biasCorrection2Sqrt + eps;
        w[i] = w[i]! * decay; // rounded to the parameter's precision first, as PyTorch's in-place mul_
        w[i] = w[i]! - stepSize * (expAvg[i]! / denom);
      }
    }
  }
}
