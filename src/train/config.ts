// Pretraining configs: one typed object of defaults (each field commented), and named presets per method that
// reproduce the official recipes (ImageNet) and the CIFAR demo settings. Overrides come from a file, then flags.

export type MethodName = 'moco' | 'simsiam' | 'mae';

export interface PretrainConfig {
  method: MethodName;
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
  /** backbone: resnet18-cifar | resnet18 | resnet34 | resnet50 | vit-tiny | vit-small | vit-base (MAE builds its own ViT) */
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
    /** cosine (per epoch) | warmupCosine (per iteration) | step | constant */
    schedule: string;
    warmupEpochs: number;
    minLr: number;
    /** step schedule: epochs where lr *= 0.1 */
    milestones: number[];
    /** clip gradients to this global norm; 0 disables */
    clipGrad: number;
  };
  moco: {
    dim: number;
    K: number;
    m: number;
    T: number;
    mlp: boolean;
    symmetric: boolean;
    /** split BN sub-batches emulating multi-GPU shuffling BN (the CIFAR demo's --bn-splits) */
    bnSplits: number;
  };
  simsiam: {
    dim: number;
    predDim: number;
    fixPredLr: boolean;
  };
  mae: {
    patchSize: number;
    embedDim: number;
    depth: number;
    numHeads: number;
    decoderEmbedDim: number;
    decoderDepth: number;
    decoderNumHeads: number;
    maskRatio: number;
    normPixLoss: boolean;
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
  };
  /** also checkpoint every N steps inside an epoch (0: only at epoch ends) */
  ckptEverySteps: number;
  /** print a log line every N steps */
  logEvery: number;
}

export function defaultConfig(): PretrainConfig {
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
    arch: 'resnet18-cifar',
    width: 1,
    optim: {
      name: 'sgd', lr: 0.05, scaleLr: true, weightDecay: 1e-4, momentum: 0.9, beta1: 0.9, beta2: 0.95,
      schedule: 'cosine', warmupEpochs: 0, minLr: 0, milestones: [], clipGrad: 0,
    },
    moco: { dim: 128, K: 65536, m: 0.999, T: 0.2, mlp: true, symmetric: false, bnSplits: 1 },
    simsiam: { dim: 2048, predDim: 512, fixPredLr: true },
    mae: {
      patchSize: 16, embedDim: 768, depth: 12, numHeads: 12, decoderEmbedDim: 512, decoderDepth: 8, decoderNumHeads: 16,
      maskRatio: 0.75, normPixLoss: true,
    },
    knn: { every: 1, k: 200, t: 0.1, bankSize: null, testSize: null, disabled: false },
    ckptEverySteps: 0,
    logEvery: 20,
  };
}

type Patch = { [K in keyof PretrainConfig]?: PretrainConfig[K] extends object ? Partial<PretrainConfig[K]> : PretrainConfig[K] };

const CIFAR_MAE = { patchSize: 4, embedDim: 192, depth: 12, numHeads: 3, decoderEmbedDim: 128, decoderDepth: 4, decoderNumHeads: 4 };

