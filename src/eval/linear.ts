// Linear classification on a frozen backbone, with the official recipes: MoCo's main_lincls.py (SGD lr 30,
// steps at 60/80 of 100 epochs), SimSiam's main_lincls.py --lars (apex LARC, lr 0.1 x batch/256, cosine), MoCo v3's
// main_lincls.py (SGD lr 0.1 x batch/256, ViT 3, cosine) and MAE's
// main_linprobe.py (BatchNorm without affine + Linear on the cls token, LARS, warmup + cosine). The backbone runs in
// eval mode with no gradient; its weights and buffers are compared bit for bit after training.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Layer, Module } from '../nn/module.js';
import { BatchNorm1d, Linear, Sequential } from '../nn/layers.js';
import { normal_, truncNormal_, zeros_ } from '../nn/init.js';
import { SGD, LARS, LARC, adjustLearningRate, type LrSchedule } from '../optim/index.js';
import type { OnProgress } from '../io/progress.js';
import { comm as currentComm, type Comm } from '../dist/comm.js';
import { DistributedDataParallel } from '../dist/ddp.js';
import { realShardSize } from '../dist/run.js';
import { batchTensors, trainSupervised, type BatchSource, type SupervisedEpoch } from './supervised.js';
import { epochOrder, type Batch, type DataLoader } from '../data/loader.js';
import { forEachFeatureBatch } from './features.js';

/** A linear classification recipe; each method's MethodSpec.linearRecipe() gives its official one. */
export interface LinearRecipe {
  /** the method whose official recipe this is */
  name: string;
  /** sgd; lars (MAE's util/lars.py: 1-D parameters exempt); larc (apex LARC, trust 0.001, no clip: every parameter) */
  optimizer: 'sgd' | 'lars' | 'larc';
  /** base lr; the actual lr is lr * batchSize / 256 when scaleLr */
  lr: number;
  scaleLr: boolean;
  momentum: number;
  weightDecay: number;
  epochs: number;
  batchSize: number;
  /** MAE's head: BatchNorm1d(affine=False, eps=1e-6) before the Linear */
  bnHead: boolean;
  schedule: 'step' | 'cosine' | 'warmupCosine';
  /** step: fractions of the epochs where lr *= 0.1; warmupCosine: warmup epochs */
  milestones: number[];
  warmupEpochs: number;
}

/** The classifier: Linear with weight N(0, 0.01) and zero bias (MoCo, SimSiam), or MAE's BN + trunc-normal Linear. */
export function linearHead(dim: number, classes: number, bnHead: boolean, rng: T.Rng): Layer {
  const fc = new Linear(dim, classes, true, { rng });
  T.noGrad(() => {
    if (bnHead) truncNormal_(fc.weight, 0.01, rng);
    else normal_(fc.weight, 0, 0.01, rng);
    zeros_(fc.bias!);
  });
  return bnHead ? new Sequential(new BatchNorm1d(dim, { affine: false, eps: 1e-6 }), fc) : fc;
}

/** A bit-exact copy of a module's state (parameters and buffers). */
export function snapshotState(m: Module): Map<string, Float64Array> {
  const s = new Map<string, Float64Array>();
  for (const [k, t] of m.stateDict()) s.set(k, Float64Array.from(t.data as ArrayLike<number>));
  return s;
}

/** Throws when any tensor of m differs from the snapshot: the frozen backbone must come out of training untouched. */
export function assertUnchanged(before: ReadonlyMap<string, Float64Array>, m: Module, where = 'linear'): number {
  const after = m.stateDict();
  if (after.size !== before.size) throw new Error(`[${where}] the frozen backbone changed: ${before.size} tensors before training, ${after.size} after`);
  for (const [k, a] of before) {
    const t = after.get(k);
    if (t === undefined) throw new Error(`[${where}] the frozen backbone changed: '${k}' is gone after training`);
    const d = t.data as ArrayLike<number>;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) {
      const diff = Math.abs(d[i]! - a[i]!);
      if (diff > maxDiff || (Number.isNaN(d[i]!) !== Number.isNaN(a[i]!))) maxDiff = Math.max(maxDiff, Number.isNaN(diff) ? Infinity : diff);
    }
    if (maxDiff > 0) throw new Error(`[${where}] the frozen backbone changed during training: '${k}' moved by up to ${maxDiff} (it must stay bit-identical)`);
  }
  return before.size;
}

export type LinearEpoch = SupervisedEpoch;

export interface LinearResult {
  recipe: LinearRecipe;
  lr: number;
  history: LinearEpoch[];
  top1: number;
  top5: number;
  /** backbone tensors verified bit-identical after training */
  backboneTensorsChecked: number;
  head: Layer;
}

