// The basic layers, with PyTorch's parameter names, shapes, defaults and initialisation.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { globalRng } from '../tensor/index.js';
import { Module, factoryTensor, type Factory, type Layer } from './module.js';
import { defaultLinearInit } from './init.js';

/** y = x W^T + b; weight [out, in], PyTorch's default init. */
export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true, f: Factory = {}) {
    super();
    const w = this.registerParameter('weight', factoryTensor([outFeatures, inFeatures], f))!;
    const b = this.registerParameter('bias', bias ? factoryTensor([outFeatures], f) : null);
    if (f.skipInit !== true) defaultLinearInit(w, b, f.rng ?? globalRng);
  }
  get weight(): Tensor { return this.param('weight'); }
  get bias(): Tensor | null { return this.paramOrNull('bias'); }
  forward(x: Tensor): Tensor {
    return T.linear(x, this.weight, this.bias);
  }
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

/** 2-D convolution; weight [out, in/groups, k, k], PyTorch's default init. */
export class Conv2d extends Module {
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number,
    o: Conv2dOptions = {}, f: Factory = {}) {
    super();
    this.stride = o.stride ?? 1;
    this.padding = o.padding ?? 0;
    this.dilation = o.dilation ?? 1;
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new Error(`[Conv2d] channels ${inChannels} -> ${outChannels} are not divisible by groups=${this.groups}`);
    }
    const w = this.registerParameter('weight', factoryTensor([outChannels, inChannels / this.groups, kernelSize, kernelSize], f))!;
    const b = this.registerParameter('bias', (o.bias ?? true) ? factoryTensor([outChannels], f) : null);
    if (f.skipInit !== true) defaultLinearInit(w, b, f.rng ?? globalRng);
  }
  get weight(): Tensor { return this.param('weight'); }
  get bias(): Tensor | null { return this.paramOrNull('bias'); }
  forward(x: Tensor): Tensor {
    return T.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** running-statistics momentum; null gives the cumulative average (momentum 1/num_batches_tracked), as PyTorch */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/**
 * Batch norm over channel dim 1 with PyTorch's buffers: running_mean, running_var (unbiased batch variance in the
 * update) and num_batches_tracked (int32 here, int64 in PyTorch; loading converts).
 */
let fusedBatchNormRelu = process.env.SELFSUP_FUSED_BN_RELU !== '0';

/**
 * Turns the fused batch norm + residual add + ReLU kernel of BatchNorm2d.forwardRelu on or off (off: the composed
 * ops; tests compare the two paths, SELFSUP_FUSED_BN_RELU=0 sets off); returns the old setting.
 */
export function setFusedBatchNormRelu(on: boolean): boolean {
  const old = fusedBatchNormRelu;
  fusedBatchNormRelu = on;
  return old;
}
/** Whether BatchNorm2d.forwardRelu (and SplitBatchNorm2d's) run the fused kernel now. */
export function fusedBatchNormReluEnabled(): boolean { return fusedBatchNormRelu; }

export abstract class BatchNormBase extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  protected abstract readonly inputRanks: readonly number[];
  constructor(readonly numFeatures: number, o: BatchNormOptions = {}, f: Factory = {}) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    this.affine = o.affine ?? true;
    this.trackRunningStats = o.trackRunningStats ?? true;
    this.registerParameter('weight', this.affine ? factoryTensor([numFeatures], f, 1) : null);
    this.registerParameter('bias', this.affine ? factoryTensor([numFeatures], f) : null);
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', factoryTensor([numFeatures], f));
      this.registerBuffer('running_var', factoryTensor([numFeatures], f, 1));
      this.registerBuffer('num_batches_tracked', T.zeros([], { dtype: 'int32', ...(f.device !== undefined ? { device: f.device } : {}) }));
    }
  }
  get weight(): Tensor | null { return this.paramOrNull('weight'); }
  get bias(): Tensor | null { return this.paramOrNull('bias'); }
  get runningMean(): Tensor | null { return this.bufferOrNull('running_mean'); }
  get runningVar(): Tensor | null { return this.bufferOrNull('running_var'); }
  get numBatchesTracked(): Tensor | null { return this.bufferOrNull('num_batches_tracked'); }

  forward(x: Tensor): Tensor {
    const a = this.batchNormArgs(x);
    return T.batchNorm(x, a.runningMean, a.runningVar, this.weight, this.bias, a.opts);
  }

  /**
   * relu(this(x) + residual) (residual null: relu(this(x))), as ResNet blocks end. Composed here; BatchNorm2d fuses
   * it into one kernel. A subclass that changes forward (SyncBatchNorm) keeps this composed form, and so stays right.
   */
  forwardRelu(x: Tensor, residual: Tensor | null = null): Tensor {
    const y = this.forward(x);
    return T.relu(residual === null ? y : T.add(y, residual));
  }

  /** Checks x, counts the batch, and picks the statistics and options T.batchNorm gets, as PyTorch's _BatchNorm. */
  protected batchNormArgs(x: Tensor): { runningMean: Tensor | null; runningVar: Tensor | null; opts: T.BatchNormOptions } {
    if (!this.inputRanks.includes(x.ndim)) {
      throw new Error(`[${this.constructor.name}] expected ${this.inputRanks.join('-D or ')}-D input, got [${x.shape.join(', ')}]`);
    }
    if (x.shape[1] !== this.numFeatures) {
      throw new Error(`[${this.constructor.name}] expected ${this.numFeatures} channels in dim 1, got input [${x.shape.join(', ')}]`);
    }
    const useBatchStats = this.training || !this.trackRunningStats;
    let momentum = this.momentum ?? 0;
    if (this.training && this.trackRunningStats) {
      const nbt = this.numBatchesTracked!.data;
      nbt[0] = nbt[0]! + 1;
      if (this.momentum === null) momentum = 1 / nbt[0]!;
    }
    // running statistics are updated only when tracked and training (PyTorch passes None otherwise)
    const updateStats = this.training && this.trackRunningStats;
    return {
      runningMean: useBatchStats && !updateStats ? null : this.runningMean,
      runningVar: useBatchStats && !updateStats ? null : this.runningVar,
      opts: { training: useBatchStats, momentum, eps: this.eps },
    };
  }
}

