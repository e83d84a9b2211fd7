// MoCo v3 (facebookresearch/moco-v3, moco/builder.py): a base encoder with a projector MLP and a predictor MLP, a
// momentum encoder (EMA of the base encoder and its projector) as the target, and a symmetric InfoNCE over in-batch
// keys scaled by 2T. ResNets get a 2-layer projector and a predictor without its last BN; ViTs a 3-layer projector.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { Module, type Layer } from '../nn/module.js';
import { BatchNorm1d, Linear, ReLU, Sequential } from '../nn/layers.js';
import { ResNet } from '../models/resnet.js';
import { VisionTransformer, vitArch } from '../models/vit.js';
import { mocoMomentum } from '../optim/schedule.js';
import type { BasicGroupInit } from '../optim/optimizer.js';
import type { LinearRecipe } from '../eval/linear.js';
import type { TrainConfig } from '../train/config.js';
import type { EncoderFactory } from './moco.js';
import type { FrozenBackbone, Method, MethodSpec, StepContext, TrainingStepOutput } from './method.js';
import type { Comm } from '../dist/comm.js';
import { convertSyncBatchNorm } from '../dist/syncbn.js';
import { backboneFeatures, buildBackbone, encoderBackbone } from './backbones.js';

export interface MocoV3Config {
  /** ViT only: keep the random patch projection frozen (--stop-grad-conv1, set in every CONFIG.md ViT run) */
  stopGradConv1: boolean;
  /** output dimension of the projector and predictor (--moco-dim) */
  dim: number;
  /** hidden dimension of the MLPs (--moco-mlp-dim) */
  mlpDim: number;
  /** softmax temperature: 1.0 for ResNet, 0.2 for ViT (CONFIG.md) */
  T: number;
  /** base momentum of the momentum encoder (--moco-m) */
  m: number;
  /** raise the momentum from m to 1 by a half cosine over training (--moco-m-cos) */
  mCos: boolean;
}

/** main_moco.py defaults (ResNet-50): dim 256, mlp 4096, T 1.0, m 0.99 with the cosine schedule of CONFIG.md. */
export function mocoV3ResNetConfig(): MocoV3Config { return { dim: 256, mlpDim: 4096, T: 1.0, m: 0.99, mCos: true, stopGradConv1: false }; }
/** CONFIG.md's ViT runs: --moco-t=.2 --moco-m-cos --stop-grad-conv1. */
export function mocoV3VitConfig(): MocoV3Config { return { dim: 256, mlpDim: 4096, T: 0.2, m: 0.99, mCos: true, stopGradConv1: true }; }

/**
 * builder.py's _build_mlp: Linear (no bias) -> BN -> ReLU for each hidden layer, then Linear (no bias) and, with
 * lastBn, a BN without affine parameters (SimCLR's design, gamma removed).
 */
export function buildMlp(numLayers: number, inputDim: number, mlpDim: number, outputDim: number, lastBn: boolean, rng: Rng): Sequential {
  const mlp = new Sequential();
  for (let l = 0; l < numLayers; l++) {
    const dim1 = l === 0 ? inputDim : mlpDim;
    const dim2 = l === numLayers - 1 ? outputDim : mlpDim;
    mlp.append(new Linear(dim1, dim2, false, { rng }));
    if (l < numLayers - 1) {
      mlp.append(new BatchNorm1d(dim2));
      mlp.append(new ReLU());
    } else if (lastBn) {
      mlp.append(new BatchNorm1d(dim2, { affine: false }));
    }
  }
  return mlp;
}

/**
 * vits.py's VisionTransformerMoCo for an arch name (see vitArch; MoCo v3's vit_small has 12 heads:
 * 'vit-d384-depth12-heads12'): a timm ViT (cls token, LayerNorm eps 1e-6, qkv bias) with MoCo v3's init and table.
 */
export function mocoV3Vit(arch: string, o: { imgSize: number; numClasses: number; stopGradConv1: boolean }, rng: Rng): VisionTransformer {
  const a = vitArch(arch);
  if (a === null) throw new Error(`[mocov3] '${arch}' is not a ViT arch`);
  return new VisionTransformer({
    imgSize: o.imgSize, patchSize: a.patchSize, embedDim: a.embedDim, depth: a.depth, numHeads: a.numHeads, mlpRatio: 4, qkvBias: true,
    numClasses: o.numClasses, posEmbed: 'sincos', init: 'mocov3', stopGradConv1: o.stopGradConv1,
  }, { rng });
}

/** How keys are gathered across ranks (concat_all_gather) and which rows of the gathered keys are this rank's. */
export interface KeyGather {
  rank: number;
  /** all ranks' keys concatenated along dim 0, rank order; no gradient (the official all_gather has none) */
  allGather: (k: Tensor) => Tensor;
}

export interface MocoV3Output {
  loss: Tensor;
  /** logits [N, N * worldSize] of the first query against the gathered second keys, for accuracy monitoring */
  logits: Tensor;
  /** the positive's column for each row of logits */
  labels: Tensor;
}