/** An evaluation pass's batches: a DataLoader (its dataset and shard size are read on several ranks), or features. */
export type EvalSource = BatchSource & { readonly dataset: { readonly length: number }; readonly samplesPerEpoch: number };

export interface LinearProbeInput {
  backbone: Module;
  /** pooled features of the frozen backbone [N, D] */
  features: (x: Tensor) => Tensor;
  dim: number;
  classes: number;
  train: BatchSource;
  val: EvalSource;
  recipe: LinearRecipe;
  seed: number;
  onEpoch?: (e: LinearEpoch) => void;
  onStep?: (info: { epoch: number; step: number; iters: number; loss: number }) => void;
  /** progress of each epoch's feature passes (training, then evaluation), batch by batch */
  onProgress?: OnProgress;
  /**
   * Data parallel over these ranks (default: the process group in use): train and val hold this rank's shards, the
   * recipe's batchSize is the global batch, and the head trains under DDP as in the official main_lincls.py and
   * main_linprobe.py. MAE's head BatchNorm stays a plain BatchNorm, as there: per-rank batch statistics, running
   * statistics broadcast from rank 0 before every forward.
   */
  comm?: Comm;
}

/**
 * Top-1 / top-5 of backbone + head over a loader (eval mode, no graph). Data parallel (comm with more than one
 * rank): the loader holds this rank's shard without dropLast, the wrap-around padding at its end is not counted, and
 * the hit counts are summed over ranks, so the accuracy is exactly the one-process accuracy (MAE's --dist_eval
 * counts the padding twice; this does not).
 */
export async function evaluateHead(features: (x: Tensor) => Tensor, head: Layer, loader: EvalSource,
  onBatch?: (done: number, total: number) => void, comm: Comm = currentComm()): Promise<{ top1: number; top5: number }> {
  head.eval();
  const real = comm.size === 1 ? Infinity : realShardSize(loader.dataset.length, comm);
  if (comm.size > 1 && loader.samplesPerEpoch !== Math.ceil(loader.dataset.length / comm.size)) {
    throw new Error(`[evaluate] on ${comm.size} ranks the evaluation loader must hold this rank's shard without dropLast (${Math.ceil(loader.dataset.length / comm.size)} samples), got ${loader.samplesPerEpoch}`);
  }
  let batches = 0;
  // integer counts: summed over ranks they give exactly the one-process accuracy
  let hit1 = 0;
  let hit5 = 0;
  let n = 0;
  for await (const b of loader.epoch(0)) {
    const keep = Math.min(b.labels.length, real - n); // the padding sits at the end of the shard
    if (keep > 0) {
      T.noGrad(() => T.tidy(() => {
        let logits = head.forward(features(T.tensor(b.images, b.shape))); // [N, classes]
        if (keep < b.labels.length) logits = T.slice(logits, 0, 0, keep); // [keep, classes]
        const y = T.tensor(b.labels.subarray(0, keep), [keep], { dtype: 'int32' });
        hit1 += Math.round(T.accuracy(logits, y, 1) * keep);
        hit5 += Math.round(T.accuracy(logits, y, 5) * keep);
        n += keep;
      }));
    }
    onBatch?.(++batches, loader.length);
  }
  const counts = Float64Array.of(hit1, hit5, n);
  comm.allreduce(counts);
  const [h1, h5, total] = counts;
  return { top1: total === 0 ? 0 : h1! / total!, top5: total === 0 ? 0 : h5! / total! };
}

