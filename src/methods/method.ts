// The one interface every self-supervised method implements and everything that trains or evaluates goes through
// (the trainer, the kNN monitor, knn/linear/embed/export, checkpoints). A method is a Module; its MethodSpec (in
// the method's own file, listed in registry.ts) builds it from a config and names its defaults.
import type { Rng, Tensor } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import type { BasicGroupInit } from '../optim/optimizer.js';
import type { LinearRecipe } from '../eval/linear.js';
import type { TrainConfig } from '../train/config.js';
import type { Reconstruction } from '../eval/reconstruct.js';
import type { Comm } from '../dist/comm.js';

/** What one training forward returns. */
export interface TrainingStepOutput {
  /** the scalar whose backward trains the method */
  loss: Tensor;
  /** monitoring scalars logged beside the loss (MoCo: acc1 of the InfoNCE logits; SimSiam: zStd) */
  metrics: Record<string, number>;
}

/** Where training is: the fractional epoch of this step and the run's length (MoCo v3's momentum schedule reads it). */
export interface TrainingProgress {
  /** epoch + step / itersPerEpoch */
  epoch: number;
  /** the run's total epochs */
  epochs: number;
}

/**
 * Where a batch's samples come from. A method draws its per-sample randomness (MAE's masks) from (seed, epoch, index)
 * so that it does not depend on batching or on how samples are spread over data-parallel ranks.
 */
export interface SampleContext {
  seed: number;
  epoch: number;
  /** dataset indices of the batch's samples, in batch order */
  indices: Int32Array;
}

/** What the trainer knows about a step beyond its views. */
export interface StepContext {
  samples?: SampleContext;
  /** where training is (schedules inside a method: MoCo v3's momentum) */
  progress?: TrainingProgress;
  /** MoCo: fixed key-batch shuffle permutations (tests); by default drawn from the method's generator */
  shuffles?: Int32Array[];
}

/** The backbone that linear probing and ONNX export read, with its feature function. */
export interface FrozenBackbone {
  module: Module;
  /** [N, C, H, W] -> [N, dim] */
  features: (x: Tensor) => Tensor;
  dim: number;
  /** built for this call (MAE's ViT) and the caller's to dispose; otherwise a part of the method */
  owned: boolean;
}

export interface Method extends Module {
  /** the registry name ('moco', 'simsiam', 'mae') */
  readonly methodName: string;
  /** augmented views of each sample one training step takes (MoCo, SimSiam: 2; MAE: 1) */
  readonly viewsPerSample: number;
  /**
   * One training forward on a batch of views ([N, C, H, W] each, viewsPerSample of them). The step's side effects
   * that precede or follow the loss in the official code (MoCo's momentum update and enqueue) happen here.
   */
  trainingStep(views: readonly Tensor[], ctx?: StepContext): TrainingStepOutput;
  /**
   * Backbone features before any projection head, not normalised: [N, D]. The kNN monitor, `knn` and `embed` read
   * these (MoCo/SimSiam: the ResNet's average pool; MAE: the mean of the patch tokens after the encoder's norm).
   */
  features(x: Tensor): Tensor;
  /**
   * Optional: the encoder's output with its projection head, not normalised (the MoCo CIFAR demo's kNN monitor reads
   * F.normalize(encoder_q(x)), the 128-d fc output). Methods without a head (MAE) leave it out.
   */
  headFeatures?(x: Tensor): Tensor;
  /** The backbone a linear probe and the ONNX export read (MAE: a ViT reading the normed cls token). */
  frozenBackbone(): FrozenBackbone;
  /** The optimizer's parameter groups (trainable parameters only), each with its weight decay and lr rule. */
  paramGroups(weightDecay: number): BasicGroupInit[];
  /**
   * State-dict keys that are training state rather than weights (MoCo's queue and queue_ptr): checkpoints save and
   * restore them; loading weights for evaluation does not require them.
   */
  readonly checkpointExtras: readonly string[];
  /**
   * The key map: a key of this method's state dict -> the backbone's own key (torchvision ResNet or timm ViT names,
   * as the official main_lincls.py strips `module.encoder_q.`), or null for keys outside the backbone (heads, queue,
   * decoder).
   */
  backboneKey(key: string): string | null;
  /** Optional: a loss on held-out images the monitor reports (MAE's reconstruction loss, masks per sample). */
  heldOutLoss?(x: Tensor, samples: SampleContext): number;
  /**
   * Optional: run as the official DDP code does across comm's ranks (SimSiam: SyncBatchNorm; MoCo: shuffling BN
   * and every rank's keys into the queue). Called before the optimizer is built. Without it: plain DDP (MAE).
   */
  distribute?(comm: Comm): void;
  /** Optional: the method's reconstructions of images [N, C, H, W], masks drawn from rng (MAE; pictures, `reconstruct`). */
  reconstruct?(imgs: Tensor, rng: Rng): Reconstruction;
}

/** How the registry knows a method: its config section, how to build it and its linear-probe recipe. */
export interface MethodSpec<C extends object> {
  readonly name: string;
  /** one line for --help */
  readonly description: string;
  /** the defaults of the method's config section (cfg[name]) */
  defaultConfig(): C;
  /**
   * Builds the method for a training config and its section; every initialisation draws from rng. Throws, naming
   * the key, when the config cannot work (MoCo: a queue that is not a multiple of the keys per step).
   */
  build(cfg: TrainConfig, section: C, rng: Rng): Method;
  /** the official linear classification recipe (ImageNet batch sizes), for a run of this config (MoCo v3: ViT or ResNet) */
  linearRecipe(cfg?: TrainConfig): LinearRecipe;
}

/** The backbone's weights under its own names (the key map applied), e.g. to load into a torchvision ResNet. */
export function backboneStateDict(m: Method): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of m.stateDict()) {
    const b = m.backboneKey(k);
    if (b !== null) out.set(b, v);
  }
  return out;
}
