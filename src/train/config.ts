// Pretraining configs: one typed object of defaults (each field commented): the training settings every method
// shares, plus one section per registered method (cfg.moco, cfg.simsiam, cfg.mae) holding that method's own config.
// Presets live in presets.ts; overrides come from a file, then flags (src/io/config.ts checks keys and types).
import { METHODS, METHOD_NAMES, methodSpec, type MethodName, type MethodSections } from '../methods/registry.js';
import { PRESETS } from './presets.js';

export type { MethodName } from '../methods/registry.js';

/** The settings every method shares (what a MethodSpec's build reads besides its own section). */
export interface TrainConfig {
  /** the method to train: a name in src/methods/registry.ts */
  method: string;
  /** the preset this config started from (informational) */
  preset: string;
  /** training images: 'fashion-mnist' (Debian's dataset-fashion-mnist), a CIFAR binary folder, or an image folder */
  data: string;
  /** labelled held-out images for the kNN monitor: same forms as data; null uses the test split of built-in sets */
  testData: string | null;
  /** run folder: config, log, checkpoints and plots go here */
  out: string;
  epochs: number;
  /** images per step (per view) */
  batchSize: number;
  /** loader worker threads (0: decode on the main thread) */
  workers: number;
  seed: number;
  /** train on the first N images only (quick runs); null for all */
  limit: number | null;
  /** augmentation preset from src/data/presets.ts ('moco-v2-cifar', 'mae', ...) */
  augment: string;
  /** input side in pixels */
  imgSize: number;
  /**
   * RandomResizedCrop's minimum scale: moco-v3's --crop-min (0.08 by default, 0.2 in CONFIG.md's ResNet-50 runs), or
   * moco-v1/moco-v2/simsiam's fixed 0.2; null keeps the preset's own. The other augmentations refuse a value.
   */
  cropMin: number | null;
  /**
   * backbone: resnet18-cifar | resnet34-cifar | resnet50-cifar | resnet18 | resnet34 | resnet50 | vit-tiny | vit-small |
   * vit-base | vit-large | vit-huge, a ViT with '-patchP' (vit-tiny-patch4), or a custom one: vit-d192-depth6-heads3-patch4
   */
  arch: string;
  /** ResNet width multiplier (1: 64 channels in the stem) */
  width: number;
  optim: {
    /** sgd | lars | adamw */
    name: string;
    /** base lr; the actual lr is lr * batchSize / 256 when scaleLr */
    lr: number;
    /** multiply lr by batchSize / 256 (SimSiam, MAE's blr) */
    scaleLr: boolean;
    weightDecay: number;
    /** SGD/LARS momentum */
    momentum: number;
    /** AdamW betas */
    beta1: number;
    beta2: number;
    /**
     * cosine (per epoch) | warmupCosine (per iteration) | step | constant. Epochs count from 0 as in main_moco.py
     * and main_simsiam.py; the CIFAR demo's loop counts from 1, so its first epoch already runs at
     * lr * 0.5 * (1 + cos(pi / epochs)) (0.99994 lr at 200 epochs) and its last at 0: a shift of one epoch
     */
    schedule: string;
    warmupEpochs: number;
    minLr: number;
    /** step schedule: epochs where lr *= 0.1 */
    milestones: number[];
    /** clip gradients to this global norm; 0 disables */
    clipGrad: number;
  };
  knn: {
    /** run the kNN monitor every N epochs (0: only before and after training) */
    every: number;
    k: number;
    t: number;
    /** feature-bank images from the training set (null: all) */
    bankSize: number | null;
    /** test images (null: all) */
    testSize: number | null;
    /** skip the monitor entirely */
    disabled: boolean;
    /**
     * what the monitor compares: 'backbone', the pooled features before any head (what linear probes read, and the
     * only choice that means the same for every method: MAE has no head); 'head', the L2-normalised output of the
     * encoder's head, as the MoCo CIFAR demo's test() reads F.normalize(encoder_q(x)) (the 128-d fc output)
     */
    feature: 'backbone' | 'head';
  };
  /** also checkpoint every N steps inside an epoch (0: only at epoch ends) */
  ckptEverySteps: number;
  /** print a log line every N steps */
  logEvery: number;
}