/** Trains a linear head on the frozen backbone's features; throws if the backbone changed. */
export async function linearProbe(o: LinearProbeInput): Promise<LinearResult> {
  const r = o.recipe;
  const rng = new T.Rng(o.seed);
  const head = linearHead(o.dim, o.classes, r.bnHead, rng);
  const comm = o.comm ?? currentComm();
  // starts from rank 0's head (the DDP constructor broadcasts it)
  const ddp = comm.size > 1 ? new DistributedDataParallel(head, comm) : null;
  o.backbone.eval();
  o.backbone.requiresGrad_(false);
  const before = snapshotState(o.backbone);
  const lr = r.scaleLr ? (r.lr * r.batchSize) / 256 : r.lr;
  const params = head.parameters().filter((p) => p.requiresGrad);
  const opt = r.optimizer === 'sgd'
    ? new SGD(params, { lr, momentum: r.momentum, weightDecay: r.weightDecay })
    : r.optimizer === 'larc'
      ? new LARC(params, { lr, momentum: r.momentum, weightDecay: r.weightDecay, trustCoefficient: 0.001, clip: false })
      : new LARS(params, { lr, momentum: r.momentum, weightDecay: r.weightDecay });
  const schedule: LrSchedule = r.schedule === 'step'
    ? { kind: 'step', lr, milestones: r.milestones.map((f) => Math.round(f * r.epochs)) }
    : r.schedule === 'cosine' ? { kind: 'cosine', lr, epochs: r.epochs }
      : { kind: 'warmupCosine', lr, minLr: 0, warmupEpochs: r.warmupEpochs, epochs: r.epochs };
  const history = await trainSupervised({
    where: 'linear', hint: 'lower --lr', epochs: r.epochs, train: o.train, optimizer: opt,
    // MAE adjusts per iteration; MoCo and SimSiam per epoch
    lrAt: (epoch, step, iters) => adjustLearningRate(opt, schedule, r.schedule === 'warmupCosine' ? epoch + step / iters : epoch),
    loss: (b) => {
      const { x, labels } = batchTensors(b);
      const feats = T.noGrad(() => o.features(x)); // [N, D] no graph into the backbone
      return T.crossEntropy(head.forward(feats), labels); // logits [N, classes]
    },
    trainMode: () => head.train(),
    evaluate: (onBatch) => evaluateHead(o.features, head, o.val, onBatch, comm),
    onStep: o.onStep, onEpoch: o.onEpoch, onProgress: o.onProgress, ddp,
  });
  const checked = assertUnchanged(before, o.backbone);
  const last = history[history.length - 1]!;
  return { recipe: r, lr, history, top1: last.top1, top5: last.top5, backboneTensorsChecked: checked, head };
}

/**
 * The frozen backbone's features of every image a loader yields, once, in its order (eval mode, no graph): the
 * input of a probe on precomputed features. features [N, D] row-major, labels [N].
 */
export async function extractFeatures(features: (x: Tensor) => Tensor, loader: DataLoader,
  onBatch?: (done: number, total: number) => void): Promise<{ feats: Float32Array; labels: Int32Array; dim: number }> {
  const n = loader.samplesPerEpoch;
  const labels = new Int32Array(n);
  let feats = new Float32Array(0);
  let dim = 0;
  let at = 0;
  await forEachFeatureBatch(loader, features, (f, _x, b) => {
    if (dim === 0) {
      dim = f.shape[1]!;
      feats = new Float32Array(n * dim);
    }
    feats.set(f.data, at * dim);
    labels.set(b.labels, at);
    at += b.labels.length;
  }, onBatch);
  if (at !== n) throw new Error(`[linear] the feature pass yielded ${at} images, expected ${n}`);
  return { feats, labels, dim };
}

/**
 * Batches of precomputed features, read as a loader's batches are: each batch's `images` holds [B, D] features
 * (shape [B, D, 1, 1]), shuffled per epoch with the DataLoader's seeded permutation when `shuffle`, the last batch
 * kept whole. The probe's `features` is then a reshape to [B, D] (see `flatFeatures`).
 */
export class FeatureBatches implements EvalSource {
  readonly dataset: { readonly length: number };
  readonly samplesPerEpoch: number;
  readonly length: number;
  constructor(private readonly feats: Float32Array, private readonly labels: Int32Array, readonly dim: number,
    readonly batchSize: number, readonly shuffle: boolean, readonly seed = 0) {
    const n = labels.length;
    if (feats.length !== n * dim) throw new Error(`[linear] ${feats.length} feature values do not make ${n} rows of ${dim}`);
    this.dataset = { length: n };
    this.samplesPerEpoch = n;
    this.length = Math.ceil(n / batchSize);
  }

  async *epoch(epoch = 0): AsyncGenerator<Batch, void, undefined> {
    const n = this.labels.length;
    const order = epochOrder(n, this.shuffle, this.seed, epoch);
    const d = this.dim;
    for (let s = 0; s < n; s += this.batchSize) {
      const idx = order.subarray(s, Math.min(n, s + this.batchSize));
      const images = new Float32Array(idx.length * d);
      const labels = new Int32Array(idx.length);
      for (let i = 0; i < idx.length; i++) {
        images.set(this.feats.subarray(idx[i]! * d, idx[i]! * d + d), i * d);
        labels[i] = this.labels[idx[i]!]!;
      }
      yield { images, shape: [idx.length, d, 1, 1], labels, indices: Int32Array.from(idx), views: [images] };
    }
  }
}

/** The probe's `features` over FeatureBatches: [B, D, 1, 1] -> [B, D]. */
export const flatFeatures = (x: Tensor): Tensor => T.reshape(x, [x.shape[0]!, x.shape[1]!]);
