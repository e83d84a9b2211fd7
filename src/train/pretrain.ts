// The pretraining engine behind `selfsup pretrain`: builds a method from a config, steps it over a DataLoader,
// logs (JSON lines, progress bar, PNG curves), monitors with kNN, checkpoints atomically and resumes exactly.
import { existsSync, mkdirSync, readFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { SGD, LARS, AdamW, adjustLearningRate, clipGradNorm, type LrSchedule } from '../optim/index.js';
import { DataLoader, type Batch } from '../data/loader.js';
import { preset as augmentationPreset } from '../data/presets.js';
import type { Dataset } from '../data/datasets.js';
import type { Method, TrainingProgress } from '../methods/method.js';
import { buildMethod } from '../methods/registry.js';
import { checkResumeConfig, checkTrainConfig, migrateConfig, type PretrainConfig, type TrainConfig } from './config.js';
import { openDataset, evalTransform } from '../data/open.js';
import { knnClassify } from '../eval/knn.js';
import { forEachFeatureBatch } from '../eval/features.js';
import { nativeImageSize, pixelKnnBaseline, type PixelBaseline } from '../eval/pixels.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeLineChart } from '../io/plot.js';
import { readLogChunk } from '../io/runs.js';
import { saveCheckpoint, loadCheckpoint, type TrainState } from './checkpoint.js';
import type { OnProgress } from '../io/progress.js';
import { summaryWriter, markdownCode, type ScalarLogger } from '../io/tensorboard.js';
import { augmentationGridPng, reconstructionMonitor } from '../eval/run-pictures.js';
import { comm as currentComm, type Comm } from '../dist/comm.js';
import { DistributedDataParallel } from '../dist/ddp.js';
import { allreduceMean } from '../dist/collectives.js';
import { checkSameConfig, gatherSharded, perRankBatch, realShardSize } from '../dist/run.js';
import type { StepContext } from '../methods/method.js';
import { formatProfile, profile, profilerEnabled } from '../tensor/profiler.js';

/** The step (counted from the start of this process's run) that SELFSUP_PROFILE / --profile prints a table for. */
const PROFILED_STEP = 3;

export type KnnFeature = TrainConfig['knn']['feature'];

/**
 * Features for the kNN monitor, L2-normalised: 'backbone' reads the method's backbone features (before any
 * projection head); 'head' the encoder's output with its head, as the MoCo CIFAR demo's F.normalize(encoder_q(x)).
 */
export function monitorFeatures(model: Method, x: Tensor, feature: KnnFeature = 'backbone'): Tensor {
  if (feature === 'head') {
    if (model.headFeatures === undefined) throw new Error(`[knn] ${model.methodName} has no projection head; use knn.feature 'backbone'`);
    return T.l2Normalize(model.headFeatures(x), 1); // [N, dim]
  }
  return T.l2Normalize(model.features(x), 1); // [N, D]
}

/** The optimizer over the method's parameter groups, and its lr schedule. */
export function buildOptimizer(cfg: TrainConfig, model: Method): { opt: SGD | LARS | AdamW; schedule: LrSchedule; lr: number } {
  const o = cfg.optim;
  const lr = o.scaleLr ? (o.lr * cfg.batchSize) / 256 : o.lr;
  const groups = model.paramGroups(o.weightDecay);
  let opt: SGD | LARS | AdamW;
  switch (o.name) {
    case 'sgd': opt = new SGD(groups, { lr, momentum: o.momentum, weightDecay: o.weightDecay }); break;
    case 'lars': opt = new LARS(groups, { lr, momentum: o.momentum, weightDecay: o.weightDecay }); break;
    case 'adamw': opt = new AdamW(groups, { lr, betas: [o.beta1, o.beta2], weightDecay: o.weightDecay }); break;
    default: throw new Error(`[pretrain] unknown optimizer '${o.name}'; expected sgd, lars or adamw`);
  }
  let schedule: LrSchedule;
  switch (o.schedule) {
    case 'cosine': schedule = { kind: 'cosine', lr, epochs: cfg.epochs }; break;
    case 'warmupCosine': schedule = { kind: 'warmupCosine', lr, minLr: o.minLr, warmupEpochs: o.warmupEpochs, epochs: cfg.epochs }; break;
    case 'step': schedule = { kind: 'step', lr, milestones: o.milestones }; break;
    case 'constant': schedule = { kind: 'constant', lr }; break;
    default: throw new Error(`[pretrain] unknown schedule '${o.schedule}'; expected cosine, warmupCosine, step or constant`);
  }
  return { opt, schedule, lr };
}

export interface StepResult { loss: number; metrics: Record<string, number>; /** ms blocked on the gradient allreduce after backward */ commWaitMs: number }

export interface StepOptions {
  /** data-parallel gradient averaging (absent: one process) */
  ddp?: DistributedDataParallel | null;
  /**
   * where the batch's samples come from and where training is: per-sample randomness (MAE's masks), schedules inside
   * a method (MoCo v3's momentum), and test hooks
   */
  context?: StepContext;
}

/**
 * One optimisation step of the method on a batch of views. Throws (before any update) on a non-finite loss.
 * Under data parallelism the gradients are averaged over ranks, and the loss and metrics returned are rank means.
 */
export function trainStep(model: Method, opt: SGD | LARS | AdamW, views: readonly Tensor[], clipGrad: number, o: StepOptions = {}): StepResult {
  const ddp = o.ddp ?? null;
  return T.tidy(() => {
    ddp?.beforeForward();
    const { loss, metrics } = model.trainingStep(views, o.context);
    const value = loss.item();
    if (!Number.isFinite(value)) throw new NonFiniteLossError(value);
    opt.zeroGrad();
    // metrics are numbers by now: the activations can go as backward passes them
    if (ddp === null) loss.backward(undefined, { freeActivations: true });
    else loss.backward(undefined, { freeActivations: true, onLeafGrad: ddp.onLeafGrad });
    const commWaitMs = ddp?.finishBackward().waitMs ?? 0;
    if (clipGrad > 0) metrics.gradNorm = clipGradNorm(opt.paramGroups.flatMap((g) => g.params), clipGrad);
    opt.step();
    if (ddp === null || ddp.comm.size === 1) return { loss: value, metrics, commWaitMs };
    const keys = Object.keys(metrics).filter((k) => k !== 'gradNorm'); // gradNorm is of the averaged gradients already
    const means = allreduceMean([value, ...keys.map((k) => metrics[k]!)], ddp.comm);
    keys.forEach((k, i) => { metrics[k] = means[i + 1]!; });
    return { loss: means[0]!, metrics, commWaitMs };
  });
}

export class NonFiniteLossError extends Error {
  constructor(readonly value: number) {
    super(`[pretrain] loss is ${value}, stopping training (the last good checkpoint is kept)`);
  }
}

export interface KnnSummary { epoch: number; top1: number; top5: number; /** MAE: reconstruction loss on the held-out images */ testLoss?: number }

export interface PretrainCallbacks {
  /** called after every step */
  onStep?: (info: { epoch: number; step: number; iters: number; loss: number; lr: number; imgPerSec: number; metrics: Record<string, number> }) => void;
  onEpoch?: (info: { epoch: number; loss: number; knn: KnnSummary | null; seconds: number }) => void;
  log?: (line: string) => void;
  /** progress of the passes between epochs (the kNN monitor's feature extraction), batch by batch */
  onProgress?: OnProgress;
  /** test hook: called after a checkpoint is written (e.g. to kill the process there) */
  onCheckpoint?: (info: { epoch: number; step: number }) => void;
}

export interface PretrainResult {
  knnBefore: KnnSummary | null;
  knnAfter: KnnSummary | null;
  /** kNN on raw pixels under the monitor's protocol: what the learned features are measured against */
  pixelBaseline: PixelBaseline | null;
  epochs: number;
  /** epochs already done when this call began: 0 unless it resumed a run */
  firstEpoch: number;
  lastLoss: number;
  /** wall time of this call */
  seconds: number;
  /**
   * training time of the whole run, resumed parts included: the sum of the epochs' `trainSeconds` in log.jsonl (the
   * last record of each epoch), kNN passes excluded; null where this process does not write the log
   */
  trainSeconds: number | null;
  model: Method;
}

export interface PretrainOptions {
  resume?: boolean;
  callbacks?: PretrainCallbacks;
  /**
   * TensorBoard event files in out/tb, augs.png and MAE's recon/epoch-NNN.png (default true; false on the ranks that
   * do not write logs)
   */
  summaries?: boolean;
  /** the data-parallel group (default: the one initDistributed() joined, else a single process) */
  comm?: Comm;
  /** gradient bucket capacity in MB (PyTorch's bucket_cap_mb; default: defaultBucketCapMb in dist/ddp.ts) */
  bucketCapMb?: number | undefined;
}

/** TensorBoard tags of the step metrics trainStep returns. */
const METRIC_TAGS: Readonly<Record<string, string>> = { acc1: 'train/infonce_acc1', zStd: 'train/collapse_std', gradNorm: 'train/grad_norm' };

/** Runs (or resumes) a pretraining; resolves when cfg.epochs are done. */
export async function pretrain(cfg: PretrainConfig, opts: PretrainOptions = {}): Promise<PretrainResult> {
  // data parallel: every rank runs this; rank 0 alone logs, plots and checkpoints
  checkTrainConfig(cfg, 'pretrain');
  const dist = opts.comm ?? currentComm();
  const lead = dist.rank === 0;
  checkSameConfig(cfg, dist, 'pretrain');
  const rankBatch = perRankBatch(cfg.batchSize, dist, 'pretrain');
  const cb = lead ? opts.callbacks ?? {} : {};
  const log = lead ? cb.log ?? ((s: string) => { process.stdout.write(`${s}\n`); }) : () => undefined;
  if (lead) mkdirSync(cfg.out, { recursive: true });
  const rng = new T.Rng(cfg.seed);
  const model = buildMethod(cfg, rng);
  // as the official DDP code runs the method (SimSiam: SyncBatchNorm; MoCo: shuffling BN across ranks)
  if (dist.size > 1) model.distribute?.(dist);
  model.train();
  const { opt, schedule } = buildOptimizer(cfg, model);
  const train = openDataset(cfg.data, 'train', cfg.limit);
  const views = augmentationPreset(cfg.augment, { size: cfg.imgSize, ...(cfg.cropMin !== null ? { cropMin: cfg.cropMin } : {}) });
  const needViews = model.viewsPerSample;
  if (views.views.length < needViews) {
    throw new Error(`[pretrain] augmentation '${cfg.augment}' makes ${views.views.length} view(s); ${cfg.method} needs ${needViews}`);
  }
  const loader = new DataLoader(train, {
    batchSize: rankBatch, transform: views, shuffle: true, dropLast: true, seed: cfg.seed, numWorkers: cfg.workers,
    ...(dist.size > 1 ? { shard: { rank: dist.rank, worldSize: dist.size } } : {}),
  });
  const iters = loader.length;
  if (iters === 0) throw new Error(`[pretrain] ${train.length} images are fewer than one batch of ${cfg.batchSize}`);
  const logPath = join(cfg.out, 'log.jsonl');

  let state: TrainState = { epoch: 0, step: 0, rng: rng.getState(), knn: [], losses: [], knnBefore: null, worldSize: dist.size };
  if (opts.resume === true) {
    const saved = readRunConfig(cfg.out);
    // only epochs, the kNN monitor and logging may change; anything else is refused, naming the keys
    const changed = saved === null ? [] : checkResumeConfig(saved, cfg);
    const loaded = loadCheckpoint(cfg.out, model, opt);
    if (loaded !== null) {
      const ranks = loaded.worldSize ?? 1;
      if (ranks !== dist.size) {
        throw new Error(`[pretrain] --resume: the run in ${cfg.out} was trained on ${ranks} rank(s); resume it on ${ranks} (mpirun -np ${ranks} or --nproc ${ranks}), not ${dist.size}: MoCo's shuffled BN and the BN statistics depend on how the batch is split`);
      }
      state = loaded;
      rng.setState(state.rng);
      log(`[pretrain] resumed from ${cfg.out} at epoch ${state.epoch}, step ${state.step}`);
      if (changed.length > 0 && saved !== null) {
        const get = (o: unknown, k: string): unknown => k.split('.').reduce<unknown>((x, p) => (x as Record<string, unknown>)[p], o);
        const diff = Object.fromEntries(changed.map((k) => [k, { from: get(saved, k), to: get(cfg, k) }]));
        log(`[pretrain] resumed with changed ${changed.map((k) => `${k} ${JSON.stringify(diff[k]!.from)} -> ${JSON.stringify(diff[k]!.to)}`).join(', ')}`);
        appendFileSync(logPath, `${JSON.stringify({ event: 'resume', epoch: state.epoch, step: state.step, changed: diff })}\n`);
      }
    } else {
      log(`[pretrain] no checkpoint in ${cfg.out}; starting from scratch`);
    }
  }
  if (lead) writeFileAtomic(join(cfg.out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  // after any resume, so every rank continues from rank 0's weights exactly; MoCo's queue is the same on every rank
  const ddp = dist.size > 1 ? new DistributedDataParallel(model, dist, { skipBuffer: (n) => model.checkpointExtras.includes(n), bucketCapMb: opts.bucketCapMb }) : null;
  const summaries = lead && opts.summaries !== false;
  const tb: ScalarLogger = summaryWriter(summaries ? join(cfg.out, 'tb') : null);
  if (state.step > 0) tb.addSessionStart(state.step);
  tb.addText('config', markdownCode(JSON.stringify(cfg, null, 2)), state.step);
  if (summaries && state.step === 0) {
    const png = await augmentationGridPng(train, views, cfg.seed);
    writeFileAtomic(join(cfg.out, 'augs.png'), png);
    tb.addImage('augmentations', png, 0);
  }
  const recon = summaries ? await reconstructionMonitor(cfg, model) : null;
  const logReconstruction = async (epoch: number, step: number): Promise<void> => {
    if (recon === null) return;
    const png = await recon();
    mkdirSync(join(cfg.out, 'recon'), { recursive: true });
    writeFileAtomic(join(cfg.out, 'recon', `epoch-${String(epoch).padStart(3, '0')}.png`), png);
    tb.addImage('mae/reconstruction', png, step);
  };

  const knn = cfg.knn.disabled ? null : makeKnnMonitor(cfg, dist, cb.onProgress);
  const t0 = performance.now();
  if (knn !== null && state.epoch === 0 && state.step === 0 && state.knnBefore === null) {
    state.knnBefore = { epoch: 0, ...(await knn(model)) };
    log(`[pretrain] kNN before training: top-1 ${(100 * state.knnBefore.top1).toFixed(2)}%${state.knnBefore.testLoss !== undefined ? `, test reconstruction loss ${state.knnBefore.testLoss.toFixed(4)}` : ''}`);
    if (lead) appendFileSync(logPath, `${JSON.stringify({ event: 'knn', ...state.knnBefore })}\n`);
    tb.addScalars({ 'knn/top1': state.knnBefore.top1, 'knn/top5': state.knnBefore.top5, 'test/mae_loss': state.knnBefore.testLoss }, 0);
  }
  if (knn !== null && state.pixelBaseline == null) {
    const px = await pixelBaselineOf(cfg);
    state.pixelBaseline = px;
    log(`[pretrain] kNN on raw pixels at ${px.size} px (the baseline to beat): top-1 ${(100 * px.raw.top1).toFixed(2)}%, ` +
      `${(100 * px.centered.top1).toFixed(2)}% with the mean image subtracted`);
    if (lead) appendFileSync(logPath, `${JSON.stringify({ event: 'pixel_baseline', ...px })}\n`);
  }
  if (state.step === 0) await logReconstruction(0, 0);

  let lastLoss = NaN;
  let stepsThisRun = 0;
  const firstEpoch = state.epoch;
  try {
    for (let epoch = state.epoch; epoch < cfg.epochs; epoch++) {
      const te = performance.now();
      let sum = 0;
      let count = 0;
      let i = 0;
      const skip = epoch === state.epoch ? state.step - epoch * iters : 0;
      let tStep = performance.now();
      for await (const batch of loader.epoch(epoch)) {
        if (i < skip) { i++; continue; }
        const frac = schedule.kind === 'warmupCosine' ? epoch + i / iters : epoch;
        const lr = adjustLearningRate(opt, schedule, frac);
        const inputs = batchTensors(batch, needViews);
        let r: StepResult;
        try {
          // each sample's randomness (MAE's mask) comes from (seed, epoch, index), whichever rank holds it
          const context: StepContext = { samples: { seed: cfg.seed, epoch, indices: batch.indices }, progress: { epoch: epoch + i / iters, epochs: cfg.epochs } };
          const step = (): StepResult => trainStep(model, opt, inputs, cfg.optim.clipGrad, { ddp, context });
          // SELFSUP_PROFILE=1 / --profile: the per-kernel table of the run's third step (the first two warm up)
          if (profilerEnabled() && ++stepsThisRun === PROFILED_STEP) {
            const p = profile(step);
            r = p.result;
            log(formatProfile(p.report, `[pretrain] profile of step ${state.step + 1} (${cfg.method}, batch ${cfg.batchSize})`));
          } else {
            r = step();
          }
        } finally {
          for (const t of inputs) t.dispose();
        }
        lastLoss = r.loss;
        sum += r.loss;
        count++;
        i++;
        state.step = epoch * iters + i;
        const now = performance.now();
        const imgPerSec = (batch.labels.length * dist.size * 1000) / (now - tStep);
        tStep = now;
        cb.onStep?.({ epoch, step: i, iters, loss: r.loss, lr, imgPerSec, metrics: r.metrics });
        if (lead && (i % cfg.logEvery === 0 || i === iters)) {
          appendFileSync(logPath, `${JSON.stringify({ event: 'step', epoch, step: state.step, loss: r.loss, lr, imgPerSec: +imgPerSec.toFixed(1), ...r.metrics })}\n`);
          tb.addScalars({ 'train/loss': r.loss, 'train/lr': lr, 'train/img_per_sec': imgPerSec, ...Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [METRIC_TAGS[k] ?? `train/${k}`, v])) }, state.step);
        }
        if (cfg.ckptEverySteps > 0 && i % cfg.ckptEverySteps === 0 && i < iters) {
          state.epoch = epoch;
          state.rng = rng.getState();
          if (lead) saveCheckpoint(cfg.out, model, opt, state, cfg);
          cb.onCheckpoint?.({ epoch, step: state.step });
        }
      }
      const meanLoss = sum / Math.max(count, 1);
      state.losses.push({ epoch: epoch + 1, loss: meanLoss });
      state.epoch = epoch + 1;
      state.step = (epoch + 1) * iters;
      state.rng = rng.getState();
      // the epoch's training is committed before the monitor runs, so a failure there loses nothing
      if (lead) saveCheckpoint(cfg.out, model, opt, state, cfg);
      cb.onCheckpoint?.({ epoch: epoch + 1, step: state.step });
      const trainSeconds = (performance.now() - te) / 1000;
      let k: KnnSummary | null = null;
      if (knn !== null && (epoch + 1 === cfg.epochs || (cfg.knn.every > 0 && (epoch + 1) % cfg.knn.every === 0))) {
        k = { epoch: epoch + 1, ...(await knn(model)) };
        state.knn.push(k);
        if (lead) saveCheckpoint(cfg.out, model, opt, state, cfg);
      }
      const seconds = (performance.now() - te) / 1000;
      if (lead) appendFileSync(logPath, `${JSON.stringify({ event: 'epoch', epoch: epoch + 1, loss: meanLoss, seconds, trainSeconds, ...(k ? { knnTop1: k.top1, knnTop5: k.top5, ...(k.testLoss !== undefined ? { testLoss: k.testLoss } : {}) } : {}) })}\n`);
      tb.addScalars({ 'train/epoch_loss': meanLoss, 'knn/top1': k?.top1, 'knn/top5': k?.top5, 'test/mae_loss': k?.testLoss }, state.step);
      await logReconstruction(epoch + 1, state.step);
      cb.onEpoch?.({ epoch: epoch + 1, loss: meanLoss, knn: k, seconds });
      if (lead) await writeCurves(cfg.out, state);
    }
  } finally {
    await loader.close();
    tb.close();
  }
  const last = state.knn[state.knn.length - 1] ?? null;
  return { knnBefore: state.knnBefore, knnAfter: last, pixelBaseline: state.pixelBaseline ?? null, epochs: state.epoch, firstEpoch,
    lastLoss, seconds: (performance.now() - t0) / 1000, trainSeconds: lead ? runTrainSeconds(logPath) : null, model };
}

/**
 * The sum of the epochs' trainSeconds in a run's log.jsonl, each epoch counted once (its last record). Read with the
 * dashboard's reader, so a line a kill cut short (and the record glued to it on resume) is skipped, not fatal.
 */
export function runTrainSeconds(logPath: string): number {
  const perEpoch = new Map<number, number>();
  for (const e of readLogChunk(logPath).records) {
    if (e.event === 'epoch' && typeof e.epoch === 'number' && typeof e.trainSeconds === 'number') perEpoch.set(e.epoch, e.trainSeconds);
  }
  let total = 0;
  for (const v of perEpoch.values()) total += v;
  return total;
}

/** Batch arrays to tensors on the default device: one [N, C, H, W] tensor per view. */
function batchTensors(batch: Batch, nViews: number): Tensor[] {
  return batch.views.slice(0, nViews).map((v) => T.tensor(v, batch.shape));
}

/** The kNN monitor's fixed bank (training split) and query (test split) subsets. */
function monitorSets(cfg: TrainConfig): { bankSet: Dataset; testSet: Dataset } {
  return {
    bankSet: openDataset(cfg.data, 'train', cfg.knn.bankSize),
    testSet: openDataset(cfg.testData ?? cfg.data, 'test', cfg.knn.testSize),
  };
}

/**
 * The monitor's bank and test images (the same subsets makeKnnMonitor uses) as raw pixels, kNN'd the same way: at
 * the size the dataset stores them (28 px for Fashion-MNIST, even when the run trains at 20) where every image has
 * one, else at the run's imgSize.
 */
async function pixelBaselineOf(cfg: TrainConfig): Promise<PixelBaseline> {
  const { bankSet, testSet } = monitorSets(cfg);
  const size = nativeImageSize(bankSet) ?? cfg.imgSize;
  const px = await pixelKnnBaseline(bankSet, testSet, evalTransform(cfg.augment, size), bankSet.classes.length,
    { k: cfg.knn.k, t: cfg.knn.t, workers: cfg.workers });
  return { ...px, size };
}

/** A kNN monitor over fixed bank and test subsets, with the eval transform (no augmentation). */
function makeKnnMonitor(cfg: TrainConfig, dist: Comm, onProgress?: OnProgress): (model: Method) => Promise<{ top1: number; top5: number; testLoss?: number }> {
  const { bankSet, testSet } = monitorSets(cfg);
  if (bankSet.classes.length === 0) throw new Error(`[pretrain] the kNN monitor needs labelled data; ${cfg.data} has no classes (set knn.disabled=true)`);
  if (testSet.classes.length !== bankSet.classes.length) {
    throw new Error(`[pretrain] kNN: train has ${bankSet.classes.length} classes but test has ${testSet.classes.length}`);
  }
  const spec = evalTransform(cfg.augment, cfg.imgSize);
  const bs = Math.min(256, cfg.batchSize);
  // data parallel: each rank extracts its shard and the features are gathered back into dataset order (the
  // single-process result: features in eval mode do not depend on the batch)
  const mk = (ds: Dataset): DataLoader => new DataLoader(ds, {
    batchSize: bs, transform: spec, shuffle: false, dropLast: false, seed: 0, numWorkers: cfg.workers,
    ...(dist.size > 1 ? { shard: { rank: dist.rank, worldSize: dist.size } } : {}),
  });
  return async (model) => {
    const wasTraining = model.training;
    model.eval();
    try {
      const on = onProgress ?? (() => {});
      const feature = cfg.knn.feature;
      const [bank, bankLabels] = gatherSharded(await extractOnce(model, mk(bankSet), undefined, { phase: 'kNN monitor: feature bank', on }, feature), bankSet.length, dist);
      // a held-out loss (MAE's reconstruction) comes from the same pass over the test images
      const meter = model.heldOutLoss !== undefined ? heldOutLossMeter(model, realShardSize(testSet.length, dist)) : null;
      const [test, testLabels] = gatherSharded(await extractOnce(model, mk(testSet), meter?.add, { phase: 'kNN monitor: test images', on }, feature), testSet.length, dist);
      const r = knnClassify(bank, bankLabels, test, testLabels, bankSet.classes.length, { k: cfg.knn.k, t: cfg.knn.t });
      bank.dispose();
      test.dispose();
      return meter === null ? { top1: r.top1, top5: r.top5 } : { top1: r.top1, top5: r.top5, testLoss: meter.mean(dist) };
    } finally {
      model.train(wasTraining);
    }
  };
}

/**
 * The method's held-out loss (an image-weighted mean), with the same masks at every evaluation: each image's comes
 * from a fixed seed and its index, so the result depends neither on batching nor on how the images are spread over
 * ranks. `real` is how many images this rank's loader yields before a shard's wrap-around padding (not counted).
 */
export function heldOutLossMeter(model: Method, real = Infinity): { add: (x: Tensor, indices: Int32Array) => void; mean: (dist?: Comm) => number } {
  let sum = 0;
  let n = 0;
  return {
    add: (x, indices) => {
      if (model.heldOutLoss === undefined) throw new Error(`[pretrain] ${model.methodName} has no held-out loss`);
      const keep = Math.min(x.shape[0]!, real - n); // the padding sits at the end of a shard
      if (keep <= 0) return;
      const rows = keep === x.shape[0]! ? x : T.slice(x, 0, 0, keep);
      sum += keep * model.heldOutLoss(rows, { seed: 1234, epoch: 0, indices: indices.subarray(0, keep) });
      if (rows !== x) rows.dispose();
      n += keep;
    },
    mean: (dist) => {
      const [s, c] = dist === undefined ? [sum, n] : allreduceMean([sum, n], dist);
      return s! / Math.max(c!, 1);
    },
  };
}

/**
 * Normalised features and labels of every image a loader yields (eval mode is the caller's; no graph); `each` also
 * sees every batch of images. The loader stays open (extractOnce closes it).
 */
export async function extract(model: Method, loader: DataLoader, each?: (x: Tensor, indices: Int32Array) => void, progress?: { phase: string; on: OnProgress }, feature: KnnFeature = 'backbone'): Promise<[Tensor, Int32Array]> {
  const feats: Tensor[] = [];
  const labels: number[] = [];
  try {
    await forEachFeatureBatch(loader, (x) => monitorFeatures(model, x, feature), (f, x, b) => {
      feats.push(T.keep(f)); // [B, D]
      each?.(x, b.indices);
      for (const l of b.labels) labels.push(l);
    }, progress && ((done, total) => progress.on(progress.phase, done, total)));
    const all = T.keep(T.concat(feats, 0)); // [N, D]
    return [all, Int32Array.from(labels)];
  } finally {
    for (const f of feats) f.dispose();
  }
}

/** extract over a loader made for this one pass, closed afterwards. */
export async function extractOnce(model: Method, loader: DataLoader, each?: (x: Tensor, indices: Int32Array) => void, progress?: { phase: string; on: OnProgress }, feature: KnnFeature = 'backbone'): Promise<[Tensor, Int32Array]> {
  try {
    return await extract(model, loader, each, progress, feature);
  } finally {
    await loader.close();
  }
}

async function writeCurves(out: string, state: TrainState): Promise<void> {
  await writeLineChart(join(out, 'loss.png'), [{ name: 'train loss', x: state.losses.map((l) => l.epoch), y: state.losses.map((l) => l.loss) }],
    { title: 'Pretraining loss', xLabel: 'epoch', yLabel: 'loss' });
  const knn = [...(state.knnBefore ? [state.knnBefore] : []), ...state.knn];
  if (knn.length > 0) {
    const px = state.pixelBaseline;
    const span = [knn[0]!.epoch, knn[knn.length - 1]!.epoch];
    await writeLineChart(join(out, 'knn.png'), [
      { name: 'kNN top-1 (%)', x: knn.map((k) => k.epoch), y: knn.map((k) => 100 * k.top1) },
      { name: 'kNN top-5 (%)', x: knn.map((k) => k.epoch), y: knn.map((k) => 100 * k.top5) },
      // the raw-pixel baselines as flat lines: what the learned features must beat
      ...(px != null ? [
        { name: 'raw pixels, top-1 (%)', x: span, y: span.map(() => 100 * px.raw.top1), color: '#7f7f7f' },
        { name: 'pixels - mean, top-1 (%)', x: span, y: span.map(() => 100 * px.centered.top1), color: '#bcbd22' },
      ] : []),
    ], { title: 'kNN monitor', xLabel: 'epoch', yLabel: 'accuracy (%)' });
    const tl = knn.filter((k) => k.testLoss !== undefined);
    if (tl.length > 0) {
      await writeLineChart(join(out, 'test-loss.png'), [{ name: 'held-out reconstruction loss', x: tl.map((k) => k.epoch), y: tl.map((k) => k.testLoss!) }],
        { title: 'MAE loss on held-out images', xLabel: 'epoch', yLabel: 'loss (masked patches)' });
    }
  }
}

/** Reads a run's saved config (config.json) for --resume. */
export function readRunConfig(out: string): PretrainConfig | null {
  const p = join(out, 'config.json');
  if (!existsSync(p)) return null;
  return migrateConfig(JSON.parse(readFileSync(p, 'utf8')) as PretrainConfig);
}