export class MoCoV3 extends Module implements Method {
  readonly methodName = 'mocov3';
  readonly viewsPerSample = 2;
  /** the momentum encoder is part of the model: no training-only state */
  readonly checkpointExtras: readonly string[] = [];
  readonly cfg: MocoV3Config;
  /** set by distribute(): how keys are gathered across data-parallel ranks (one process: none) */
  private gather: KeyGather | undefined = undefined;
  /** 'resnet' (fc head, 2-layer projector) or 'vit' (head, 3-layer projector) */
  readonly kind: 'resnet' | 'vit';

  constructor(baseEncoder: EncoderFactory, cfg: MocoV3Config, rng: Rng = T.globalRng) {
    super();
    this.cfg = cfg;
    const base = this.registerModule('base_encoder', baseEncoder(cfg.mlpDim));
    const momentum = this.registerModule('momentum_encoder', baseEncoder(cfg.mlpDim));
    if (base instanceof VisionTransformer && momentum instanceof VisionTransformer) {
      this.kind = 'vit';
      const hiddenDim = base.numFeatures;
      base.head = buildMlp(3, hiddenDim, cfg.mlpDim, cfg.dim, true, rng);
      momentum.head = buildMlp(3, hiddenDim, cfg.mlpDim, cfg.dim, true, rng);
      this.registerModule('predictor', buildMlp(2, cfg.dim, cfg.mlpDim, cfg.dim, true, rng));
    } else {
      // MoCo_ResNet: any encoder with a Linear `fc` (a ResNet, or a test's tiny net)
      this.kind = 'resnet';
      const hiddenDim = base.child<Linear>('fc').inFeatures;
      if (base instanceof ResNet && momentum instanceof ResNet) {
        base.fc = buildMlp(2, hiddenDim, cfg.mlpDim, cfg.dim, true, rng);
        momentum.fc = buildMlp(2, hiddenDim, cfg.mlpDim, cfg.dim, true, rng);
      } else {
        base.registerModule('fc', buildMlp(2, hiddenDim, cfg.mlpDim, cfg.dim, true, rng));
        momentum.registerModule('fc', buildMlp(2, hiddenDim, cfg.mlpDim, cfg.dim, true, rng));
      }
      this.registerModule('predictor', buildMlp(2, cfg.dim, cfg.mlpDim, cfg.dim, false, rng));
    }
    // the momentum encoder starts as a copy of the base encoder and is never updated by gradients
    T.noGrad(() => {
      const pm = momentum.parameters();
      base.parameters().forEach((b, i) => { T.copy_(pm[i]!, b); });
    });
    momentum.requiresGrad_(false);
  }

  get baseEncoder(): Layer { return this.child<Layer>('base_encoder'); }
  get momentumEncoder(): Layer { return this.child<Layer>('momentum_encoder'); }
  get predictor(): Sequential { return this.child<Sequential>('predictor'); }

  /** param_m = param_m * m + param_b * (1 - m), parameters only (BN statistics are each encoder's own). */
  momentumUpdate(m: number): void {
    T.noGrad(() => T.tidy(() => {
      const pm = this.momentumEncoder.parameters();
      this.baseEncoder.parameters().forEach((b, i) => {
        const p = pm[i]!;
        T.copy_(p, T.add(T.mul(p, m), T.mul(b, 1 - m)));
      });
    }));
  }

  /**
   * CE(q k^T / T, positives on the diagonal) * 2T over L2-normalised q [N, dim] and keys [N, dim] gathered across
   * ranks; this rank's positives sit at columns rank * N + i.
   */
  contrastiveLoss(q: Tensor, k: Tensor, gather?: KeyGather): { loss: Tensor; logits: Tensor; labels: Tensor } {
    const qn = T.l2Normalize(q, 1); // [N, dim]
    let kn = T.l2Normalize(k, 1); // [N, dim]
    if (gather !== undefined) kn = T.noGrad(() => gather.allGather(kn)); // [N * world, dim]
    const logits = T.mulScalar(T.matmul(qn, kn, { transB: true }), 1 / this.cfg.T); // [N, N * world]
    const N = logits.shape[0]!;
    const offset = N * (gather?.rank ?? 0);
    const labels = T.tensor(Int32Array.from({ length: N }, (_, i) => i + offset), [N], { dtype: 'int32', device: logits.device });
    return { loss: T.mulScalar(T.crossEntropy(logits, labels), 2 * this.cfg.T), logits, labels };
  }

