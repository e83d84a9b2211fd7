// `selfsup finetune`: end-to-end fine-tuning of an MAE run's encoder with MAE's recipe (layer-wise lr decay, drop
// path, label smoothing, warmup + cosine, AdamW, global pooling); writes the fine-tuned ViT (timm names) and a JSON log.
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as T from '../tensor/index.js';
import { DataLoader } from '../data/loader.js';
import { evalTransform } from '../data/open.js';
import type { MaskedAutoencoderViT } from '../methods/mae.js';
import { serializeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { OnProgress } from '../io/progress.js';
import { progressBar } from './progress.js';
import { markdownCode, summaryWriter } from '../io/tensorboard.js';
import { logEpochScalars } from '../eval/supervised.js';
import { finetune, finetuneModel, finetuneRecipe, type FinetuneRecipe, type FinetuneResult } from '../eval/finetune.js';
import { comm as currentComm, type Comm } from '../dist/comm.js';
import { checkSameConfig, perRankBatch } from '../dist/run.js';
import { runDistributed } from '../dist/launch.js';
import { finetuneTrainTransform, loadPretrained, openLabelledPair, positiveInt, finiteNumber } from '../eval/pretrained.js';

export interface FinetuneCommandOptions {
  checkpoint: string;
  data?: string;
  testData?: string;
  recipe?: Partial<FinetuneRecipe>;
  limit: number | null;
  testLimit: number | null;
  workers: number;
  seed: number;
  out?: string;
  log?: (line: string) => void;
  /** progress of each epoch's training and evaluation passes */
  onProgress?: OnProgress;
  /** data parallel over these ranks (default: the process group in use); rank 0 alone logs and writes */
  comm?: Comm;
}

export async function runFinetune(o: FinetuneCommandOptions): Promise<FinetuneResult & { recipe: FinetuneRecipe; classes: number }> {
  const p = loadPretrained(o.checkpoint, 'finetune', ['mae']);
  try {
    const recipe = { ...finetuneRecipe(), ...o.recipe };
    if (o.recipe?.epochs !== undefined && o.recipe.warmupEpochs === undefined) recipe.warmupEpochs = Math.min(5, Math.floor(recipe.epochs / 2));
    if (!(recipe.layerDecay > 0 && recipe.layerDecay <= 1)) throw new Error(`[finetune] --layer-decay must be in (0, 1], got ${recipe.layerDecay}`);
    if (!(recipe.dropPath >= 0 && recipe.dropPath < 1)) throw new Error(`[finetune] --drop-path must be in [0, 1), got ${recipe.dropPath}`);
    const trainSpec = o.data ?? p.cfg.data;
    const testSpec = o.testData ?? (o.data !== undefined ? o.data : (p.cfg.testData ?? p.cfg.data));
    const comm = o.comm ?? currentComm();
    const lead = comm.rank === 0;
    checkSameConfig({ checkpoint: resolve(o.checkpoint), trainSpec, testSpec, recipe, limit: o.limit, testLimit: o.testLimit, seed: o.seed, out: o.out ?? null }, comm, 'finetune');
    const rankBatch = perRankBatch(recipe.batchSize, comm, 'finetune');
    const pair = openLabelledPair('finetune', trainSpec, testSpec, o.limit, o.testLimit);
    // seed + rank, as main_finetune.py seeds each rank (drop path differs per rank; DDP starts every rank from rank 0's weights)
    const vit = finetuneModel(p.model as MaskedAutoencoderViT, pair.classes.length, recipe, new T.Rng(o.seed + comm.rank));
    if (!(recipe.mixup >= 0 && recipe.cutmix >= 0)) throw new Error(`[finetune] --mixup and --cutmix must be >= 0, got ${recipe.mixup} and ${recipe.cutmix}`);
    if ((recipe.mixup > 0 || recipe.cutmix > 0) && rankBatch % 2 !== 0) {
      const what = comm.size > 1 ? `the batch on each rank (--batch-size ${recipe.batchSize} over ${comm.size} ranks)` : '--batch-size';
      throw new Error(`[finetune] Mixup/CutMix pair each image with the reversed batch: ${what} must be even, got ${rankBatch} (or --mixup 0 --cutmix 0)`);
    }
    // drop_last, as main_finetune's training loader: every batch is full (and even for Mixup); data parallel, each
    // rank its DistributedSampler shard of the epoch
    const train = new DataLoader(pair.train, {
      batchSize: rankBatch, transform: finetuneTrainTransform(p.cfg), shuffle: true, dropLast: true, seed: o.seed, numWorkers: o.workers,
      ...(comm.size > 1 ? { shard: { rank: comm.rank, worldSize: comm.size } } : {}),
    });
    // evaluation: each rank its shard without dropLast, the padding not counted (see evaluateHead)
    const val = new DataLoader(pair.test, {
      batchSize: Math.min(256, rankBatch), transform: evalTransform(p.cfg.augment, p.cfg.imgSize), shuffle: false, dropLast: false, seed: 0, numWorkers: o.workers,
      ...(comm.size > 1 ? { shard: { rank: comm.rank, worldSize: comm.size } } : {}),
    });
    const tb = summaryWriter(o.out !== undefined && lead ? join(o.out, 'tb') : null);
    tb.addText('config', markdownCode(JSON.stringify({ checkpoint: resolve(o.checkpoint), data: trainSpec, testData: testSpec, seed: o.seed, recipe }, null, 2)), 0);
    try {
      const r = await finetune(vit, train, val, recipe, (e) => {
        logEpochScalars(tb, e);
        if (lead) o.log?.(`[finetune] epoch ${e.epoch}/${recipe.epochs}: loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} top-1 ${(100 * e.top1).toFixed(2)}% top-5 ${(100 * e.top5).toFixed(2)}% (${e.seconds.toFixed(1)} s)`);
      }, o.seed, lead ? o.onProgress : undefined, comm);
      const result = { ...r, recipe, classes: pair.classes.length };
      if (o.out !== undefined && lead) {
        const weights = serializeSafetensors(new Map(vit.stateDict()), { format: 'selfsup-finetuned-vit', checkpoint: resolve(o.checkpoint), classes: JSON.stringify(pair.classes) });
        mkdirSync(o.out, { recursive: true });
        writeFileAtomic(join(o.out, 'model.safetensors'), weights);
        writeFileAtomic(join(o.out, 'finetune.json'), `${JSON.stringify(result, null, 2)}\n`);
      }
      return result;
    } finally {
      tb.close();
      await train.close();
      await val.close();
      vit.dispose();
    }
  } finally {
    p.model.dispose();
  }
}

export function registerFinetune(program: Command): void {
  const d = finetuneRecipe();
  program
    .command('finetune')
    .description("fine-tune an MAE run's encoder end to end with MAE's recipe (layer-wise lr decay, drop path, Mixup/CutMix, label smoothing, AdamW, warmup + cosine, global pooling)")
    .requiredOption('--checkpoint <dir>', "an MAE run folder written by 'selfsup pretrain --method mae'")
    .option('--data <path>', "labelled training images (default: the run's data)")
    .option('--test-data <path>', 'labelled test images (default: the test split of --data)')
    .option('--epochs <n>', `epochs (default ${d.epochs})`, positiveInt('finetune', 'epochs'))
    .option('--warmup-epochs <n>', `warmup epochs (default ${d.warmupEpochs}, at most half of --epochs)`, finiteNumber('finetune', 'warmup-epochs'))
    .option('--batch-size <n>', `images per step (default ${d.batchSize})`, positiveInt('finetune', 'batch-size'))
    .option('--blr <x>', `base lr: lr = blr * batch / 256 (default ${d.blr})`, finiteNumber('finetune', 'blr'))
    .option('--layer-decay <x>', `layer-wise lr decay (default ${d.layerDecay})`, finiteNumber('finetune', 'layer-decay'))
    .option('--weight-decay <x>', `AdamW weight decay (default ${d.weightDecay})`, finiteNumber('finetune', 'weight-decay'))
    .option('--drop-path <x>', `stochastic depth rate (default ${d.dropPath})`, finiteNumber('finetune', 'drop-path'))
    .option('--smoothing <x>', `label smoothing (default ${d.labelSmoothing})`, finiteNumber('finetune', 'smoothing'))
    .option('--mixup <x>', `Mixup Beta alpha, 0 disables (default ${d.mixup})`, finiteNumber('finetune', 'mixup'))
    .option('--cutmix <x>', `CutMix Beta alpha, 0 disables (default ${d.cutmix})`, finiteNumber('finetune', 'cutmix'))
    .option('--cls-token', 'classify the normed cls token instead of the global pool')
    .option('--limit <n>', 'use only N training images (evenly strided)', positiveInt('finetune', 'limit'))
    .option('--test-limit <n>', 'use only N test images', positiveInt('finetune', 'test-limit'))
    .option('--workers <n>', 'data loader threads', (v: string) => Number.parseInt(v, 10), 2)
    .option('--seed <n>', 'random seed', (v: string) => Number.parseInt(v, 10), 0)
    .option('--out <dir>', 'write model.safetensors (the fine-tuned ViT) and finetune.json here')
    .option('--nproc <n>', 'data parallel on this machine: launch n ranks with mpirun (the batch size stays global; see docs/distributed.md)', positiveInt('finetune', 'nproc'))
    .option('--threads <n>', 'with --nproc: compute threads per rank (default: cores / n)', positiveInt('finetune', 'threads'))
    .action((f: { checkpoint: string; data?: string; testData?: string; epochs?: number; warmupEpochs?: number; batchSize?: number; blr?: number; layerDecay?: number; weightDecay?: number; dropPath?: number; smoothing?: number; mixup?: number; cutmix?: number; clsToken?: boolean; limit?: number; testLimit?: number; workers: number; seed: number; out?: string; nproc?: number; threads?: number }) => runDistributed('finetune', f, async (comm) => {
      const recipe: Partial<FinetuneRecipe> = {};
      if (f.epochs !== undefined) recipe.epochs = f.epochs;
      if (f.warmupEpochs !== undefined) recipe.warmupEpochs = f.warmupEpochs;
      if (f.batchSize !== undefined) recipe.batchSize = f.batchSize;
      if (f.blr !== undefined) recipe.blr = f.blr;
      if (f.layerDecay !== undefined) recipe.layerDecay = f.layerDecay;
      if (f.weightDecay !== undefined) recipe.weightDecay = f.weightDecay;
      if (f.dropPath !== undefined) recipe.dropPath = f.dropPath;
      if (f.smoothing !== undefined) recipe.labelSmoothing = f.smoothing;
      if (f.mixup !== undefined) recipe.mixup = f.mixup;
      if (f.cutmix !== undefined) recipe.cutmix = f.cutmix;
      if (f.clsToken === true) recipe.globalPool = false;
      const lead = comm.rank === 0;
      const bar = progressBar('finetune', lead && process.stderr.isTTY === true);
      const r = await runFinetune({
        onProgress: bar.update, comm,
        checkpoint: f.checkpoint, recipe, limit: f.limit ?? null, testLimit: f.testLimit ?? null, workers: f.workers, seed: f.seed,
        log: (s) => { bar.stop(); process.stdout.write(`${s}\n`); },
        ...(f.data !== undefined ? { data: f.data } : {}), ...(f.testData !== undefined ? { testData: f.testData } : {}),
        ...(f.out !== undefined ? { out: resolve(f.out) } : {}),
      });
      if (!lead) return;
      process.stdout.write(`[finetune] ${r.recipe.epochs} epochs, lr ${r.lr.toExponential(2)}, layer decay ${r.recipe.layerDecay} over ${r.groups} groups${comm.size > 1 ? `, ${comm.size} ranks` : ''}: `
        + `top-1 ${(100 * r.top1).toFixed(2)}% top-5 ${(100 * r.top5).toFixed(2)}%\n`);
    }));
}
