// Opening a pretraining run for evaluation: its resolved config rebuilds the method, its checkpoint loads strictly,
// and the labelled data and transforms the evaluation commands share are derived from the same config.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Dataset } from '../data/datasets.js';
import type { ViewsSpec } from '../data/transforms.js';
import { preset as augmentationPreset, presetNormalization } from '../data/presets.js';
import { migrateConfig, type MethodName, type PretrainConfig } from '../train/config.js';
import { loadModelWeights, readCheckpointJson, saveCheckpoint } from '../train/checkpoint.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Method } from '../methods/method.js';
import { buildMethod } from '../methods/registry.js';
import { openDataset } from '../data/open.js';

export interface Pretrained {
  dir: string;
  cfg: PretrainConfig;
  model: Method;
  /** epochs the checkpoint was trained for */
  epoch: number;
}

/**
 * Rebuilds the method a run folder describes (config.json) and loads its checkpoint strictly. `where` prefixes
 * errors ('[knn]'); `expect` restricts the method (reconstruct needs MAE).
 */
export function loadPretrained(dir: string, where: string, expect?: readonly MethodName[]): Pretrained {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) {
    throw new Error(`[${where}] ${dir} is not a pretraining run folder (no config.json); pass the --out folder of 'selfsup pretrain'`);
  }
  const cfg = migrateConfig(JSON.parse(readFileSync(cfgPath, 'utf8')) as PretrainConfig);
  if (expect !== undefined && !expect.includes(cfg.method)) {
    throw new Error(`[${where}] ${dir} holds a ${cfg.method} checkpoint; ${where} needs ${expect.join(' or ')}`);
  }
  const ckpt = readCheckpointJson(dir);
  if (ckpt === null) throw new Error(`[${where}] ${dir} has no checkpoint yet (checkpoint.json missing)`);
  const model = buildMethod(cfg, new T.Rng(cfg.seed));
  try {
    loadModelWeights(dir, model, model.checkpointExtras);
  } catch (e) {
    model.dispose();
    throw new Error(`[${where}] the checkpoint in ${dir} does not match its config (method ${cfg.method}, arch ${cfg.arch}): ${(e as Error).message}`);
  }
  model.eval();
  return { dir, cfg, model, epoch: ckpt.state.epoch };
}

/**
 * A run folder (config.json + checkpoint) from bare weights under the method's own state-dict names, which are the
 * official ones (an MAE's models_mae.py state_dict, as reference/budget_torch.py --save writes it), so every
 * evaluation command reads weights trained elsewhere as it reads a pretrain run. The weights load strictly into the
 * model `cfg` builds: a missing, unexpected or mis-shaped tensor is an error that names it, and nothing is written.
 * `epoch`: the epochs they were trained for (shown by the commands).
 */
export function writeRunFromWeights(cfg: PretrainConfig, weights: string, out: string, epoch: number): void {
  const model = buildMethod(cfg, new T.Rng(cfg.seed));
  try {
    try {
      loadModelWeights(weights, model, model.checkpointExtras);
    } catch (e) {
      throw new Error(`[import] ${weights} does not fit a ${cfg.method} model of arch ${cfg.arch}: ${(e as Error).message}`);
    }
    writeRunFolder(out, model, cfg, epoch);
  } finally {
    model.dispose();
  }
}

/**
 * Writes a run folder that the evaluation commands open as they open a pretrain run: the model's checkpoint (no
 * optimizer state, no history) marked `epoch`, and `cfg` (with `out` set to the folder) as config.json.
 */
export function writeRunFolder(out: string, model: Method, cfg: PretrainConfig, epoch: number): void {
  mkdirSync(out, { recursive: true });
  const run = { ...cfg, out };
  saveCheckpoint(out, model, null, { epoch, step: 0, rng: new T.Rng(cfg.seed).getState(), losses: [], knn: [], knnBefore: null }, run);
  writeFileAtomic(join(out, 'config.json'), `${JSON.stringify(run, null, 2)}\n`);
}

/** The '-cifar' suffix of the run's augmentation, so evaluation presets normalise as pretraining did. */
function variantSuffix(cfg: PretrainConfig): string {
  return cfg.augment.endsWith('-cifar') ? '-cifar' : '';
}

/**
 * The linear probe's training transform at the run's size and normalisation: main_lincls.py's RandomResizedCrop +
 * flip, or for MAE runs main_linprobe.py's single-try bicubic crop (util/crop.py) + flip.
 */
export function linclsTrainTransform(cfg: PretrainConfig): ViewsSpec {
  const base = cfg.method === 'mae' ? 'mae-lincls-train' : 'lincls-train';
  return augmentationPreset(`${base}${variantSuffix(cfg)}`, { size: cfg.imgSize });
}

/** MAE's fine-tuning transform (timm's RandAugment, bicubic crop, random erasing) at the run's size and normalisation. */
export function finetuneTrainTransform(cfg: PretrainConfig): ViewsSpec {
  return augmentationPreset(`mae-finetune${variantSuffix(cfg)}`, { size: cfg.imgSize });
}

/** The run's Normalize statistics (for pictures). */
export function runNormalization(cfg: PretrainConfig): { mean: readonly number[]; std: readonly number[] } | null {
  return presetNormalization(augmentationPreset(cfg.augment, { size: cfg.imgSize }));
}

export interface LabelledPair { train: Dataset; test: Dataset; classes: readonly string[] }

/** A labelled train/test pair: errors when either has no labels or their class lists differ. */
export function openLabelledPair(where: string, trainSpec: string, testSpec: string, trainLimit: number | null, testLimit: number | null): LabelledPair {
  const train = openDataset(trainSpec, 'train', trainLimit);
  const test = openDataset(testSpec, 'test', testLimit);
  for (const [name, ds, spec] of [['training', train, trainSpec], ['test', test, testSpec]] as const) {
    if (ds.classes.length === 0) {
      throw new Error(`[${where}] the ${name} data ${spec} has no labels (an image folder needs one subfolder per class)`);
    }
  }
  if (train.classes.length !== test.classes.length) {
    throw new Error(`[${where}] the training data has ${train.classes.length} classes but the test data has ${test.classes.length}`);
  }
  const differ = train.classes.findIndex((c, i) => c !== test.classes[i]);
  if (differ >= 0) {
    throw new Error(`[${where}] class ${differ} is '${train.classes[differ]}' in the training data but '${test.classes[differ]}' in the test data`);
  }
  return { train, test, classes: train.classes };
}

/** Parses a positive integer flag. */
export function positiveInt(where: string, flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`[${where}] --${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}

/** Parses a finite number flag. */
export function finiteNumber(where: string, flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`[${where}] --${flag} must be a number, got '${v}'`);
    return n;
  };
}
