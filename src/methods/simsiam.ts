// SimSiam (facebookresearch/simsiam, simsiam/builder.py): a Siamese encoder with a 3-layer projector (2 layers in
// the paper's CIFAR-10 setting), a 2-layer bottleneck predictor, and the symmetric negative cosine loss with a
// stop-gradient on z.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { Module, type Layer } from '../nn/module.js';
import { BatchNorm1d, Linear, ReLU, Sequential } from '../nn/layers.js';
import type { EncoderFactory } from './moco.js';
import type { BasicGroupInit } from '../optim/optimizer.js';
import type { LinearRecipe } from '../eval/linear.js';
import type { Method, MethodSpec, TrainingStepOutput, FrozenBackbone } from './method.js';
import type { Comm } from '../dist/comm.js';
import { convertSyncBatchNorm } from '../dist/syncbn.js';
import { backboneFeatures, buildBackbone, encoderBackbone } from './backbones.js';
import { stripPrefix, type KeyMap } from '../io/safetensors.js';

export interface SimSiamConfig {
  /** projector output dimension */
  dim: number;
  /** predictor hidden (bottleneck) dimension */
  predDim: number;
  /** keep the predictor at the base lr instead of following the schedule (the paper's fix_pred_lr) */
  fixPredLr: boolean;
  /** projector depth: 3 as builder.py (ImageNet), 2 as the paper's CIFAR-10 experiments (appendix D); default 3 */
  projLayers?: number;
}

export function simsiamConfig(): SimSiamConfig { return { dim: 2048, predDim: 512, fixPredLr: true, projLayers: 3 }; }
/** The paper's CIFAR-10 setting: the projector has 2 layers (no second hidden layer). */
export function simsiamCifarConfig(): SimSiamConfig { return { dim: 2048, predDim: 512, fixPredLr: true, projLayers: 2 }; }

export interface SimSiamOutput {
  p1: Tensor;
  p2: Tensor;
  /** projector outputs, detached: the stop-gradient */
  z1: Tensor;
  z2: Tensor;
}

export class SimSiam extends Module implements Method {
  readonly methodName = 'simsiam';
  readonly viewsPerSample = 2;
  readonly checkpointExtras = [] as const;
  readonly cfg: SimSiamConfig;

  constructor(baseEncoder: EncoderFactory, cfg: SimSiamConfig, rng: Rng = T.globalRng) {
    super();
    this.cfg = cfg;
    const encoder = this.registerModule('encoder', baseEncoder(cfg.dim));
    const fc = encoder.child<Linear>('fc');
    const prevDim = fc.inFeatures;
    const f = { rng };
    const projLayers = cfg.projLayers ?? 3;
    if (projLayers !== 2 && projLayers !== 3) throw new Error(`[SimSiam] projLayers must be 2 or 3, got ${projLayers}`);
    const hidden = (): Layer[] => [new Linear(prevDim, prevDim, false, f), new BatchNorm1d(prevDim), new ReLU()];
    encoder.registerModule('fc', new Sequential(
      ...hidden(), // first layer
      ...(projLayers === 3 ? hidden() : []), // second layer (ImageNet only)
      fc, new BatchNorm1d(cfg.dim, { affine: false }), // output layer
    ));
    fc.bias!.requiresGrad = false; // followed by BN: the bias does nothing (the official "hack")
    this.registerModule('predictor', new Sequential(
      new Linear(cfg.dim, cfg.predDim, false, f), new BatchNorm1d(cfg.predDim), new ReLU(), // hidden layer
      new Linear(cfg.predDim, cfg.dim, true, f), // output layer
    ));
  }

  get encoder(): Layer { return this.child<Layer>('encoder'); }
  get predictor(): Sequential { return this.child<Sequential>('predictor'); }

  /** Both views through encoder and predictor; z is returned detached. */
  forwardViews(x1: Tensor, x2: Tensor): SimSiamOutput {
    const z1 = this.encoder.forward(x1); // [N, dim]
    const z2 = this.encoder.forward(x2); // [N, dim]
    const p1 = this.predictor.forward(z1); // [N, dim]
    const p2 = this.predictor.forward(z2); // [N, dim]
    return { p1, p2, z1: z1.detach(), z2: z2.detach() };
  }

