// The supervised epoch loop shared by linear probing and fine-tuning: per-step lr, one tidy forward/backward/step
// per batch, a stop on a non-finite loss, then an evaluation per epoch. Also the batch as tensors. Data parallel
// as the official main_lincls.py / main_linprobe.py / main_finetune.py run under DDP: every rank trains on its shard,
// gradients are averaged by DistributedDataParallel, and the epoch's loss is the mean over ranks.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Batch } from '../data/loader.js';
import type { DistributedDataParallel } from '../dist/ddp.js';
import { allreduceMean } from '../dist/collectives.js';
import type { ScalarLogger } from '../io/tensorboard.js';
import type { OnProgress } from '../io/progress.js';

export interface SupervisedEpoch { epoch: number; loss: number; lr: number; top1: number; top5: number; seconds: number }

/** What the loop reads batches from: a DataLoader, or the in-memory features of a precomputed probe. */
export interface BatchSource {
  /** batches per epoch */
  readonly length: number;
  epoch(epoch: number): AsyncIterable<Batch>;
}

export interface SupervisedLoop {
  /** names the command in errors: 'linear', 'finetune' */
  where: string;
  /** what to tell the user when the loss stops being finite ("lower --lr") */
  hint: string;
  epochs: number;
  train: BatchSource;
  optimizer: { zeroGrad(): void; step(): void };
  /** sets and returns the lr of this step (epoch, step within it, steps per epoch) */
  lrAt(epoch: number, step: number, iters: number): number;
  /** the batch loss, with its graph */
  loss(batch: Batch): Tensor;
  /** puts the trained modules in training mode before an epoch */
  trainMode(): void;
  /** top-1 / top-5 after an epoch; `onBatch` reports the pass's progress */
  evaluate(onBatch?: (done: number, total: number) => void): Promise<{ top1: number; top5: number }>;
  onStep?: ((info: { epoch: number; step: number; iters: number; loss: number }) => void) | undefined;
  onEpoch?: ((e: SupervisedEpoch) => void) | undefined;
  /** progress of each epoch's training pass and evaluation pass */
  onProgress?: OnProgress | undefined;
  /** data parallel: the trained module under DDP, whose gradients are averaged over ranks (absent: one process) */
  ddp?: DistributedDataParallel | null | undefined;
}

/** A batch's images [N, C, H, W] and int32 labels [N] as tensors (inside the caller's tidy scope). */
export function batchTensors(b: Batch): { x: Tensor; labels: Tensor } {
  return { x: T.tensor(b.images, b.shape), labels: T.tensor(b.labels, [b.labels.length], { dtype: 'int32' }) };
}

export async function trainSupervised(o: SupervisedLoop): Promise<SupervisedEpoch[]> {
  const iters = o.train.length;
  if (iters === 0) throw new Error(`[${o.where}] the training set is smaller than one batch`);
  const history: SupervisedEpoch[] = [];
  const ddp = o.ddp ?? null;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const t0 = performance.now();
    o.trainMode();
    let sum = 0;
    let step = 0;
    let lr = 0;
    for await (const b of o.train.epoch(epoch)) {
      lr = o.lrAt(epoch, step, iters);
      const loss = T.tidy(() => {
        ddp?.beforeForward();
        const l = o.loss(b);
        const v = l.item();
        if (!Number.isFinite(v)) throw new Error(`[${o.where}] loss is ${v} at epoch ${epoch + 1}; stopping (${o.hint})`);
        o.optimizer.zeroGrad();
        if (ddp === null) l.backward();
        else {
          l.backward(undefined, { onLeafGrad: ddp.onLeafGrad });
          ddp.finishBackward();
        }
        o.optimizer.step();
        return v;
      });
      sum += loss;
      step++;
      o.onStep?.({ epoch, step, iters, loss });
      o.onProgress?.(`epoch ${epoch + 1}/${o.epochs}: training`, step, iters);
    }
    const acc = await o.evaluate((done, total) => o.onProgress?.(`epoch ${epoch + 1}/${o.epochs}: evaluation`, done, total));
    // every rank trained on as many batches: the mean of the ranks' means is the mean over the global batches
    const [meanLoss] = ddp === null ? [sum / Math.max(1, step)] : allreduceMean([sum / Math.max(1, step)], ddp.comm);
    const e: SupervisedEpoch = { epoch: epoch + 1, loss: meanLoss!, lr, ...acc, seconds: (performance.now() - t0) / 1000 };
    history.push(e);
    o.onEpoch?.(e);
  }
  return history;
}

/** An epoch's TensorBoard scalars, at step = epoch as MAE's main_linprobe.py and main_finetune.py log test accuracy. */
export function logEpochScalars(tb: ScalarLogger, e: SupervisedEpoch): void {
  tb.addScalars({ 'train/loss': e.loss, 'train/lr': e.lr, 'test/top1': e.top1, 'test/top5': e.top5 }, e.epoch);
}
