// Fine-tuning an MAE encoder end to end as mae/main_finetune.py does: a timm ViT with global pooling (fc_norm) and
// drop path, head initialised trunc-normal(2e-5), AdamW over layer-wise lr-decay groups (scale =
// decay^(num_layers - layer_id)), Mixup/CutMix with label smoothing in the soft targets (else label-smoothed
// cross-entropy), per-iteration warmup + cosine. The training transform (the 'mae-finetune' preset) is timm 0.3.2's:
// bicubic RandomResizedCrop, flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 in pixel mode.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { truncNormal_, zeros_ } from '../nn/init.js';
import type { Linear } from '../nn/layers.js';
import type { VisionTransformer } from '../models/vit.js';
import { AdamW, adjustLearningRate, layerDecayGroups, type DecayGroup, type LrSchedule } from '../optim/index.js';
import type { DataLoader } from '../data/loader.js';
import { vitFromMae, type MaskedAutoencoderViT } from '../methods/mae.js';
import { evaluateHead } from './linear.js';
import { batchTensors, trainSupervised, type SupervisedEpoch } from './supervised.js';
import type { OnProgress } from '../io/progress.js';
import { comm as currentComm, type Comm } from '../dist/comm.js';
import { DistributedDataParallel } from '../dist/ddp.js';
import { mixupBatch, type MixupOptions } from '../data/mixup.js';

export interface FinetuneRecipe {
  /** base lr: lr = blr * batchSize / 256 */
  blr: number;
  minLr: number;
  layerDecay: number;
  weightDecay: number;
  dropPath: number;
  labelSmoothing: number;
  epochs: number;
  warmupEpochs: number;
  batchSize: number;
  globalPool: boolean;
  /** timm Mixup: Beta alpha of Mixup and of CutMix (0 disables each), probability of mixing a batch, of CutMix */
  mixup: number;
  cutmix: number;
  mixupProb: number;
  mixupSwitchProb: number;
}

/**
 * FINETUNE.md's ViT-Base recipe: blr 5e-4, layer decay 0.65, wd 0.05, drop path 0.1, smoothing 0.1, mixup 0.8,
 * cutmix 1.0, 100 epochs, 5 warmup.
 */
export function finetuneRecipe(): FinetuneRecipe {
  return {
    blr: 5e-4, minLr: 1e-6, layerDecay: 0.65, weightDecay: 0.05, dropPath: 0.1, labelSmoothing: 0.1, epochs: 100, warmupEpochs: 5,
    batchSize: 1024, globalPool: true, mixup: 0.8, cutmix: 1.0, mixupProb: 1.0, mixupSwitchProb: 0.5,
  };
}

/** The classifier ViT from an MAE encoder: global pooling + fc_norm, drop path, trainable position embeddings. */
export function finetuneModel(mae: MaskedAutoencoderViT, classes: number, r: FinetuneRecipe, rng: T.Rng): VisionTransformer {
  const vit = vitFromMae(mae, { globalPool: r.globalPool, numClasses: classes, dropPathRate: r.dropPath, learnedPosEmbed: true, rng });
  const head = vit.head as Linear;
  T.noGrad(() => {
    truncNormal_(head.weight, 2e-5, rng); // main_finetune: trunc_normal_(model.head.weight, std=2e-5)
    zeros_(head.bias!);
  });
  return vit;
}

/** MAE's param_groups_lrd over the ViT: no weight decay on 1-D parameters, pos_embed and cls_token. */
export function finetuneParamGroups(vit: VisionTransformer, r: FinetuneRecipe): (DecayGroup & { name: string; lrScale: number })[] {
  return layerDecayGroups([...vit.namedParameters()], {
    depth: vit.config.depth, weightDecay: r.weightDecay, layerDecay: r.layerDecay, noWeightDecayList: ['pos_embed', 'cls_token'],
  });
}

export type FinetuneEpoch = SupervisedEpoch;

export interface FinetuneResult { lr: number; history: FinetuneEpoch[]; top1: number; top5: number; groups: number }

/**
 * Fine-tunes vit. Data parallel over comm (default: the process group in use) as main_finetune.py under DDP: train
 * and val hold this rank's shards, r.batchSize is the global batch, the ViT starts from rank 0's weights and its
 * gradients are averaged over ranks; Mixup draws from seed + rank, as MAE seeds each rank with args.seed + rank.
 */
export async function finetune(vit: VisionTransformer, train: DataLoader, val: DataLoader, r: FinetuneRecipe,
  onEpoch?: (e: FinetuneEpoch) => void, seed = 0, onProgress?: OnProgress, comm: Comm = currentComm()): Promise<FinetuneResult> {
  const classes = (vit.head as Linear).outFeatures;
  // main_finetune: with mixup the smoothing lives in the soft targets (SoftTargetCrossEntropy), else in the loss
  const mixing = r.mixup > 0 || r.cutmix > 0;
  const mix: MixupOptions = { mixupAlpha: r.mixup, cutmixAlpha: r.cutmix, prob: r.mixupProb, switchProb: r.mixupSwitchProb, labelSmoothing: r.labelSmoothing, numClasses: classes };
  const mixRng = new T.Rng(seed + comm.rank);
  const ddp = comm.size > 1 ? new DistributedDataParallel(vit, comm) : null;
  const lr = (r.blr * r.batchSize) / 256;
  const groups = finetuneParamGroups(vit, r);
  const opt = new AdamW(groups, { lr, betas: [0.9, 0.999], weightDecay: r.weightDecay });
  const schedule: LrSchedule = { kind: 'warmupCosine', lr, minLr: r.minLr, warmupEpochs: r.warmupEpochs, epochs: r.epochs };
  const history = await trainSupervised({
    where: 'finetune', hint: 'lower --blr', epochs: r.epochs, train, optimizer: opt,
    lrAt: (epoch, step, iters) => adjustLearningRate(opt, schedule, epoch + step / iters), // per iteration, as MAE
    loss: (b) => {
      if (!mixing) {
        const { x, labels } = batchTensors(b);
        return T.crossEntropy(vit.forward(x), labels, { labelSmoothing: r.labelSmoothing }); // logits [N, classes]
      }
      const m = mixupBatch(b.images, b.shape, b.labels, mix, mixRng);
      const targets = T.tensor(m.targets, [b.labels.length, classes]); // [N, classes], rows sum to 1
      return T.crossEntropy(vit.forward(T.tensor(m.images, b.shape)), targets);
    },
    trainMode: () => vit.train(),
    evaluate: (onBatch) => {
      vit.eval(); // drop path off, as the evaluation of main_finetune
      return evaluateHead((x: Tensor) => vit.forwardFeatures(x), vit.head, val, onBatch, comm);
    },
    onEpoch, onProgress, ddp,
  });
  const last = history[history.length - 1]!;
  return { lr, history, top1: last.top1, top5: last.top5, groups: groups.length };
}