/** Presets: `${method}/${name}`. ImageNet ones follow the official READMEs; CIFAR ones the MoCo CIFAR demo. */
const PRESETS: Record<string, Patch> = {
  // moco/main_moco.py defaults: ResNet-50, lr 0.03 (batch 256), wd 1e-4, 200 epochs, steps at 120/160
  'moco/v1': {
    arch: 'resnet50', imgSize: 224, augment: 'moco-v1', batchSize: 256, epochs: 200,
    optim: { name: 'sgd', lr: 0.03, scaleLr: false, weightDecay: 1e-4, schedule: 'step', milestones: [120, 160] },
    moco: { dim: 128, K: 65536, m: 0.999, T: 0.07, mlp: false },
  },
  // MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos
  'moco/v2': {
    arch: 'resnet50', imgSize: 224, augment: 'moco-v2', batchSize: 256, epochs: 200,
    optim: { name: 'sgd', lr: 0.03, scaleLr: false, weightDecay: 1e-4, schedule: 'cosine' },
    moco: { dim: 128, K: 65536, m: 0.999, T: 0.2, mlp: true },
  },
  // moco_cifar10_demo: ResNet-18 CIFAR stem, K 4096, m 0.99, T 0.1, lr 0.06 (batch 512), wd 5e-4, cos, bn-splits 8
  'moco/cifar': {
    arch: 'resnet18-cifar', imgSize: 32, augment: 'moco-v2-cifar', batchSize: 512, epochs: 200,
    optim: { name: 'sgd', lr: 0.06, scaleLr: false, weightDecay: 5e-4, schedule: 'cosine' },
    moco: { dim: 128, K: 4096, m: 0.99, T: 0.1, mlp: false, symmetric: false, bnSplits: 8 },
  },
  // simsiam/main_simsiam.py: ResNet-50, batch 512, lr 0.05 * batch / 256, wd 1e-4, fix_pred_lr, 100 epochs
  'simsiam/imagenet': {
    arch: 'resnet50', imgSize: 224, augment: 'simsiam', batchSize: 512, epochs: 100,
    optim: { name: 'sgd', lr: 0.05, scaleLr: true, weightDecay: 1e-4, schedule: 'cosine' },
    simsiam: { dim: 2048, predDim: 512, fixPredLr: true },
  },
  // the paper's CIFAR-10 setting: ResNet-18 CIFAR stem, lr 0.03 * batch / 256, wd 5e-4, batch 512
  'simsiam/cifar': {
    arch: 'resnet18-cifar', imgSize: 32, augment: 'simsiam-cifar', batchSize: 512, epochs: 800,
    optim: { name: 'sgd', lr: 0.03, scaleLr: true, weightDecay: 5e-4, schedule: 'cosine' },
    simsiam: { dim: 2048, predDim: 512, fixPredLr: true },
  },
  // mae PRETRAIN.md: ViT-B/16, blr 1.5e-4, batch 4096, wd 0.05, 800 epochs, 40 warmup, mask 0.75, norm_pix_loss
  'mae/vit-base': {
    arch: 'vit-base', imgSize: 224, augment: 'mae', batchSize: 4096, epochs: 800,
    optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, beta1: 0.9, beta2: 0.95, schedule: 'warmupCosine', warmupEpochs: 40, minLr: 0 },
    mae: { patchSize: 16, embedDim: 768, depth: 12, numHeads: 12, decoderEmbedDim: 512, decoderDepth: 8, decoderNumHeads: 16 },
  },
  'mae/vit-small': {
    arch: 'vit-small', imgSize: 224, augment: 'mae', batchSize: 4096, epochs: 800,
    optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 40 },
    mae: { patchSize: 16, embedDim: 384, depth: 12, numHeads: 6 },
  },
  'mae/vit-tiny': {
    arch: 'vit-tiny', imgSize: 224, augment: 'mae', batchSize: 4096, epochs: 800,
    optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 40 },
    mae: { patchSize: 16, embedDim: 192, depth: 12, numHeads: 3 },
  },
  // CIFAR-sized MAE: ViT-Tiny/4 on 32x32 (64 patches), decoder 128-d x 4
  'mae/cifar': {
    arch: 'vit-tiny', imgSize: 32, augment: 'mae-cifar', batchSize: 256, epochs: 200,
    optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 10 },
    mae: CIFAR_MAE,
  },
};

/**
 * The embedded quick start: Fashion-MNIST from Debian's dataset-fashion-mnist, a few thousand images, a few minutes
 * on two cores. Narrow ResNet-18 (CIFAR stem) for MoCo and SimSiam, a 6-block ViT-Tiny/4 for MAE.
 */
const QUICK: Record<MethodName, Patch> = {
  moco: {
    arch: 'resnet18-cifar', width: 0.25, imgSize: 32, augment: 'moco-v2-cifar', batchSize: 128, epochs: 4, limit: 8192,
    optim: { name: 'sgd', lr: 0.06, scaleLr: false, weightDecay: 5e-4, schedule: 'cosine' },
    moco: { dim: 128, K: 2048, m: 0.99, T: 0.1, mlp: true, symmetric: false, bnSplits: 4 },
    knn: { bankSize: 5000, testSize: 1000 },
  },
  simsiam: {
    arch: 'resnet18-cifar', width: 0.25, imgSize: 32, augment: 'simsiam-cifar', batchSize: 128, epochs: 4, limit: 8192,
    optim: { name: 'sgd', lr: 0.06, scaleLr: true, weightDecay: 5e-4, schedule: 'cosine' },
    simsiam: { dim: 512, predDim: 128, fixPredLr: true },
    knn: { bankSize: 5000, testSize: 1000 },
  },
  mae: {
    arch: 'vit-tiny', imgSize: 32, augment: 'mae-cifar', batchSize: 128, epochs: 4, limit: 8192,
    optim: { name: 'adamw', lr: 1.5e-4 * 4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 1 },
    mae: { ...CIFAR_MAE, depth: 6 },
    knn: { bankSize: 5000, testSize: 1000 },
  },
};

export function presetNames(method: MethodName): string[] {
  return ['quick', ...Object.keys(PRESETS).filter((k) => k.startsWith(`${method}/`)).map((k) => k.slice(method.length + 1))];
}

/** The full default config of a method's preset. */
export function presetConfig(method: MethodName, name: string): PretrainConfig {
  if (!['moco', 'simsiam', 'mae'].includes(method)) {
    throw new Error(`[pretrain] unknown method '${method}'; expected moco, simsiam or mae`);
  }
  const patch = name === 'quick' ? QUICK[method] : PRESETS[`${method}/${name}`];
  if (patch === undefined) {
    throw new Error(`[pretrain] unknown preset '${name}' for ${method}; known: ${presetNames(method).join(', ')}`);
  }
  const base = defaultConfig();
  const out = { ...base, method, preset: name } as PretrainConfig;
  for (const [k, v] of Object.entries(patch) as [keyof PretrainConfig, unknown][]) {
    const cur = base[k];
    (out as unknown as Record<string, unknown>)[k] = typeof cur === 'object' && cur !== null && !Array.isArray(cur)
      ? { ...cur, ...(v as object) } : v;
  }
  return out;
}
