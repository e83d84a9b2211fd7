// The pretraining engine behind `selfsup pretrain`: builds a method from a config, steps it over a DataLoader,
// logs (JSON lines, progress bar, PNG curves), monitors with kNN, checkpoints atomically and resumes exactly.
import { existsSync, mkdirSync, readFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Layer } from '../nn/module.js';
import { SGD, LARS, AdamW, adjustLearningRate, clipGradNorm, weightDecayGroups, type LrSchedule } from '../optim/index.js';
import { DataLoader, type Batch } from '../data/loader.js';
import { preset as augmentationPreset } from '../data/presets.js';
import type { Dataset } from '../data/datasets.js';
import { MoCo, SplitBatchNorm2d } from './moco.js';
import { SimSiam, outputStd } from './simsiam.js';
import { MaskedAutoencoderViT } from './mae.js';
import type { PretrainConfig } from './config.js';
import { buildBackbone, backboneFeatures } from './backbones.js';
import { openDataset, evalTransform } from './datasets.js';
import { knnClassify } from '../eval/knn.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeLineChart } from '../io/plot.js';
import { saveCheckpoint, loadCheckpoint, type TrainState } from './checkpoint.js';
import { comm as currentComm, type Comm } from '../dist/comm.js';
import { DistributedDataParallel } from '../dist/ddp.js';
import { convertSyncBatchNorm } from '../dist/syncbn.js';
import { allreduceMean } from '../dist/collectives.js';
import { checkSameConfig, perSampleUniform, gatherSharded, realShardSize } from '../dist/run.js';

export type SelfSupervisedModel = MoCo | SimSiam | MaskedAutoencoderViT;

/** Builds the method's model from a config; all initialisation draws from rng. */
export function buildMethod(cfg: PretrainConfig, rng: T.Rng): SelfSupervisedModel {
  switch (cfg.method) {
    case 'moco': {
      const splits = cfg.moco.bnSplits;
      const enc = (numClasses: number): Layer => buildBackbone(cfg.arch, {
        numClasses, width: cfg.width, rng, zeroInitResidual: false,
        ...(splits > 1 ? { normLayer: (c: number) => new SplitBatchNorm2d(c, splits) } : {}),
      });
      return new MoCo(enc, cfg.moco, rng);
    }
    case 'simsiam':
      return new SimSiam((numClasses) => buildBackbone(cfg.arch, { numClasses, width: cfg.width, rng, zeroInitResidual: true }), cfg.simsiam, rng);
    case 'mae':
      return new MaskedAutoencoderViT({ ...cfg.mae, imgSize: cfg.imgSize, inChans: 3, mlpRatio: 4 }, rng);
  }
}

/** Features for the kNN monitor: backbone output before any projection head, L2-normalised. */
export function monitorFeatures(model: SelfSupervisedModel, x: Tensor): Tensor {
  if (model instanceof MaskedAutoencoderViT) return T.l2Normalize(model.forward(x), 1);
  const encoder = model instanceof MoCo ? model.encoderQ : model.encoder;
  return T.l2Normalize(backboneFeatures(encoder, x), 1);
}

