// SGD with momentum, dampening, Nesterov and coupled weight decay: torch.optim.SGD (1.13, single-tensor path),
// as used by MoCo v1/v2 and SimSiam. One fused loop per parameter over the float buffers.
import type { Tensor } from '../tensor/index.js';
import type { Backend } from '../backend/backend.js';
import { Optimizer, floatData, type CommonGroupOptions, type FusedItem, type OptimizerKind, type ParamGroup, type ParamState, type ParamsInit } from './optimizer.js';

export interface SGDHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

export type SGDOptions = Partial<SGDHyper & CommonGroupOptions> & { lr: number };

export class SGD extends Optimizer<SGDHyper> {
  get kind(): OptimizerKind { return 'sgd'; }

  constructor(params: ParamsInit<SGDHyper>, opts: SGDOptions) {
    super(params, {
      lr: opts.lr, momentum: opts.momentum ?? 0, dampening: opts.dampening ?? 0, nesterov: opts.nesterov ?? false,
      weightDecay: opts.weightDecay ?? 0, lrScale: opts.lrScale ?? 1, fixedLr: opts.fixedLr ?? false,
    });
  }

  protected override validateGroup(group: ParamGroup<SGDHyper>): void {
    super.validateGroup(group);
    if (!(group.momentum >= 0)) throw new Error(`[sgd] invalid momentum ${group.momentum}`);
    if (group.nesterov && (group.momentum <= 0 || group.dampening !== 0)) {
      throw new Error('[sgd] nesterov momentum requires a momentum and zero dampening');
    }
  }

  protected override fusedGroupStep(backend: Backend, group: ParamGroup<SGDHyper>, items: readonly FusedItem[]): boolean {
    if (backend.sgdStep === undefined) return false;
    const { lr, weightDecay: wd, momentum: m, dampening, nesterov } = group;
    const first = new Uint8Array(items.length);
    const bufs = items.map((it, t) => {
      if (m === 0) return null;
      const { buf, created } = this.buffer(it.p, it.state, 'momentum_buffer');
      first[t] = created ? 1 : 0;
      return buf.data as Float32Array;
    });
    backend.sgdStep(items.map((it) => it.p.data as Float32Array), items.map((it) => it.g.data as Float32Array), bufs,
      first, lr, m, dampening, wd, nesterov);
    return true;
  }

  protected override updateParam(p: Tensor, grad: Tensor, group: ParamGroup<SGDHyper>, state: ParamState): void {
    this.sgdStep(p, floatData(grad), group.weightDecay, group, state);
  }

  /** torch.optim.SGD's update of p from gradient values g with weight decay wd (LARC passes its rescaled gradient). */
  protected sgdStep(p: Tensor, g: Float32Array | Float64Array, wd: number, group: ParamGroup<SGDHyper>, state: ParamState): void {
    const w = floatData(p);
    const { lr, momentum: m, dampening, nesterov } = group;
    const n = w.length;
    // Loops are kept free of per-element branches (V8 then runs them several times faster). With wd = 0 the decay
    // term is wd * w = 0, which leaves d = g exactly unless w is already non-finite (PyTorch skips the add).
    if (m === 0) {
      for (let i = 0; i < n; i++) w[i] = w[i]! - lr * (g[i]! + wd * w[i]!);
      return;
    }
    // the buffer starts as a copy of the first (decayed) gradient, not from zero: no dampening on step one
    const { buf, created } = this.buffer(p, state, 'momentum_buffer');
    const b = floatData(buf);
    if (created) {
      for (let i = 0; i < n; i++) b[i] = g[i]! + wd * w[i]!;
      if (nesterov) for (let i = 0; i < n; i++) w[i] = w[i]! - lr * (b[i]! + m * b[i]!);
      else for (let i = 0; i < n; i++) w[i] = w[i]! - lr * b[i]!;
      return;
    }
    const keepFrac = 1 - dampening;
    if (nesterov) {
      for (let i = 0; i < n; i++) {
        const d = g[i]! + wd * w[i]!;
        b[i] = m * b[i]! + keepFrac * d;
        w[i] = w[i]! - lr * (d + m * b[i]!);
      }
    } else {
      for (let i = 0; i < n; i++) {
        b[i] = m * b[i]! + keepFrac * (g[i]! + wd * w[i]!);
        w[i] = w[i]! - lr * b[i]!;
      }
    }
  }
}
