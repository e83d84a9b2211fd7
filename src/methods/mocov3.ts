// MoCo v3 (facebookresearch/moco-v3, moco/builder.py): a base encoder with a projector MLP and a predictor MLP, a
// momentum encoder (EMA of the base encoder and its projector) as the target, and a symmetric InfoNCE over in-batch
// keys scaled by 2T. ResNets get a 2-layer projector and a predictor without its last BN; ViTs a 3-layer projector.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { Module, type Layer } from '../nn/module.js';
import { BatchNorm1d, Linear, ReLU, Sequential } from '../nn/layers.js';
import { ResNet } from '../models/resnet.js';
import { VisionTransformer } from '../models/vit.js';
import type { EncoderFactory } from './moco.js';

export interface MocoV3Config {
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
export function mocoV3ResNetConfig(): MocoV3Config { return { dim: 256, mlpDim: 4096, T: 1.0, m: 0.99, mCos: true }; }
/** CONFIG.md's ViT runs: --moco-t=.2 --moco-m-cos. */
export function mocoV3VitConfig(): MocoV3Config { return { dim: 256, mlpDim: 4096, T: 0.2, m: 0.99, mCos: true }; }

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

/** vits.py's models (vit_small, vit_base) plus a ViT-Tiny for CIFAR: [embedDim, numHeads]. MoCo v3's ViT-Small has 12 heads. */
const MOCOV3_VITS: Record<string, readonly [number, number]> = { 'vit-tiny': [192, 3], 'vit-small': [384, 12], 'vit-base': [768, 12] };

/** VisionTransformerMoCo: a timm ViT (cls token, LayerNorm eps 1e-6, qkv bias) with MoCo v3's init and sin-cos table. */
export function mocoV3Vit(arch: string, o: { imgSize: number; patchSize: number; depth: number; numClasses: number; stopGradConv1: boolean }, rng: Rng): VisionTransformer {
  const dims = MOCOV3_VITS[arch];
  if (dims === undefined) throw new Error(`[mocov3] unknown ViT '${arch}'; expected ${Object.keys(MOCOV3_VITS).join(', ')}`);
  return new VisionTransformer({
    imgSize: o.imgSize, patchSize: o.patchSize, embedDim: dims[0], depth: o.depth, numHeads: dims[1], mlpRatio: 4, qkvBias: true,
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

export class MoCoV3 extends Module {
  readonly cfg: MocoV3Config;
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

  /** The base encoder's output, projector included ([N, dim], not normalised). */
  forward(x: Tensor): Tensor {
    return this.baseEncoder.forward(x);
  }
}