export function buildOptimizer(cfg: PretrainConfig, model: SelfSupervisedModel): { opt: SGD | LARS | AdamW; schedule: LrSchedule; lr: number } {
  const o = cfg.optim;
  const lr = o.scaleLr ? (o.lr * cfg.batchSize) / 256 : o.lr;
  const named = [...model.namedParameters()].filter(([, p]) => p.requiresGrad);
  let groups;
  if (cfg.method === 'mae') {
    // MAE: no weight decay on biases and norm parameters (timm's add_weight_decay)
    groups = weightDecayGroups(named, o.weightDecay);
  } else if (cfg.method === 'simsiam') {
    const enc = named.filter(([n]) => !n.startsWith('predictor.')).map(([, p]) => p);
    const pred = named.filter(([n]) => n.startsWith('predictor.')).map(([, p]) => p);
    groups = [{ name: 'encoder', params: enc }, { name: 'predictor', params: pred, fixedLr: cfg.simsiam.fixPredLr }];
  } else {
    groups = [{ name: 'all', params: named.map(([, p]) => p) }];
  }
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

export interface StepResult { loss: number; metrics: Record<string, number>; /** ms blocked on gradient allreduce */ commWaitMs: number }

export interface StepOptions {
  /** data-parallel gradient averaging (absent: one process) */
  ddp?: DistributedDataParallel | null;
  /** MAE: the masking noise [N, L], one row per sample (see perSampleUniform) */
  maskNoise?: Tensor;
  /** MoCo: fixed key-batch shuffle permutations (tests); by default drawn from the method's generator */
  shuffles?: Int32Array[];
}

/**
 * One optimisation step of the method on a batch of views. Throws (before any update) on a non-finite loss.
 * Under data parallelism the loss and metrics returned are the means over ranks.
 */
export function trainStep(model: SelfSupervisedModel, opt: SGD | LARS | AdamW, views: Tensor[], clipGrad: number, o: StepOptions = {}): StepResult {
  const ddp = o.ddp ?? null;
  return T.tidy(() => {
    let loss: Tensor;
    const metrics: Record<string, number> = {};
    ddp?.beforeForward();
    if (model instanceof MoCo) {
      const out = model.computeLoss(views[0]!, views[1]!, o.shuffles);
      loss = out.loss;
      metrics.acc1 = T.accuracy(out.logits, T.zeros([out.logits.shape[0]!], { dtype: 'int32', device: out.logits.device }));
    } else if (model instanceof SimSiam) {
      const r = model.computeLoss(views[0]!, views[1]!);
      loss = r.loss;
      metrics.zStd = outputStd(r.out.z1);
    } else {
      loss = model.computeLoss(views[0]!, model.cfg.maskRatio, o.maskNoise).loss;
    }
    const value = loss.item();
    if (!Number.isFinite(value)) throw new NonFiniteLossError(value);
    opt.zeroGrad();
    if (ddp === null) {
      loss.backward();
    } else {
      loss.backward(undefined, { onLeafGrad: ddp.onLeafGrad });
    }
    const commWaitMs = ddp?.finishBackward().waitMs ?? 0;
    if (clipGrad > 0) metrics.gradNorm = clipGradNorm(opt.paramGroups.flatMap((g) => g.params), clipGrad);
    opt.step();
    if (ddp === null || ddp.comm.size === 1) return { loss: value, metrics, commWaitMs };
    const keys = Object.keys(metrics).filter((k) => k !== 'gradNorm'); // gradNorm is already global
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
  /** test hook: called after a checkpoint is written (e.g. to kill the process there) */
  onCheckpoint?: (info: { epoch: number; step: number }) => void;
}

export interface PretrainResult {
  knnBefore: KnnSummary | null;
  knnAfter: KnnSummary | null;
  epochs: number;
  lastLoss: number;
  seconds: number;
  model: SelfSupervisedModel;
}

/** Runs (or resumes) a pretraining; resolves when cfg.epochs are done. */
export async function pretrain(cfg: PretrainConfig, opts: { resume?: boolean; callbacks?: PretrainCallbacks; comm?: Comm } = {}): Promise<PretrainResult> {
  // data parallel: every rank runs this; rank 0 alone logs, plots and checkpoints
  const dist = opts.comm ?? currentComm();
  const lead = dist.rank === 0;
  checkSameConfig(cfg, dist, 'pretrain');
  if (cfg.batchSize % dist.size !== 0) {
    throw new Error(`[pretrain] batchSize ${cfg.batchSize} (the global batch) does not divide over ${dist.size} ranks`);
  }
  const rankBatch = cfg.batchSize / dist.size;
  const cb = lead ? opts.callbacks ?? {} : {};
  const log = lead ? cb.log ?? ((s: string) => { process.stdout.write(`${s}\n`); }) : () => undefined;
  if (lead) mkdirSync(cfg.out, { recursive: true });
  const rng = new T.Rng(cfg.seed);
  const model = buildMethod(cfg, rng);
  if (dist.size > 1) {
    // the official DDP code: SimSiam converts to SyncBatchNorm, MoCo shuffles BN across ranks, MAE is plain DDP
    if (model instanceof SimSiam) convertSyncBatchNorm(model, dist);
    if (model instanceof MoCo) model.setComm(dist);
  }
  model.train();
  const { opt, schedule } = buildOptimizer(cfg, model);
  const train = openDataset(cfg.data, 'train', cfg.limit);
  const views = augmentationPreset(cfg.augment, { size: cfg.imgSize });
  const needViews = cfg.method === 'mae' ? 1 : 2;
  if (views.views.length < needViews) {
    throw new Error(`[pretrain] augmentation '${cfg.augment}' makes ${views.views.length} view(s); ${cfg.method} needs ${needViews}`);
  }
  if (cfg.method === 'moco' && cfg.moco.K % (cfg.batchSize * (cfg.moco.symmetric ? 2 : 1)) !== 0) {
    throw new Error(`[pretrain] moco.K=${cfg.moco.K} must be a multiple of the keys per step (${cfg.batchSize * (cfg.moco.symmetric ? 2 : 1)})`);
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
    const loaded = loadCheckpoint(cfg.out, model, opt);
    if (loaded !== null) {
      const saved = loaded.worldSize ?? 1;
      if (saved !== dist.size) {
        throw new Error(`[pretrain] --resume: the run in ${cfg.out} was trained on ${saved} rank(s); resume it with ${saved} (mpirun -np ${saved} / --nproc ${saved}), not ${dist.size}: MoCo's shuffled BN and the BN statistics depend on the split`);
      }
      state = loaded;
      rng.setState(state.rng);
      log(`[pretrain] resumed from ${cfg.out} at epoch ${state.epoch}, step ${state.step}`);
    } else {
      log(`[pretrain] no checkpoint in ${cfg.out}; starting from scratch`);
    }
  }
  if (lead) writeFileAtomic(join(cfg.out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  // after any resume, so every rank continues from rank 0's weights exactly
  const ddp = dist.size > 1 ? new DistributedDataParallel(model, dist, { skipBuffer: (n) => n === 'queue' || n === 'queue_ptr' }) : null;

  const knn = cfg.knn.disabled ? null : makeKnnMonitor(cfg, dist);
  const t0 = performance.now();
  if (knn !== null && state.epoch === 0 && state.step === 0 && state.knnBefore === null) {
    state.knnBefore = { epoch: 0, ...(await knn(model)) };
    log(`[pretrain] kNN before training: top-1 ${(100 * state.knnBefore.top1).toFixed(2)}%${state.knnBefore.testLoss !== undefined ? `, test reconstruction loss ${state.knnBefore.testLoss.toFixed(4)}` : ''}`);
    if (lead) appendFileSync(logPath, `${JSON.stringify({ event: 'knn', ...state.knnBefore })}\n`);
  }

  let lastLoss = NaN;
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
        // MAE's masks come from (seed, epoch, sample), so they do not depend on how samples are spread over ranks
        const maskNoise = model instanceof MaskedAutoencoderViT ? perSampleUniform(cfg.seed, epoch, batch.indices, model.numPatches) : undefined;
        let r: StepResult;
        try {
          r = trainStep(model, opt, inputs, cfg.optim.clipGrad, { ddp, ...(maskNoise !== undefined ? { maskNoise } : {}) });
        } finally {
          for (const t of inputs) t.dispose();
          maskNoise?.dispose();
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
      let k: KnnSummary | null = null;
      if (knn !== null && (epoch + 1 === cfg.epochs || (cfg.knn.every > 0 && (epoch + 1) % cfg.knn.every === 0))) {
        k = { epoch: epoch + 1, ...(await knn(model)) };
        state.knn.push(k);
        if (lead) saveCheckpoint(cfg.out, model, opt, state, cfg);
      }
      const seconds = (performance.now() - te) / 1000;
      if (lead) appendFileSync(logPath, `${JSON.stringify({ event: 'epoch', epoch: epoch + 1, loss: meanLoss, seconds, ...(k ? { knnTop1: k.top1, knnTop5: k.top5, ...(k.testLoss !== undefined ? { testLoss: k.testLoss } : {}) } : {}) })}\n`);
      cb.onEpoch?.({ epoch: epoch + 1, loss: meanLoss, knn: k, seconds });
      if (lead) await writeCurves(cfg.out, state);
    }
  } finally {
    await loader.close();
  }
  const last = state.knn[state.knn.length - 1] ?? null;
  return { knnBefore: state.knnBefore, knnAfter: last, epochs: state.epoch, lastLoss, seconds: (performance.now() - t0) / 1000, model };
}

/** Batch arrays to tensors on the default device: one [N, C, H, W] tensor per view. */
function batchTensors(batch: Batch, nViews: number): Tensor[] {
  return batch.views.slice(0, nViews).map((v) => T.tensor(v, batch.shape));
}

/** A kNN monitor over fixed bank and test subsets, with the eval transform (no augmentation). */
function makeKnnMonitor(cfg: PretrainConfig, dist: Comm): (model: SelfSupervisedModel) => Promise<{ top1: number; top5: number; testLoss?: number }> {
  const bankSet = openDataset(cfg.data, 'train', cfg.knn.bankSize);
  const testSet = cfg.testData !== null ? openDataset(cfg.testData, 'test', cfg.knn.testSize) : openDataset(cfg.data, 'test', cfg.knn.testSize);
  if (bankSet.classes.length === 0) throw new Error(`[pretrain] the kNN monitor needs labelled data; ${cfg.data} has no classes (set knn.disabled=true)`);
  if (testSet.classes.length !== bankSet.classes.length) {
    throw new Error(`[pretrain] kNN: train has ${bankSet.classes.length} classes but test has ${testSet.classes.length}`);
  }
  const spec = evalTransform(cfg.augment, cfg.imgSize);
  const bs = Math.min(256, cfg.batchSize);
  // data parallel: each rank extracts a shard and the features are gathered back into dataset order
  const mk = (ds: Dataset): DataLoader => new DataLoader(ds, {
    batchSize: bs, transform: spec, shuffle: false, dropLast: false, seed: 0, numWorkers: cfg.workers,
    ...(dist.size > 1 ? { shard: { rank: dist.rank, worldSize: dist.size } } : {}),
  });
  return async (model) => {
    const wasTraining = model.training;
    model.eval();
    try {
      const [bank, bankLabels] = gatherSharded(await extract(model, mk(bankSet)), bankSet.length, dist);
      // MAE: the held-out reconstruction loss comes from the same pass over the test images
      const meter = model instanceof MaskedAutoencoderViT ? maeLossMeter(model, realShardSize(testSet.length, dist)) : null;
      const [test, testLabels] = gatherSharded(await extract(model, mk(testSet), meter?.add), testSet.length, dist);
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
 * MAE's loss on held-out images, with the same masks at every evaluation: each image's noise comes from a fixed
 * seed and its index, so the loss depends neither on batching nor on how images are spread over ranks. `real` is
 * how many images this rank's loader yields before the wrap-around padding of a shard (which is not counted).
 */
export function maeLossMeter(model: MaskedAutoencoderViT, real: number): { add: (x: Tensor, indices: Int32Array) => void; mean: (dist?: Comm) => number } {
  let sum = 0;
  let n = 0;
  return {
    add: (x, indices) => {
      const keep = Math.min(x.shape[0]!, real - n); // padding sits at the end of the shard
      if (keep <= 0) return;
      sum += keep * T.noGrad(() => T.tidy(() => {
        const rows = keep === x.shape[0]! ? x : T.indexSelect(x, 0, T.arange(0, keep, 1, { dtype: 'int32', device: x.device }));
        const noise = perSampleUniform(1234, 0, indices.subarray(0, keep), model.numPatches);
        // every image has the same number of masked patches, so the batch mean times keep is the images' sum
        return model.computeLoss(rows, model.cfg.maskRatio, noise).loss.item();
      }));
      n += keep;
    },
    mean: (dist) => {
      const [s, c] = dist === undefined ? [sum, n] : allreduceMean([sum, n], dist);
      return s! / Math.max(c!, 1);
    },
  };
}

/**
 * Normalised features and labels of every image a loader yields (eval mode, no graph); `each` also sees every
 * batch of images.
 */
export async function extract(model: SelfSupervisedModel, loader: DataLoader, each?: (x: Tensor, indices: Int32Array) => void): Promise<[Tensor, Int32Array]> {
  const feats: Tensor[] = [];
  const labels: number[] = [];
  try {
    for await (const batch of loader.epoch(0)) {
      const x = T.tensor(batch.images, batch.shape);
      feats.push(T.keep(T.noGrad(() => T.tidy(() => monitorFeatures(model, x)))));
      each?.(x, batch.indices);
      x.dispose();
      for (const l of batch.labels) labels.push(l);
    }
  } finally {
    await loader.close();
  }
  const all = T.keep(T.concat(feats, 0));
  for (const f of feats) f.dispose();
  return [all, Int32Array.from(labels)];
}

async function writeCurves(out: string, state: TrainState): Promise<void> {
  await writeLineChart(join(out, 'loss.png'), [{ name: 'train loss', x: state.losses.map((l) => l.epoch), y: state.losses.map((l) => l.loss) }],
    { title: 'Pretraining loss', xLabel: 'epoch', yLabel: 'loss' });
  const knn = [...(state.knnBefore ? [state.knnBefore] : []), ...state.knn];
  if (knn.length > 0) {
    await writeLineChart(join(out, 'knn.png'), [
      { name: 'kNN top-1 (%)', x: knn.map((k) => k.epoch), y: knn.map((k) => 100 * k.top1) },
      { name: 'kNN top-5 (%)', x: knn.map((k) => k.epoch), y: knn.map((k) => 100 * k.top5) },
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
  return JSON.parse(readFileSync(p, 'utf8')) as PretrainConfig;
}