  /**
   * One training forward: queries from the base encoder + predictor for both views; the momentum update with m,
   * then keys from the momentum encoder (no graph); loss(q1, k2) + loss(q2, k1).
   */
  computeLoss(x1: Tensor, x2: Tensor, m: number, gather?: KeyGather): MocoV3Output {
    const q1 = this.predictor.forward(this.baseEncoder.forward(x1)); // [N, dim]
    const q2 = this.predictor.forward(this.baseEncoder.forward(x2)); // [N, dim]
    const [k1, k2] = T.noGrad(() => {
      this.momentumUpdate(m);
      return [this.momentumEncoder.forward(x1), this.momentumEncoder.forward(x2)]; // [N, dim] each
    });
    const a = this.contrastiveLoss(q1, k2!, gather);
    const b = this.contrastiveLoss(q2, k1!, gather);
    return { loss: T.add(a.loss, b.loss), logits: a.logits, labels: a.labels };
  }

  /**
   * Data parallel as main_moco.py: SyncBatchNorm everywhere (convert_sync_batchnorm) and the keys of every rank in
   * each rank's loss (concat_all_gather, no gradient), this rank's positives at columns rank * N + i.
   */
  distribute(comm: Comm): void {
    if (comm.size === 1) return;
    convertSyncBatchNorm(this, comm);
    this.gather = {
      rank: comm.rank,
      allGather: (k) => {
        const [N, dim] = k.shape as [number, number];
        return T.tensor(comm.allgather(Float32Array.from(k.data as ArrayLike<number>)), [N * comm.size, dim], { device: k.device, dtype: k.dtype }); // [N * world, dim]
      },
    };
  }

  /** The step at a point of training: with mCos the momentum rises from m to 1 by a half cosine, per iteration. */
  trainingStep(views: readonly Tensor[], ctx?: StepContext): TrainingStepOutput {
    const progress = ctx?.progress;
    const m = this.cfg.mCos && progress !== undefined ? mocoMomentum(progress.epoch, this.cfg.m, progress.epochs) : this.cfg.m;
    const out = this.computeLoss(views[0]!, views[1]!, m, this.gather);
    return { loss: out.loss, metrics: { acc1: T.accuracy(out.logits, out.labels), m } };
  }

  /** The base encoder's pooled features (ResNet average pool, ViT normed cls token), before the projector. */
  features(x: Tensor): Tensor {
    return backboneFeatures(this.baseEncoder, x); // [N, D]
  }

  /** The base encoder's output with its projector, [N, dim]. */
  headFeatures(x: Tensor): Tensor {
    return this.baseEncoder.forward(x);
  }

  frozenBackbone(): FrozenBackbone {
    return encoderBackbone(this.baseEncoder);
  }

  /**
   * One group, as main_moco.py passes model.parameters(): LARS exempts 1-D parameters itself, AdamW decays all; the
   * momentum encoder and a frozen patch projection have no gradient and are left out.
   */
  paramGroups(weightDecay: number): BasicGroupInit[] {
    return [{ name: 'all', params: this.parameters().filter((p) => p.requiresGrad), weightDecay }];
  }

  /** base_encoder.* without the projector (fc.* / head.*), as main_lincls.py loads module.base_encoder.* */
  backboneKey(key: string): string | null {
    if (!key.startsWith('base_encoder.')) return null;
    const rest = key.slice('base_encoder.'.length);
    return /^(fc|head)\./.test(rest) ? null : rest;
  }

  /** The base encoder's output, projector included ([N, dim], not normalised). */
  forward(x: Tensor): Tensor {
    return this.baseEncoder.forward(x);
  }
}

/** moco-v3/main_lincls.py: SGD lr 0.1 x batch/256 (CONFIG.md: --lr=3 for ViTs), batch 1024, wd 0, 90 epochs, cosine per epoch */
export function mocoV3LinearRecipe(cfg?: TrainConfig): LinearRecipe {
  const vit = cfg !== undefined && vitArch(cfg.arch) !== null;
  return { name: 'mocov3', optimizer: 'sgd', lr: vit ? 3 : 0.1, scaleLr: true, momentum: 0.9, weightDecay: 0, epochs: 90, batchSize: 1024, bnHead: false, schedule: 'cosine', milestones: [], warmupEpochs: 0 };
}

export const mocov3Method: MethodSpec<MocoV3Config> = {
  name: 'mocov3',
  description: 'MoCo v3 (momentum encoder, projector + predictor MLPs, symmetric in-batch InfoNCE; ResNet or ViT)',
  defaultConfig: mocoV3ResNetConfig,
  build(cfg, section, rng) {
    const vit = vitArch(cfg.arch) !== null;
    if (section.stopGradConv1 && !vit) throw new Error(`[pretrain] mocov3.stopGradConv1 freezes a ViT's patch projection; ${cfg.arch} is not a ViT`);
    // main_moco.py: torchvision ResNets with zero_init_residual=True; vits.py's VisionTransformerMoCo
    const encoder = (numClasses: number): Layer => (vit
      ? mocoV3Vit(cfg.arch, { imgSize: cfg.imgSize, numClasses, stopGradConv1: section.stopGradConv1 }, rng)
      : buildBackbone(cfg.arch, { numClasses, width: cfg.width, rng, zeroInitResidual: true }));
    return new MoCoV3(encoder, section, rng);
  },
  linearRecipe: mocoV3LinearRecipe,
};
