// `selfsup linear`: linear classification on a run's frozen backbone with the recipe of its method (MoCo: SGD lr 30,
// steps at 60/80%; SimSiam: LARS lr 0.1 x batch/256, cosine; MAE: BN + Linear on the cls token, LARS, warmup + cosine).
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataLoader } from '../data/loader.js';
import { evalTransform } from '../data/open.js';
import { serializeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { OnProgress } from '../io/progress.js';
import { progressBar } from './progress.js';
import { markdownCode, summaryWriter } from '../io/tensorboard.js';
import { logEpochScalars } from '../eval/supervised.js';
import { extractFeatures, FeatureBatches, flatFeatures, linearProbe, type EvalSource, type LinearResult } from '../eval/linear.js';
import type { BatchSource } from '../eval/supervised.js';
import { methodSpec } from '../methods/registry.js';
import { comm as currentComm, type Comm } from '../dist/comm.js';
import { checkSameConfig, perRankBatch } from '../dist/run.js';
import { runDistributed } from '../dist/launch.js';
import { linclsTrainTransform, loadPretrained, openLabelledPair, positiveInt, finiteNumber } from '../eval/pretrained.js';

export interface LinearCommandOptions {
  checkpoint: string;
  data?: string;
  testData?: string;
  /** default: the run's method */
  /** the method whose official recipe to follow (default: the run's method) */
  recipe?: string;
  epochs?: number;
  batchSize?: number;
  /** base lr (before the batch/256 scaling of the LARS recipes) */
  lr?: number;
  limit: number | null;
  testLimit: number | null;
  workers: number;
  seed: number;
  /** folder for linear.json and head.safetensors */
  out?: string;
  /**
   * Extract every image's features once with the evaluation transform (no training augmentation) and train the head
   * on them in memory: CLIP's linear-probe protocol, seconds per epoch instead of a backbone pass. One process only.
   */
  precomputed?: boolean;
  log?: (line: string) => void;
  /** progress of each epoch's training and evaluation passes */
  onProgress?: OnProgress;
  /** data parallel over these ranks (default: the process group in use); rank 0 alone logs and writes */
  comm?: Comm;
}

export async function runLinear(o: LinearCommandOptions): Promise<LinearResult & { method: string; classes: number; train: number; test: number; precomputed: boolean }> {
  const p = loadPretrained(o.checkpoint, 'linear');
  try {
    const recipe = methodSpec(o.recipe ?? p.cfg.method, 'linear').linearRecipe(p.cfg);
    if (o.epochs !== undefined) {
      recipe.warmupEpochs = Math.round((recipe.warmupEpochs * o.epochs) / recipe.epochs);
      recipe.epochs = o.epochs;
    }
    if (o.batchSize !== undefined) recipe.batchSize = o.batchSize;
    if (o.lr !== undefined) recipe.lr = o.lr;
    const trainSpec = o.data ?? p.cfg.data;
    const testSpec = o.testData ?? (o.data !== undefined ? o.data : (p.cfg.testData ?? p.cfg.data));
    const comm = o.comm ?? currentComm();
    const lead = comm.rank === 0;
    checkSameConfig({ checkpoint: resolve(o.checkpoint), trainSpec, testSpec, recipe, limit: o.limit, testLimit: o.testLimit, seed: o.seed, out: o.out ?? null }, comm, 'linear');
    const rankBatch = perRankBatch(recipe.batchSize, comm, 'linear');
    const pair = openLabelledPair('linear', trainSpec, testSpec, o.limit, o.testLimit);
    const { module: backbone, features, dim, owned } = p.model.frozenBackbone();
    // data parallel: DistributedSampler's shards (padded by wrapping around, as main_lincls.py's), a global batch
    const shard = comm.size > 1 ? { shard: { rank: comm.rank, worldSize: comm.size } } : {};
    const evalSpec = evalTransform(p.cfg.augment, p.cfg.imgSize);
    const val = new DataLoader(pair.test, { batchSize: Math.min(256, rankBatch), transform: evalSpec, shuffle: false, dropLast: false, seed: 0, numWorkers: o.workers, ...shard });
    const precomputed = o.precomputed === true;
    let train: BatchSource;
    let probeVal: EvalSource = val;
    let probeFeatures = features;
    if (precomputed) {
      if (comm.size > 1) throw new Error('[linear] --precomputed runs in one process (drop --nproc): the features fit in memory and the head trains in seconds');
      const pass = new DataLoader(pair.train, { batchSize: 256, transform: evalSpec, shuffle: false, dropLast: false, seed: 0, numWorkers: o.workers });
      const on = o.onProgress ?? (() => {});
      try {
        const tr = await extractFeatures(features, pass, (d, t) => on('features: training images', d, t));
        const te = await extractFeatures(features, val, (d, t) => on('features: test images', d, t));
        train = new FeatureBatches(tr.feats, tr.labels, tr.dim, rankBatch, true, o.seed);
        probeVal = new FeatureBatches(te.feats, te.labels, te.dim, 256, false);
      } finally {
        await pass.close();
      }
      probeFeatures = flatFeatures;
    } else {
      train = new DataLoader(pair.train, { batchSize: rankBatch, transform: linclsTrainTransform(p.cfg), shuffle: true, dropLast: false, seed: o.seed, numWorkers: o.workers, ...shard });
    }
    let r: LinearResult;
    const tb = summaryWriter(o.out !== undefined && lead ? join(o.out, 'tb') : null);
    tb.addText('config', markdownCode(JSON.stringify({ checkpoint: resolve(o.checkpoint), data: trainSpec, testData: testSpec, seed: o.seed, recipe }, null, 2)), 0);
    try {
      r = await linearProbe({
        backbone, features: probeFeatures, dim, classes: pair.classes.length, train, val: probeVal, recipe, seed: o.seed, comm,
        ...(o.onProgress !== undefined && lead ? { onProgress: o.onProgress } : {}),
        onEpoch: (e) => {
          logEpochScalars(tb, e);
          if (lead) o.log?.(`[linear] epoch ${e.epoch}/${recipe.epochs}: loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} top-1 ${(100 * e.top1).toFixed(2)}% top-5 ${(100 * e.top5).toFixed(2)}% (${e.seconds.toFixed(1)} s)`);
        },
      });
    } finally {
      tb.close();
      if (train instanceof DataLoader) await train.close();
      await val.close();
    }
    const result = { ...r, method: p.cfg.method, classes: pair.classes.length, train: pair.train.length, test: pair.test.length, precomputed };
    if (o.out !== undefined && lead) {
      const head = serializeSafetensors(new Map(r.head.stateDict()), { format: 'selfsup-linear-head', recipe: recipe.name, checkpoint: resolve(o.checkpoint), classes: JSON.stringify(pair.classes) });
      const { head: _h, ...json } = result;
      mkdirSync(o.out, { recursive: true });
      writeFileAtomic(join(o.out, 'head.safetensors'), head);
      writeFileAtomic(join(o.out, 'linear.json'), `${JSON.stringify(json, null, 2)}\n`);
    }
    if (owned) backbone.dispose();
    return result;
  } finally {
    p.model.dispose();
  }
}

export function registerLinear(program: Command): void {
  program
    .command('linear')
    .description("linear classification on the frozen backbone (backbone in eval mode, only the head trains), with the method's official recipe")
    .requiredOption('--checkpoint <dir>', "run folder written by 'selfsup pretrain'")
    .option('--data <path>', "labelled training images (default: the run's data)")
    .option('--test-data <path>', 'labelled test images (default: the test split of --data)')
    .option('--recipe <name>', "moco (SGD lr 30, steps 60/80%), simsiam (LARS, lr 0.1 x batch/256, cosine), mae (BN + Linear, LARS, warmup + cosine); default: the run's method")
    .option('--epochs <n>', 'epochs (default: the recipe: 100 moco, 90 simsiam and mae); step milestones and warmup scale with it', positiveInt('linear', 'epochs'))
    .option('--batch-size <n>', 'images per step (default: the recipe)', positiveInt('linear', 'batch-size'))
    .option('--lr <x>', 'base lr (default: the recipe)', finiteNumber('linear', 'lr'))
    .option('--limit <n>', 'use only N training images (evenly strided)', positiveInt('linear', 'limit'))
    .option('--test-limit <n>', 'use only N test images', positiveInt('linear', 'test-limit'))
    .option('--workers <n>', 'data loader threads', (v: string) => Number.parseInt(v, 10), 2)
    .option('--seed <n>', 'random seed', (v: string) => Number.parseInt(v, 10), 0)
    .option('--out <dir>', 'write linear.json (history, accuracy) and head.safetensors here')
    .option('--precomputed', 'extract the features once with the evaluation transform (no augmentation) and train the head on them in memory (CLIP\'s protocol; seconds per epoch)')
    .option('--nproc <n>', 'data parallel on this machine: launch n ranks with mpirun (the batch size stays global; see docs/distributed.md)', positiveInt('linear', 'nproc'))
    .option('--threads <n>', 'with --nproc: compute threads per rank (default: cores / n)', positiveInt('linear', 'threads'))
    .action((f: { checkpoint: string; data?: string; testData?: string; recipe?: string; epochs?: number; batchSize?: number; lr?: number; limit?: number; testLimit?: number; workers: number; seed: number; out?: string; precomputed?: boolean; nproc?: number; threads?: number }) => runDistributed('linear', f, async (comm) => {
      const lead = comm.rank === 0;
      const bar = progressBar('linear', lead && process.stderr.isTTY === true);
      const r = await runLinear({
        onProgress: bar.update, comm,
        checkpoint: f.checkpoint, limit: f.limit ?? null, testLimit: f.testLimit ?? null, workers: f.workers, seed: f.seed,
        log: (s) => { bar.stop(); process.stdout.write(`${s}\n`); },
        ...(f.data !== undefined ? { data: f.data } : {}), ...(f.testData !== undefined ? { testData: f.testData } : {}),
        ...(f.recipe !== undefined ? { recipe: f.recipe } : {}), ...(f.epochs !== undefined ? { epochs: f.epochs } : {}),
        ...(f.batchSize !== undefined ? { batchSize: f.batchSize } : {}), ...(f.lr !== undefined ? { lr: f.lr } : {}),
        ...(f.out !== undefined ? { out: resolve(f.out) } : {}), ...(f.precomputed === true ? { precomputed: true } : {}),
      });
      if (!lead) return;
      process.stdout.write(`[linear] ${r.method} backbone, ${r.recipe.name} recipe (${r.recipe.optimizer}, lr ${r.lr}, batch ${r.recipe.batchSize}${comm.size > 1 ? ` over ${comm.size} ranks` : ''}, ${r.recipe.epochs} epochs${r.precomputed ? ', precomputed features' : ''}): `
        + `top-1 ${(100 * r.top1).toFixed(2)}% top-5 ${(100 * r.top5).toFixed(2)}% on ${r.test} test images; backbone unchanged (${r.backboneTensorsChecked} tensors checked)\n`);
    }));
}