export class BatchNorm1d extends BatchNormBase {
  protected readonly inputRanks = [2, 3];
}

export class BatchNorm2d extends BatchNormBase {
  protected readonly inputRanks = [4];
  /** Fused: one pass normalises, adds the residual and clamps; batch norm's own output is never stored. */
  override forwardRelu(x: Tensor, residual: Tensor | null = null): Tensor {
    if (!fusedBatchNormRelu) return super.forwardRelu(x, residual);
    const a = this.batchNormArgs(x);
    return T.batchNormRelu(x, a.runningMean, a.runningVar, this.weight, this.bias, residual, a.opts);
  }
}

/** Layer norm over the last dim (PyTorch's default eps 1e-5; timm's ViT uses 1e-6). */
export class LayerNorm extends Module {
  constructor(readonly normalizedShape: number, readonly eps = 1e-5, elementwiseAffine = true, f: Factory = {}) {
    super();
    this.registerParameter('weight', elementwiseAffine ? factoryTensor([normalizedShape], f, 1) : null);
    this.registerParameter('bias', elementwiseAffine ? factoryTensor([normalizedShape], f) : null);
  }
  get weight(): Tensor | null { return this.paramOrNull('weight'); }
  get bias(): Tensor | null { return this.paramOrNull('bias'); }
  forward(x: Tensor): Tensor {
    return T.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor { return T.relu(x); }
}

/** Exact (erf) GELU, as nn.GELU() and timm. */
export class GELU extends Module {
  forward(x: Tensor): Tensor { return T.gelu(x); }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor { return x; }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5, readonly rng: Rng = globalRng) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`[Dropout] p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor { return T.dropout(x, this.p, this.training, this.rng); }
}

/**
 * Stochastic depth per sample (timm's drop_path): in training, zeroes whole samples of a residual branch with
 * probability p and scales the kept ones by 1/(1-p); the identity in eval or when p = 0.
 */
export class DropPath extends Module {
  constructor(readonly p = 0, readonly rng: Rng = globalRng, readonly scaleByKeep = true) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`[DropPath] p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    if (this.p === 0 || !this.training) return x;
    const keepProb = 1 - this.p;
    const shape = [x.shape[0]!, ...x.shape.slice(1).map(() => 1)]; // [B, 1, 1, ...]
    let mask = T.bernoulli(shape, keepProb, { dtype: x.dtype, device: x.device, rng: this.rng });
    if (keepProb > 0 && this.scaleByKeep) mask = T.mulScalar(mask, 1 / keepProb);
    return T.mul(x, mask);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize: number, readonly stride = kernelSize, readonly padding = 0) { super(); }
  forward(x: Tensor): Tensor { return T.maxPool2d(x, this.kernelSize, { stride: this.stride, padding: this.padding }); }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | [number, number]) { super(); }
  forward(x: Tensor): Tensor { return T.adaptiveAvgPool2d(x, this.outputSize); }
}

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  forward(x: Tensor): Tensor { return T.flatten(x, this.startDim, this.endDim); }
}

/** Children named '0', '1', ... applied in order (also serves as ModuleList: index with at()). */
export class Sequential extends Module {
  private readonly layers: Layer[] = [];
  constructor(...layers: Layer[]) {
    super();
    for (const l of layers) this.append(l);
  }
  append(l: Layer): this {
    this.registerModule(String(this.layers.length), l);
    this.layers.push(l);
    return this;
  }
  get length(): number { return this.layers.length; }
  at<M extends Layer = Layer>(i: number): M {
    const l = this.layers[i < 0 ? i + this.layers.length : i];
    if (l === undefined) throw new Error(`[Sequential] index ${i} out of range for ${this.layers.length} layers`);
    return l as M;
  }
  /** Replaces layer i (keeping its name), e.g. a classifier head. */
  set(i: number, l: Layer): void {
    this.at(i);
    this.layers[i] = l;
    this.registerModule(String(i), l);
  }
  [Symbol.iterator](): Iterator<Layer> { return this.layers[Symbol.iterator](); }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const l of this.layers) y = l.forward(y);
    return y;
  }
}
