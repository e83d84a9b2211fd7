// Small configs and inputs shared by the data-parallel tests and their mpirun children.
import { presetConfig, type MethodName, type PretrainConfig } from '../../src/train/config.js';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { join } from 'node:path';
import type { LinearCommandOptions } from '../../src/cli/linear.js';
import type { FinetuneCommandOptions } from '../../src/cli/finetune.js';

/** 3 steps of the global batch 16 on Fashion-MNIST, no monitor, a log line per step. */
export function tinyConfig(method: MethodName, out: string): PretrainConfig {
  const c = presetConfig(method, 'quick');
  return {
    ...c, out, epochs: 1, arch: method === 'mae' ? 'vit-d32-depth1-heads2-patch4' : c.arch, batchSize: 16, limit: 48, workers: 0, width: 0.125, ckptEverySteps: 0, logEvery: 1,
    knn: { ...c.knn, disabled: true },
    optim: { ...c.optim, warmupEpochs: 0 },
    // the MLP head the MoCo equivalence test was validated with, whatever head the quick preset picks
    moco: { ...c.moco, K: 64, bnSplits: 1, mlp: true },
    simsiam: { ...c.simsiam, dim: 32, predDim: 8 },
    mae: { ...c.mae, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2 },
    mocov3: { ...c.mocov3, dim: 16, mlpDim: 32 },
  };
}

export const MOCO_STEPS = 3;
export const MOCO_BATCH = 8;

/** The global batches of the MoCo test: two views [8, 3, 16, 16] per step, drawn from a fixed seed. */
export function mocoBatches(): Tensor[][] {
  const rng = new T.Rng(99);
  return Array.from({ length: MOCO_STEPS }, () => [T.keep(T.randn([MOCO_BATCH, 3, 16, 16], { rng })), T.keep(T.randn([MOCO_BATCH, 3, 16, 16], { rng }))]);
}

/**
 * The key shuffles of the MoCo test, as the 2 ranks see them: permutations of the gathered global batch (rank 0's
 * rows, then rank 1's). Rank r holds rows r, r + 2, ... of the global batch, as DistributedSampler gives it, which
 * are also split r of the CIFAR demo's SplitBatchNorm (it splits interleaved).
 */
export function mocoShuffles(): Int32Array[] {
  const rng = new T.Rng(123);
  return Array.from({ length: MOCO_STEPS }, () => rng.randperm(MOCO_BATCH));
}

/** Row i of the gathered batch (rank-major) is this row of the global batch. */
export function gatheredToGlobal(i: number, ranks = 2): number {
  const perRank = MOCO_BATCH / ranks;
  return (i % perRank) * ranks + Math.floor(i / perRank);
}

/** The evaluation commands the 2-rank test runs: the LARC and the BN-headed linear recipes, and MAE fine-tuning. */
export const EVAL_JOBS = [
  { name: 'linear-simsiam', command: 'linear', method: 'simsiam' },
  { name: 'linear-mae', command: 'linear', method: 'mae' },
  { name: 'finetune-mae', command: 'finetune', method: 'mae' },
] as const;
export type EvalJob = (typeof EVAL_JOBS)[number];

/**
 * The options of one job on the tiny run root/<method>: 12 training images (6 per rank), a global batch of 4, 2 epochs
 * (6 steps); 15 test images, which 2 ranks split 8 + 7 with one padded sample. Fine-tuning without Mixup and drop
 * path, whose draws are per rank in the official code.
 */
export function linearJobArgs(job: EvalJob, root: string, data: string, out: string): LinearCommandOptions {
  return { checkpoint: join(root, job.method), data, limit: 12, testLimit: null, workers: 0, seed: 0, out, epochs: 2, batchSize: 4 };
}

export function finetuneJobArgs(job: EvalJob, root: string, data: string, out: string): FinetuneCommandOptions {
  return {
    checkpoint: join(root, job.method), data, limit: 12, testLimit: null, workers: 0, seed: 0, out,
    recipe: { epochs: 2, warmupEpochs: 1, batchSize: 4, mixup: 0, cutmix: 0, dropPath: 0 },
  };
}