  /** -(cos(p1, z2).mean() + cos(p2, z1).mean()) / 2 */
  forwardLoss(o: SimSiamOutput): Tensor {
    const c12 = T.mean(T.cosineSimilarity(o.p1, o.z2, 1));
    const c21 = T.mean(T.cosineSimilarity(o.p2, o.z1, 1));
    return T.mulScalar(T.add(c12, c21), -0.5);
  }

  computeLoss(x1: Tensor, x2: Tensor): { loss: Tensor; out: SimSiamOutput } {
    const out = this.forwardViews(x1, x2);
    return { loss: this.forwardLoss(out), out };
  }

  /** main_simsiam.py: torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) before DDP wraps it. */
  distribute(comm: Comm): void {
    if (comm.size > 1) convertSyncBatchNorm(this, comm);
  }

  trainingStep(views: readonly Tensor[]): TrainingStepOutput {
    const r = this.computeLoss(views[0]!, views[1]!);
    return { loss: r.loss, metrics: { zStd: outputStd(r.out.z1) } };
  }

  /** The encoder's pooled features, before the projector. */
  features(x: Tensor): Tensor {
    return backboneFeatures(this.encoder, x); // [N, D]
  }

  frozenBackbone(): FrozenBackbone {
    return encoderBackbone(this.encoder);
  }

  /** main_simsiam.py's two groups: the encoder follows the schedule, the predictor stays at the base lr (fix_pred_lr). */
  paramGroups(weightDecay: number): BasicGroupInit[] {
    const named = [...this.namedParameters()].filter(([, p]) => p.requiresGrad);
    return [
      { name: 'encoder', params: named.filter(([n]) => !n.startsWith('predictor.')).map(([, p]) => p), weightDecay },
      { name: 'predictor', params: named.filter(([n]) => n.startsWith('predictor.')).map(([, p]) => p), weightDecay, fixedLr: this.cfg.fixPredLr },
    ];
  }

  backboneKey(key: string): string | null {
    return simsiamBackboneKey(key);
  }

  /** The encoder's output with its projector (z), [N, dim]. */
  headFeatures(x: Tensor): Tensor {
    return this.encoder.forward(x);
  }

  /** The encoder with its projector (z). */
  forward(x: Tensor): Tensor {
    return this.encoder.forward(x);
  }
}

/** The key map: encoder.* without the projector (encoder.fc.*), as main_lincls.py loads module.encoder.* */
const simsiamBackboneKey: KeyMap = stripPrefix('encoder.', /^fc\./);

/** facebookresearch/simsiam checkpoints (`module.` from DDP): the backbone without the projector, kept with keepFc. */
export function simsiamKeys(opts: { keepFc?: boolean } = {}): KeyMap {
  return stripPrefix('module.encoder.', opts.keepFc === true ? undefined : /^fc\./);
}

/**
 * simsiam/main_lincls.py --lars: apex LARC(SGD, trust_coefficient=0.001, clip=False) over weight and bias, lr 0.1 *
 * batch / 256 (batch 4096), wd 0, cosine, 90 epochs
 */
export function simsiamLinearRecipe(): LinearRecipe {
  return { name: 'simsiam', optimizer: 'larc', lr: 0.1, scaleLr: true, momentum: 0.9, weightDecay: 0, epochs: 90, batchSize: 4096, bnHead: false, schedule: 'cosine', milestones: [], warmupEpochs: 0 };
}

export const simsiamMethod: MethodSpec<SimSiamConfig> = {
  name: 'simsiam',
  description: 'SimSiam (Siamese encoder, predictor, stop-gradient)',
  defaultConfig: simsiamConfig,
  build(cfg, section, rng) {
    // zero_init_residual=True, as main_simsiam.py builds its ResNet
    return new SimSiam((numClasses) => buildBackbone(cfg.arch, { numClasses, width: cfg.width, rng, zeroInitResidual: true }), section, rng);
  },
  linearRecipe: simsiamLinearRecipe,
};

/**
 * The collapse monitor of the paper (Fig. 2): the std over the batch of the L2-normalised outputs, averaged over
 * channels. About 1/sqrt(dim) when healthy, 0 when collapsed.
 */
export function outputStd(z: Tensor): number {
  return T.noGrad(() => T.tidy(() => T.mean(T.std(T.l2Normalize(z, 1), 0)).item()));
}
