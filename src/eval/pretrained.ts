// Opening a pretraining run for evaluation: its resolved config rebuilds the method, its checkpoint loads strictly,
// and the labelled data and transforms the evaluation commands share are derived from the same config.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Layer, Module } from '../nn/module.js';
import { VisionTransformer } from '../models/vit.js';
import type { ResNet } from '../models/resnet.js';
import type { Dataset } from '../data/datasets.js';
import type { ViewsSpec } from '../data/transforms.js';
import { preset as augmentationPreset, presetNormalization } from '../data/presets.js';
import type { MethodName, PretrainConfig } from '../train/config.js';
import { buildMethod, type SelfSupervisedModel } from '../train/pretrain.js';
import { loadModelWeights, readCheckpointJson } from '../train/checkpoint.js';
import { MoCo } from '../methods/moco.js';
import { MaskedAutoencoderViT } from '../methods/mae.js';
import { backboneFeatures } from '../methods/backbones.js';
import { openDataset } from '../data/open.js';

export interface Pretrained {
  dir: string;
  cfg: PretrainConfig;
  model: SelfSupervisedModel;
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
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as PretrainConfig;
  if (expect !== undefined && !expect.includes(cfg.method)) {
    throw new Error(`[${where}] ${dir} holds a ${cfg.method} checkpoint; ${where} needs ${expect.join(' or ')}`);
  }
  const ckpt = readCheckpointJson(dir);
  if (ckpt === null) throw new Error(`[${where}] ${dir} has no checkpoint yet (checkpoint.json missing)`);
  const model = buildMethod(cfg, new T.Rng(cfg.seed));
  try {
    loadModelWeights(dir, model);
  } catch (e) {
    model.dispose();
    throw new Error(`[${where}] the checkpoint in ${dir} does not match its config (method ${cfg.method}, arch ${cfg.arch}): ${(e as Error).message}`);
  }
  model.eval();
  return { dir, cfg, model, epoch: ckpt.state.epoch };
}

/** The encoder whose features evaluation reads: MoCo's query encoder, SimSiam's encoder (ResNets with their heads). */
function resnetEncoder(model: SelfSupervisedModel): Layer {
  if (model instanceof MaskedAutoencoderViT) throw new Error('[eval] MAE has no ResNet encoder');
  return model instanceof MoCo ? model.encoderQ : model.encoder;
}

/**
 * Pooled features before any projection head, not normalised: the ResNet's average pool for MoCo and SimSiam,
 * the mean of the patch tokens after the encoder's norm for MAE (what the kNN monitor reads).
 */
export function rawFeatures(model: SelfSupervisedModel, x: Tensor): Tensor {
  if (model instanceof MaskedAutoencoderViT) return model.forward(x); // [N, D]
  return backboneFeatures(resnetEncoder(model), x); // [N, D]
}

export interface ViTFromMaeOptions {
  /** MAE's global_pool: mean of patch tokens + fc_norm (fine-tuning); false reads the normed cls token (linear probe) */
  globalPool: boolean;
  numClasses: number;
  dropPathRate?: number;
  /** trainable position embeddings (fine-tuning trains them; MAE's models_vit makes them nn.Parameter) */
  learnedPosEmbed?: boolean;
  rng?: T.Rng;
}

/**
 * A timm VisionTransformer holding an MAE checkpoint's encoder, as MAE's main_finetune / main_linprobe load it:
 * decoder keys dropped, `norm` dropped under global pooling (fc_norm and head stay freshly initialised).
 */
export function vitFromMae(mae: MaskedAutoencoderViT, o: ViTFromMaeOptions): VisionTransformer {
  const c = mae.cfg;
  const vit = new VisionTransformer({
    imgSize: c.imgSize, patchSize: c.patchSize, inChans: c.inChans, embedDim: c.embedDim, depth: c.depth, numHeads: c.numHeads,
    mlpRatio: c.mlpRatio, qkvBias: true, numClasses: o.numClasses, globalPool: o.globalPool, dropPathRate: o.dropPathRate ?? 0,
    posEmbed: o.learnedPosEmbed === true ? 'learned' : 'sincos',
  }, { rng: o.rng ?? new T.Rng(0) });
  const sd = new Map<string, Tensor>();
  for (const [k, v] of mae.stateDict()) {
    if (k.startsWith('decoder_') || k === 'mask_token') continue;
    if (o.globalPool && k.startsWith('norm.')) continue;
    sd.set(k, v);
  }
  const report = vit.loadStateDict(sd, { strict: false });
  const missing = report.missing.filter((k) => !k.startsWith('head.') && !k.startsWith('fc_norm.'));
  if (missing.length > 0 || report.unexpected.length > 0) {
    throw new Error(`[eval] MAE encoder does not fit the ViT: missing ${missing.join(', ') || '-'}, unexpected ${report.unexpected.join(', ') || '-'}`);
  }
  return vit;
}

/** The frozen backbone of a run as one module with forwardFeatures: a ResNet or (MAE) a ViT reading the cls token. */
/** `owned`: the backbone was built here (MAE's ViT) and is the caller's to dispose; otherwise it is part of p.model. */
export function frozenBackbone(p: Pretrained): { backbone: Module; features: (x: Tensor) => Tensor; dim: number; owned: boolean } {
  if (p.model instanceof MaskedAutoencoderViT) {
    const vit = vitFromMae(p.model, { globalPool: false, numClasses: 0 });
    return { backbone: vit, features: (x) => vit.forwardFeatures(x), dim: vit.numFeatures, owned: true };
  }
  const enc = resnetEncoder(p.model) as ResNet;
  return { backbone: enc, features: (x) => enc.forwardFeatures(x), dim: enc.numFeatures, owned: false };
}

/** The '-cifar' suffix of the run's augmentation, so evaluation presets normalise as pretraining did. */
function variantSuffix(cfg: PretrainConfig): string {
  return cfg.augment.endsWith('-cifar') ? '-cifar' : '';
}

/** moco/main_lincls.py's training transform at the run's size and normalisation. */
export function linclsTrainTransform(cfg: PretrainConfig): ViewsSpec {
  return augmentationPreset(`lincls-train${variantSuffix(cfg)}`, { size: cfg.imgSize });
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
