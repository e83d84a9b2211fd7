// LARC (NVIDIA apex.parallel.LARC) as SimSiam's main_lincls.py --lars uses it: LARC(SGD, trust_coefficient=0.001,
// clip=False) over every parameter, biases included. Each gradient is rescaled by
// trust * ||w|| / (||g|| + wd * ||w|| + eps) (with clip: min(that / lr, 1)), weight decay folded in first, then plain
// SGD steps with weight decay 0. A parameter or gradient of norm 0 keeps its raw gradient and gets no decay, as apex.
// Unlike MoCo v3's / MAE's LARS, nothing is exempt: 1-D parameters get the ratio too.
import type { Tensor } from '../tensor/index.js';
import { floatData, type OptimizerKind, type ParamGroup, type ParamState, type ParamsInit } from './optimizer.js';
import { SGD, type SGDHyper, type SGDOptions } from './sgd.js';

export interface LARCOptions extends SGDOptions {
  /** apex's trust_coefficient (0.02 default there; SimSiam passes 0.001) */
  trustCoefficient?: number;
  /** clip the adaptive lr at the group lr (apex clip=True) instead of scaling by it */
  clip?: boolean;
  eps?: number;
}

export class LARC extends SGD {
  override get kind(): OptimizerKind { return 'larc'; }
  readonly trustCoefficient: number;
  readonly clip: boolean;
  readonly eps: number;

  constructor(params: ParamsInit<SGDHyper>, opts: LARCOptions) {
    super(params, opts);
    this.trustCoefficient = opts.trustCoefficient ?? 0.02;
    this.clip = opts.clip ?? true;
    this.eps = opts.eps ?? 1e-8;
  }

  /** No fused SGD kernel: each gradient needs its own trust ratio first. */
  protected override fusedGroupStep(): boolean {
    return false;
  }

  protected override updateParam(p: Tensor, grad: Tensor, group: ParamGroup<SGDHyper>, state: ParamState): void {
    const w = floatData(p);
    const g = floatData(grad);
    const wd = group.weightDecay;
    const n = w.length;
    let wSq = 0;
    let gSq = 0;
    for (let i = 0; i < n; i++) { wSq += w[i]! * w[i]!; gSq += g[i]! * g[i]!; }
    const paramNorm = Math.sqrt(wSq);
    const gradNorm = Math.sqrt(gSq);
    if (paramNorm === 0 || gradNorm === 0) {
      this.sgdStep(p, g, 0, group, state);
      return;
    }
    let adaptiveLr = (this.trustCoefficient * paramNorm) / (gradNorm + paramNorm * wd + this.eps);
    if (this.clip) adaptiveLr = Math.min(adaptiveLr / group.lr, 1);
    const d = new Float64Array(n);
    for (let i = 0; i < n; i++) d[i] = (g[i]! + wd * w[i]!) * adaptiveLr;
    this.sgdStep(p, d, 0, group, state);
  }
}