/** A full pretraining config: the shared settings and every registered method's section. */
export interface PretrainConfig extends TrainConfig, MethodSections {
  method: MethodName;
}

export function defaultConfig(): PretrainConfig {
  const sections = Object.fromEntries(METHOD_NAMES.map((n) => [n, METHODS[n].defaultConfig()])) as MethodSections;
  return {
    method: 'simsiam',
    preset: 'none',
    data: 'fashion-mnist',
    testData: null,
    out: 'runs/pretrain',
    epochs: 100,
    batchSize: 256,
    workers: 2,
    seed: 0,
    limit: null,
    augment: 'moco-v2-cifar',
    imgSize: 32,
    cropMin: null,
    arch: 'resnet18-cifar',
    width: 1,
    optim: {
      name: 'sgd', lr: 0.05, scaleLr: true, weightDecay: 1e-4, momentum: 0.9, beta1: 0.9, beta2: 0.95,
      schedule: 'cosine', warmupEpochs: 0, minLr: 0, milestones: [], clipGrad: 0,
    },
    ...sections,
    knn: { every: 1, k: 200, t: 0.1, bankSize: null, testSize: null, disabled: false, feature: 'backbone' },
    ckptEverySteps: 0,
    logEvery: 20,
  };
}

/**
 * Keys a resumed run may change (dotted prefixes): extending the epochs, the kNN monitor, logging, loader threads and
 * the run folder's path (batches do not depend on the thread count). Everything
 * else shapes the model, the data or the optimisation, and a checkpoint trained under one value cannot continue
 * under another.
 */
export const RESUMABLE_KEYS: readonly string[] = ['epochs', 'knn', 'logEvery', 'ckptEverySteps', 'workers', 'out'];

/**
 * A saved config brought up to date: runs written before MAE's encoder followed `arch` kept its size in the mae
 * section (patchSize, embedDim, depth, numHeads); they become the equivalent custom arch.
 */
export function migrateConfig(cfg: PretrainConfig): PretrainConfig {
  const mae = (cfg as unknown as { mae?: Record<string, unknown> }).mae;
  if (mae === undefined || !('embedDim' in mae)) return cfg;
  const { patchSize, embedDim, depth, numHeads, ...rest } = mae;
  const arch = cfg.method === 'mae' ? `vit-d${String(embedDim)}-depth${String(depth)}-heads${String(numHeads)}-patch${String(patchSize)}` : cfg.arch;
  return { ...cfg, arch, mae: rest as unknown as PretrainConfig['mae'] };
}

