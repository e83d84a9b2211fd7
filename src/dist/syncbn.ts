// SyncBatchNorm (torch.nn.SyncBatchNorm): in training, batch statistics over the whole global batch, every rank's
// samples, so N ranks at batch B/N normalise exactly as one process at batch B. Built from ops and the
// differentiable allreduceSum, so its backward (which needs the sums of the gradient terms across ranks) is the
// chain rule through those ops. SimSiam's main_simsiam.py converts its model this way.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { BatchNormBase, BatchNorm1d, BatchNorm2d, Sequential, type BatchNormOptions } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import type { Comm } from './comm.js';
import { allreduceSum } from './collectives.js';

export class SyncBatchNorm extends BatchNormBase {
  protected readonly inputRanks = [2, 3, 4];
  constructor(numFeatures: number, o: BatchNormOptions, readonly comm: Comm) {
    super(numFeatures, o);
  }

  override forward(x: Tensor): Tensor {
    if (!this.training || this.comm.size === 1) return super.forward(x);
    if (!this.inputRanks.includes(x.ndim) || x.shape[1] !== this.numFeatures) {
      throw new Error(`[SyncBatchNorm] expected [N, ${this.numFeatures}, ...] input, got [${x.shape.join(', ')}]`);
    }
    const C = this.numFeatures;
    const dims = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
    const bshape = [1, C, ...x.shape.slice(2).map(() => 1)];
    const count = Float64Array.of(x.size / C);
    this.comm.allreduce(count);
    const n = count[0]!;
    if (n <= 1) throw new Error(`[SyncBatchNorm] expected more than 1 value per channel across ranks when training, got input [${x.shape.join(', ')}]`);
    // two passes (mean, then the centred sum of squares) for the accuracy of the single-process kernel
    const mean = T.mulScalar(allreduceSum(T.sum(x, dims), this.comm), 1 / n); // [C]
    const xc = T.sub(x, T.reshape(mean, bshape)); // [N, C, ...]
    const variance = T.mulScalar(allreduceSum(T.sum(T.square(xc), dims), this.comm), 1 / n); // [C], biased
    let scale = T.rsqrt(T.addScalar(variance, this.eps)); // [C]
    if (this.weight !== null) scale = T.mul(scale, this.weight);
    let y = T.mul(xc, T.reshape(scale, bshape));
    if (this.bias !== null) y = T.add(y, T.reshape(this.bias, bshape));
    if (this.trackRunningStats) {
      const nbt = this.numBatchesTracked!.data;
      nbt[0] = nbt[0]! + 1;
      const momentum = this.momentum ?? 1 / nbt[0]!;
      const rm = this.runningMean!.data;
      const rv = this.runningVar!.data;
      const m = mean.data;
      const v = variance.data;
      for (let c = 0; c < C; c++) {
        rm[c] = (1 - momentum) * rm[c]! + momentum * m[c]!;
        rv[c] = (1 - momentum) * rv[c]! + momentum * v[c]! * (n / (n - 1));
      }
    }
    return y;
  }
}

/**
 * Replaces every BatchNorm1d/2d under root by a SyncBatchNorm with the same options, parameters and statistics
 * (torch.nn.SyncBatchNorm.convert_sync_batchnorm). Call before building the optimizer. Returns how many it replaced.
 */
export function convertSyncBatchNorm(root: Module, comm: Comm): number {
  let replaced = 0;
  for (const m of [...root.modules()]) {
    for (const [name, child] of [...m.namedChildren()]) {
      if (!(child instanceof BatchNorm1d || child instanceof BatchNorm2d)) continue;
      const sync = new SyncBatchNorm(child.numFeatures, { eps: child.eps, momentum: child.momentum, affine: child.affine, trackRunningStats: child.trackRunningStats }, comm);
      T.noGrad(() => {
        for (const [k, t] of child.namedParameters()) {
          const dst = k === 'weight' ? sync.weight : sync.bias;
          T.copy_(dst!, t);
          dst!.requiresGrad = t.requiresGrad;
        }
        for (const [k, t] of child.namedBuffers()) {
          const dst = k === 'running_mean' ? sync.runningMean : k === 'running_var' ? sync.runningVar : sync.numBatchesTracked;
          T.copy_(dst!, t);
        }
      });
      sync.train(child.training);
      if (m instanceof Sequential) m.set(Number(name), sync);
      else m.registerModule(name, sync);
      child.dispose();
      replaced++;
    }
  }
  return replaced;
}
