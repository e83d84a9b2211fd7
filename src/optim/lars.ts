// LARS as in MoCo v3 (optimizer.py) and MAE (util/lars.py): SGD momentum whose update for each weight matrix is
// rescaled by trust_coefficient * ||w|| / ||g + wd * w||; parameters with ndim <= 1 (biases, norm gains) get
// neither weight decay nor the trust ratio. Momentum accumulates without dampening: mu = m * mu + update.
import type { Tensor } from '../tensor/index.js';
import type { Backend } from '../backend/backend.js';
import { Optimizer, floatData, type FusedItem, type CommonGroupOptions, type ParamGroup, type ParamState, type ParamsInit } from './optimizer.js';

export interface LARSHyper {
  momentum: number;
  trustCoefficient: number;
}

export type LARSOptions = Partial<LARSHyper & CommonGroupOptions>;

export class LARS extends Optimizer<LARSHyper> {
  get kind(): 'lars' { return 'lars'; }

  constructor(params: ParamsInit<LARSHyper>, opts: LARSOptions = {}) {
    super(params, {
      lr: opts.lr ?? 0, momentum: opts.momentum ?? 0.9, trustCoefficient: opts.trustCoefficient ?? 0.001,
      weightDecay: opts.weightDecay ?? 0, lrScale: opts.lrScale ?? 1, fixedLr: opts.fixedLr ?? false,
    });
  }

  protected override fusedGroupStep(backend: Backend, group: ParamGroup<LARSHyper>, items: readonly FusedItem[]): boolean {
    if (backend.larsStep === undefined) return false;
    const { lr, momentum: m, weightDecay: wd, trustCoefficient } = group;
    const adapt = Uint8Array.from(items, (it) => (it.p.ndim > 1 ? 1 : 0));
    const mu = items.map((it) => this.buffer(it.p, it.state, 'mu').buf.data as Float32Array);
    backend.larsStep(items.map((it) => it.p.data as Float32Array), items.map((it) => it.g.data as Float32Array), mu,
      adapt, lr, m, wd, trustCoefficient);
    return true;
  }

  protected override updateParam(p: Tensor, grad: Tensor, group: ParamGroup<LARSHyper>, state: ParamState): void {
    const w = floatData(p);
    const g = floatData(grad);
    const mu = floatData(this.buffer(p, state, 'mu').buf);
    const { lr, momentum: m, weightDecay: wd, trustCoefficient } = group;
    const n = w.length;
    let q = 1;
    const adapt = p.ndim > 1;
    if (adapt) {
      let wSq = 0;
      let uSq = 0;
      for (let i = 0; i < n; i++) {
        const wi = w[i]!;
        const u = g[i]! + wd * wi;
        wSq += wi * wi;
        uSq += u * u;
      }
      // the official code's torch.where: ratio only when both norms are positive, else 1
      const wNorm = Math.sqrt(wSq);
      const uNorm = Math.sqrt(uSq);
      if (wNorm > 0 && uNorm > 0) q = (trustCoefficient * wNorm) / uNorm;
    }
    // separate loops: a per-element branch on `adapt` would slow the loop several times over in V8
    if (adapt) {
      for (let i = 0; i < n; i++) {
        mu[i] = m * mu[i]! + (g[i]! + wd * w[i]!) * q;
        w[i] = w[i]! - lr * mu[i]!;
      }
    } else {
      for (let i = 0; i < n; i++) {
        mu[i] = m * mu[i]! + g[i]!;
        w[i] = w[i]! - lr * mu[i]!;
      }
    }
  }
}