/** Dotted paths of the leaves where a and b differ (arrays compare as values). */
export function changedKeys(a: unknown, b: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => changedKeys(a[k], b[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

/**
 * Checks the config a resumed run asks for against the one it was trained with: returns the changed keys (all
 * in RESUMABLE_KEYS), or throws naming every key that may not change.
 */
export function checkResumeConfig(saved: PretrainConfig, next: PretrainConfig, where = 'pretrain'): string[] {
  const changed = changedKeys(saved, next).filter((k) => k !== 'preset');
  const refused = changed.filter((k) => !RESUMABLE_KEYS.some((r) => k === r || k.startsWith(`${r}.`)));
  if (refused.length > 0) {
    const show = (v: unknown): string => JSON.stringify(v) ?? 'undefined';
    const get = (o: unknown, k: string): unknown => k.split('.').reduce<unknown>((x, p) => (x as Record<string, unknown> | undefined)?.[p], o);
    throw new Error(`[${where}] --resume cannot change ${refused.map((k) => `'${k}' (${show(get(saved, k))} -> ${show(get(next, k))})`).join(', ')}; `
      + `a resumed run may change only ${RESUMABLE_KEYS.join(', ')}. Start a new run (another --out) to change the others`);
  }
  return changed;
}

/** A preset: the keys it sets (sections merge into the defaults key by key). */
export type ConfigPatch = { [K in keyof PretrainConfig]?: PretrainConfig[K] extends object ? Partial<PretrainConfig[K]> : PretrainConfig[K] };

/** The names a method's presets go by ('quick', 'cifar', ...). */
export function presetNames(method: MethodName): string[] {
  return Object.keys(PRESETS[method]);
}

/** The full config of a method's preset: the defaults with the preset's keys applied. */
export function presetConfig(method: string, name: string): PretrainConfig {
  const spec = methodSpec(method, 'pretrain');
  const m = spec.name as MethodName;
  const patch = PRESETS[m][name];
  if (patch === undefined) {
    throw new Error(`[pretrain] unknown preset '${name}' for ${m}; known: ${presetNames(m).join(', ')}`);
  }
  const base = defaultConfig();
  const out = { ...base, method: m, preset: name } as PretrainConfig;
  for (const [k, v] of Object.entries(patch) as [keyof PretrainConfig, unknown][]) {
    const cur = base[k];
    (out as unknown as Record<string, unknown>)[k] = typeof cur === 'object' && cur !== null && !Array.isArray(cur)
      ? { ...cur, ...(v as object) } : v;
  }
  return out;
}

/** The command-line flag that sets a key, where one does (error messages name both). */
const FLAG_OF: Readonly<Record<string, string>> = {
  epochs: '--epochs', batchSize: '--batch-size', workers: '--workers', seed: '--seed', limit: '--limit', 'optim.lr': '--lr',
};

/**
 * Checks the ranges of the shared settings (src/io/config.ts has already checked keys and types), so a bad value is
 * refused by name before anything is built or written, rather than failing later in whatever first reads it.
 */
export function checkTrainConfig(cfg: TrainConfig, where = 'pretrain'): void {
  const bad = (key: string, want: string, v: unknown): never => {
    const flag = FLAG_OF[key];
    throw new Error(`[${where}] ${key}${flag !== undefined ? ` (${flag})` : ''} must be ${want}, got ${JSON.stringify(v) ?? String(v)}`);
  };
  const int = (key: string, v: number, min: number): void => {
    if (!(Number.isInteger(v) && v >= min)) bad(key, min === 0 ? 'a non-negative integer' : `an integer >= ${min}`, v);
  };
  const atLeast = (key: string, v: number, min: number): void => {
    if (!(Number.isFinite(v) && v >= min)) bad(key, `a finite number >= ${min}`, v);
  };
  const positive = (key: string, v: number): void => {
    if (!(Number.isFinite(v) && v > 0)) bad(key, 'a positive number', v);
  };
  const unit = (key: string, v: number): void => {
    if (!(v >= 0 && v < 1)) bad(key, 'in [0, 1)', v);
  };
  int('epochs', cfg.epochs, 0);
  int('batchSize', cfg.batchSize, 1);
  int('workers', cfg.workers, 0);
  if (!Number.isSafeInteger(cfg.seed)) bad('seed', 'an integer', cfg.seed);
  if (cfg.limit !== null) int('limit', cfg.limit, 1);
  int('imgSize', cfg.imgSize, 1);
  if (cfg.cropMin !== null && !(cfg.cropMin > 0 && cfg.cropMin <= 1)) bad('cropMin', 'in (0, 1] or null', cfg.cropMin);
  positive('width', cfg.width);
  const o = cfg.optim;
  atLeast('optim.lr', o.lr, 0);
  atLeast('optim.weightDecay', o.weightDecay, 0);
  atLeast('optim.momentum', o.momentum, 0);
  unit('optim.beta1', o.beta1);
  unit('optim.beta2', o.beta2);
  atLeast('optim.warmupEpochs', o.warmupEpochs, 0);
  atLeast('optim.minLr', o.minLr, 0);
  o.milestones.forEach((m, i) => int(`optim.milestones[${i}]`, m, 0));
  atLeast('optim.clipGrad', o.clipGrad, 0);
  const k = cfg.knn;
  int('knn.every', k.every, 0);
  int('knn.k', k.k, 1);
  positive('knn.t', k.t);
  if (k.bankSize !== null) int('knn.bankSize', k.bankSize, 1);
  if (k.testSize !== null) int('knn.testSize', k.testSize, 1);
  int('ckptEverySteps', cfg.ckptEverySteps, 0);
  int('logEvery', cfg.logEvery, 1);
}
