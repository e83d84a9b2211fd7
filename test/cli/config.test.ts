// `selfsup config` prints the resolved configuration; every preset's key values are checked against the official
// sources they cite (facebookresearch/moco main_moco.py + the CIFAR-10 demo notebook, simsiam main_simsiam.py + the
// paper's appendix D, mae PRETRAIN.md + main_pretrain.py, moco-v3 main_moco.py + CONFIG.md), augmentation included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { runConfig } from '../../src/cli/config.js';
import { METHOD_NAMES } from '../../src/methods/registry.js';
import { presetConfig, presetNames, type PretrainConfig } from '../../src/train/config.js';
import { pretrain } from '../../src/train/pretrain.js';
import { preset as augmentationPreset } from '../../src/data/presets.js';
import type { TransformSpec } from '../../src/data/transforms.js';

const BIN = fileURLToPath(new URL('../../bin/selfsup.js', import.meta.url));

/** The parameters of an augmentation that recipes differ in, read from its first (and, for MoCo v3, second) view. */
function augmentation(cfg: PretrainConfig): Record<string, unknown> {
  const spec = augmentationPreset(cfg.augment, { size: cfg.imgSize, ...(cfg.cropMin !== null ? { cropMin: cfg.cropMin } : {}) });
  const out: Record<string, unknown> = { views: spec.views.length };
  spec.views.forEach((v, i) => {
    const walk = (t: TransformSpec, p: number): void => {
      const key = (k: string): string => (i === 0 ? k : `${k}2`);
      switch (t.name) {
        case 'Compose': t.transforms.forEach((c) => walk(c, p)); break;
        case 'RandomApply': t.transforms.forEach((c) => walk(c, t.p ?? 0.5)); break;
        case 'RandomResizedCrop': out[key('crop')] = [t.size, ...(t.scale ?? [0.08, 1]), t.interpolation ?? 'bilinear']; break;
        case 'ColorJitter': out[key('jitter')] = [t.brightness, t.contrast, t.saturation, t.hue, p]; break;
        case 'RandomGrayscale': out[key('gray')] = t.p; break;
        case 'GaussianBlur': out[key('blur')] = [...(t.sigma ?? [0.1, 2]), p]; break;
        case 'Solarize': out[key('solarize')] = p; break;
        case 'RandomHorizontalFlip': out[key('flip')] = t.p ?? 0.5; break;
        case 'Normalize': out[key('mean')] = t.mean[0]; break;
        default: break;
      }
    };
    walk(v, 1);
  });
  return out;
}

/** Reads dotted keys of the resolved config (and `aug.*` of its augmentation). */
function pick(cfg: PretrainConfig, keys: readonly string[]): Record<string, unknown> {
  const aug = augmentation(cfg);
  return Object.fromEntries(keys.map((k) => [k, k.startsWith('aug.') ? aug[k.slice(4)]
    : k.split('.').reduce<unknown>((o, p) => (o as Record<string, unknown>)[p], cfg)]));
}

const IMAGENET_MEAN = 0.485;
const CIFAR_MEAN = 0.4914;
// moco/main_moco.py (no --aug-plus): RandomResizedCrop(224, scale=(0.2, 1.)), RandomGrayscale(p=0.2),
// ColorJitter(0.4, 0.4, 0.4, 0.4), RandomHorizontalFlip()
const MOCO_V1_AUG = { 'aug.views': 2, 'aug.crop': [224, 0.2, 1, 'bilinear'], 'aug.jitter': [0.4, 0.4, 0.4, 0.4, 1], 'aug.gray': 0.2, 'aug.flip': 0.5, 'aug.mean': IMAGENET_MEAN };
// --aug-plus (MoCo v2, and simsiam/main_simsiam.py): jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2, blur [.1, 2.] p 0.5
const MOCO_V2_AUG = { 'aug.views': 2, 'aug.crop': [224, 0.2, 1, 'bilinear'], 'aug.jitter': [0.4, 0.4, 0.4, 0.1, 0.8], 'aug.gray': 0.2, 'aug.blur': [0.1, 2, 0.5], 'aug.flip': 0.5, 'aug.mean': IMAGENET_MEAN };
// moco-v3/main_moco.py: BYOL's pair, jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grey 0.2, blur 1.0 / 0.1, solarize 0 / 0.2
const mocoV3Aug = (size: number, cropMin: number, blur: boolean, mean: number): Record<string, unknown> => ({
  'aug.views': 2, 'aug.crop': [size, cropMin, 1, 'bilinear'], 'aug.crop2': [size, cropMin, 1, 'bilinear'],
  'aug.jitter': [0.4, 0.4, 0.2, 0.1, 0.8], 'aug.jitter2': [0.4, 0.4, 0.2, 0.1, 0.8], 'aug.gray': 0.2, 'aug.gray2': 0.2,
  'aug.blur': blur ? [0.1, 2, 1] : undefined, 'aug.blur2': blur ? [0.1, 2, 0.1] : undefined, 'aug.solarize': undefined, 'aug.solarize2': 0.2,
  'aug.flip': 0.5, 'aug.flip2': 0.5, 'aug.mean': mean,
});
// mae/main_pretrain.py: RandomResizedCrop(224, scale=(0.2, 1.0), interpolation=3) + flip, one view
const maeAug = (size: number, mean: number): Record<string, unknown> => ({ 'aug.views': 1, 'aug.crop': [size, 0.2, 1, 'bicubic'], 'aug.flip': 0.5, 'aug.mean': mean });

/** Every preset with the official values it must hold: `${method}/${preset}` -> key -> value. */
const OFFICIAL: Record<string, Record<string, unknown>> = {
  // ---- facebookresearch/moco main_moco.py defaults: -a resnet50, --lr 0.03, -b 256, --wd 1e-4, --momentum 0.9,
  // --epochs 200, --schedule 120 160, --moco-dim 128, --moco-k 65536, --moco-m 0.999, --moco-t 0.07; 8 GPUs
  'moco/v1': {
    arch: 'resnet50', imgSize: 224, 'optim.name': 'sgd', 'optim.lr': 0.03, 'optim.scaleLr': false, batchSize: 256, 'optim.weightDecay': 1e-4,
    'optim.momentum': 0.9, epochs: 200, 'optim.schedule': 'step', 'optim.milestones': [120, 160], 'moco.dim': 128, 'moco.K': 65536,
    'moco.m': 0.999, 'moco.T': 0.07, 'moco.mlp': false, 'moco.symmetric': false, 'moco.bnSplits': 8, ...MOCO_V1_AUG,
  },
  // MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos
  'moco/v2': {
    arch: 'resnet50', imgSize: 224, 'optim.name': 'sgd', 'optim.lr': 0.03, 'optim.scaleLr': false, batchSize: 256, 'optim.weightDecay': 1e-4,
    'optim.momentum': 0.9, epochs: 200, 'optim.schedule': 'cosine', 'moco.dim': 128, 'moco.K': 65536, 'moco.m': 0.999, 'moco.T': 0.2,
    'moco.mlp': true, 'moco.symmetric': false, 'moco.bnSplits': 8, ...MOCO_V2_AUG,
  },
  // moco_cifar10_demo.ipynb: resnet18 (conv1 3x3, no max-pool), --lr 0.06, -b 512, --wd 5e-4, --cos, --epochs 200,
  // --moco-dim 128, --moco-k 4096, --moco-m 0.99, --moco-t 0.1, --bn-splits 8, asymmetric, --knn-k 200 --knn-t 0.1;
  // train_transform: RandomResizedCrop(32), flip, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2; kNN on F.normalize(net(x))
  'moco/cifar': {
    arch: 'resnet18-cifar', width: 1, imgSize: 32, 'optim.name': 'sgd', 'optim.lr': 0.06, 'optim.scaleLr': false, batchSize: 512,
    'optim.weightDecay': 5e-4, 'optim.momentum': 0.9, epochs: 200, 'optim.schedule': 'cosine', 'moco.dim': 128, 'moco.K': 4096,
    'moco.m': 0.99, 'moco.T': 0.1, 'moco.mlp': false, 'moco.symmetric': false, 'moco.bnSplits': 8, 'knn.k': 200, 'knn.t': 0.1,
    'knn.feature': 'head', 'aug.views': 2, 'aug.crop': [32, 0.08, 1, 'bilinear'], 'aug.jitter': [0.4, 0.4, 0.4, 0.1, 0.8], 'aug.gray': 0.2,
    'aug.blur': undefined, 'aug.flip': 0.5, 'aug.mean': CIFAR_MEAN,
  },
  // the quick start keeps the demo's method values on a narrow net with a smaller queue, a linear head (the demo's),
  // crops of at least half the image at 20 px, and the demo's kNN monitor on the head output
  'moco/quick': {
    arch: 'resnet18-cifar', 'optim.lr': 0.06, 'optim.weightDecay': 5e-4, 'moco.m': 0.99, 'moco.T': 0.1, 'moco.dim': 128, 'moco.mlp': false,
    'knn.k': 200, 'knn.t': 0.1, 'knn.feature': 'head', 'aug.crop': [20, 0.5, 1, 'bilinear'], 'aug.jitter': [0.4, 0.4, 0.4, 0.1, 0.8], 'aug.flip': 0.5, 'aug.mean': CIFAR_MEAN,
  },
  // ---- facebookresearch/simsiam main_simsiam.py: -a resnet50, --lr 0.05 (init_lr = lr * b / 256), -b 512, --wd 1e-4,
  // --momentum 0.9, --epochs 100, --dim 2048, --pred-dim 512, --fix-pred-lr, cosine; the --aug-plus list
  'simsiam/imagenet': {
    arch: 'resnet50', imgSize: 224, 'optim.name': 'sgd', 'optim.lr': 0.05, 'optim.scaleLr': true, batchSize: 512, 'optim.weightDecay': 1e-4,
    'optim.momentum': 0.9, epochs: 100, 'optim.schedule': 'cosine', 'simsiam.dim': 2048, 'simsiam.predDim': 512, 'simsiam.fixPredLr': true,
    'simsiam.projLayers': 3, ...MOCO_V2_AUG,
  },
  // the paper's appendix D (CIFAR-10): ResNet-18 CIFAR variant, lr 0.03 x b/256, wd 5e-4, momentum 0.9, b 512,
  // 800 epochs, a 2-layer projector, the ImageNet augmentation at 32 px without blur
  'simsiam/cifar': {
    arch: 'resnet18-cifar', width: 1, imgSize: 32, 'optim.name': 'sgd', 'optim.lr': 0.03, 'optim.scaleLr': true, batchSize: 512,
    'optim.weightDecay': 5e-4, 'optim.momentum': 0.9, epochs: 800, 'optim.schedule': 'cosine', 'simsiam.dim': 2048, 'simsiam.predDim': 512,
    'simsiam.projLayers': 2, 'simsiam.fixPredLr': true, 'aug.crop': [32, 0.2, 1, 'bilinear'], 'aug.jitter': [0.4, 0.4, 0.4, 0.1, 0.8], 'aug.gray': 0.2,
    'aug.blur': undefined, 'aug.mean': CIFAR_MEAN,
  },
  'simsiam/quick': { arch: 'resnet18-cifar', 'optim.scaleLr': true, 'optim.weightDecay': 5e-4, 'simsiam.fixPredLr': true, 'simsiam.projLayers': 3 },
  // ---- facebookresearch/mae PRETRAIN.md: --batch_size 64 x 8 nodes x 8 GPUs = 4096, --blr 1.5e-4, --weight_decay 0.05,
  // --epochs 800, --warmup_epochs 40, --mask_ratio 0.75, --norm_pix_loss; AdamW betas (0.9, 0.95); decoder 512 x 8, 16 heads
  'mae/vit-base': {
    arch: 'vit-base', imgSize: 224, 'optim.name': 'adamw', 'optim.lr': 1.5e-4, 'optim.scaleLr': true, batchSize: 4096, 'optim.weightDecay': 0.05,
    'optim.beta1': 0.9, 'optim.beta2': 0.95, epochs: 800, 'optim.schedule': 'warmupCosine', 'optim.warmupEpochs': 40, 'optim.minLr': 0,
    'mae.maskRatio': 0.75, 'mae.normPixLoss': true, 'mae.decoderEmbedDim': 512, 'mae.decoderDepth': 8, 'mae.decoderNumHeads': 16, ...maeAug(224, IMAGENET_MEAN),
  },
  // smaller encoders under the ViT-Base recipe (MAE publishes base, large, huge)
  'mae/vit-small': { arch: 'vit-small', 'optim.lr': 1.5e-4, batchSize: 4096, 'optim.weightDecay': 0.05, 'optim.beta2': 0.95, epochs: 800, 'optim.warmupEpochs': 40, 'mae.maskRatio': 0.75, ...maeAug(224, IMAGENET_MEAN) },
  'mae/vit-tiny': { arch: 'vit-tiny', 'optim.lr': 1.5e-4, batchSize: 4096, 'optim.weightDecay': 0.05, 'optim.beta2': 0.95, epochs: 800, 'optim.warmupEpochs': 40, 'mae.maskRatio': 0.75, ...maeAug(224, IMAGENET_MEAN) },
  'mae/cifar': { arch: 'vit-tiny-patch4', imgSize: 32, 'optim.lr': 1.5e-4, 'optim.weightDecay': 0.05, 'optim.beta2': 0.95, 'mae.maskRatio': 0.75, 'mae.normPixLoss': true, ...maeAug(32, CIFAR_MEAN) },
  'mae/quick': { 'optim.name': 'adamw', 'optim.weightDecay': 0.05, 'mae.maskRatio': 0.75, 'mae.normPixLoss': true, ...maeAug(32, CIFAR_MEAN) },
  // ---- facebookresearch/moco-v3 main_moco.py defaults: -a resnet50, -b 4096, --lr 0.6 (x b/256), --wd 1e-6, --momentum 0.9,
  // --epochs 100, --warmup-epochs 10, --moco-dim 256, --moco-mlp-dim 4096, --moco-m 0.99, --moco-t 1.0, LARS;
  // CONFIG.md's 100-epoch run adds --moco-m-cos --crop-min=.2
  'mocov3/resnet50': {
    arch: 'resnet50', imgSize: 224, 'optim.name': 'lars', 'optim.lr': 0.6, 'optim.scaleLr': true, batchSize: 4096, 'optim.weightDecay': 1e-6,
    'optim.momentum': 0.9, epochs: 100, 'optim.schedule': 'warmupCosine', 'optim.warmupEpochs': 10, 'optim.minLr': 0, 'mocov3.dim': 256,
    'mocov3.mlpDim': 4096, 'mocov3.m': 0.99, 'mocov3.mCos': true, 'mocov3.T': 1.0, 'mocov3.stopGradConv1': false, cropMin: 0.2,
    ...mocoV3Aug(224, 0.2, true, IMAGENET_MEAN),
  },
  // CONFIG.md ViT-Small: -a vit_small -b 1024 --optimizer=adamw --lr=1.5e-4 --weight-decay=.1 --epochs=300 --warmup-epochs=40
  // --stop-grad-conv1 --moco-m-cos --moco-t=.2 (AdamW's default betas); vits.py: 384-d, depth 12, 12 heads
  'mocov3/vit-small': {
    arch: 'vit-d384-depth12-heads12', imgSize: 224, 'optim.name': 'adamw', 'optim.lr': 1.5e-4, 'optim.scaleLr': true, batchSize: 1024,
    'optim.weightDecay': 0.1, 'optim.beta1': 0.9, 'optim.beta2': 0.999, epochs: 300, 'optim.schedule': 'warmupCosine', 'optim.warmupEpochs': 40,
    'mocov3.dim': 256, 'mocov3.mlpDim': 4096, 'mocov3.m': 0.99, 'mocov3.mCos': true, 'mocov3.T': 0.2, 'mocov3.stopGradConv1': true, cropMin: 0.08,
    ...mocoV3Aug(224, 0.08, true, IMAGENET_MEAN),
  },
  // CONFIG.md ViT-Base: the same flags at main_moco.py's default -b 4096
  'mocov3/vit-base': {
    arch: 'vit-base', imgSize: 224, 'optim.name': 'adamw', 'optim.lr': 1.5e-4, 'optim.scaleLr': true, batchSize: 4096, 'optim.weightDecay': 0.1,
    'optim.beta1': 0.9, 'optim.beta2': 0.999, epochs: 300, 'optim.schedule': 'warmupCosine', 'optim.warmupEpochs': 40, 'mocov3.dim': 256,
    'mocov3.mlpDim': 4096, 'mocov3.m': 0.99, 'mocov3.mCos': true, 'mocov3.T': 0.2, 'mocov3.stopGradConv1': true, ...mocoV3Aug(224, 0.08, true, IMAGENET_MEAN),
  },
  // no official CIFAR recipe: the ViT recipe's method values on ViT-Tiny/4, the moco-v3 augmentation without blur
  'mocov3/cifar': {
    arch: 'vit-tiny-patch4', imgSize: 32, 'optim.name': 'adamw', 'optim.lr': 1.5e-4, 'optim.weightDecay': 0.1, 'optim.beta2': 0.999,
    'mocov3.T': 0.2, 'mocov3.m': 0.99, 'mocov3.mCos': true, 'mocov3.stopGradConv1': true, ...mocoV3Aug(32, 0.08, false, CIFAR_MEAN),
  },
  'mocov3/quick': { arch: 'resnet18-cifar', 'optim.name': 'lars', 'optim.lr': 0.6, 'optim.weightDecay': 1e-6, 'mocov3.T': 1.0, 'mocov3.m': 0.99, 'mocov3.mCos': true },
};

test('every preset holds the official values of the recipe it cites (lr, batch, wd, momentum, T, K, splits, augmentation, epochs, warmup)', () => {
  const all = METHOD_NAMES.flatMap((m) => presetNames(m).map((p) => `${m}/${p}`));
  assert.deepEqual(all.filter((k) => !(k in OFFICIAL)), [], 'a preset without official values to check: add it to OFFICIAL');
  assert.deepEqual(Object.keys(OFFICIAL).filter((k) => !all.includes(k)), [], 'OFFICIAL lists a preset that does not exist');
  for (const [key, expected] of Object.entries(OFFICIAL)) {
    const [method, name] = key.split('/') as [string, string];
    const cfg = runConfig({ method, preset: name });
    assert.deepEqual(pick(cfg, Object.keys(expected)), expected, key);
  }
});

test('selfsup config prints the resolved JSON, --set applies, and unknown methods, presets and keys are refused', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BIN, 'config', '--method', 'moco', '--preset', 'cifar', '--set', 'moco.K=8192'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const cfg = JSON.parse(r.stdout) as PretrainConfig;
  assert.equal(cfg.method, 'moco');
  assert.equal(cfg.preset, 'cifar');
  assert.equal(cfg.moco.K, 8192);
  assert.equal(cfg.moco.T, 0.1);
  assert.deepEqual(runConfig({ method: 'moco', preset: 'cifar', set: ['moco.K=8192'] }), cfg, 'the command prints what runConfig resolves');
  assert.throws(() => runConfig({ method: 'byol', preset: 'quick' }), /unknown method 'byol'/);
  assert.throws(() => runConfig({ method: 'mocov3', preset: 'vit-huge' }), /unknown preset 'vit-huge' for mocov3/);
  assert.throws(() => runConfig({ method: 'mocov3', preset: 'quick', set: ['mocov3.tau=1'] }), /mocov3\.tau/);
});

test('values out of range are refused by key (and flag) before anything is built or written', async () => {
  const refused: [string, RegExp][] = [
    ['epochs=-1', /^\[pretrain\] epochs \(--epochs\) must be a non-negative integer, got -1$/],
    ['epochs=1.5', /^\[pretrain\] epochs \(--epochs\) must be a non-negative integer, got 1\.5$/],
    ['batchSize=0', /^\[pretrain\] batchSize \(--batch-size\) must be an integer >= 1, got 0$/],
    ['optim.lr=-0.1', /^\[pretrain\] optim\.lr \(--lr\) must be a finite number >= 0, got -0\.1$/],
    ['optim.beta2=1', /^\[pretrain\] optim\.beta2 must be in \[0, 1\), got 1$/],
    ['width=0', /^\[pretrain\] width must be a positive number, got 0$/],
    ['cropMin=0', /^\[pretrain\] cropMin must be in \(0, 1\] or null, got 0$/],
    ['knn.k=0', /^\[pretrain\] knn\.k must be an integer >= 1, got 0$/],
    ['knn.t=0', /^\[pretrain\] knn\.t must be a positive number, got 0$/],
    ['logEvery=0', /^\[pretrain\] logEvery must be an integer >= 1, got 0$/],
  ];
  for (const [set, msg] of refused) {
    assert.throws(() => runConfig({ method: 'moco', preset: 'quick', set: [set] }), (e: Error) => msg.test(e.message), set);
  }
  // the library entry point checks too, before it creates the run folder
  const out = join(mkdtempSync(join(tmpdir(), 'selfsup-cfg-')), 'run');
  await assert.rejects(pretrain({ ...presetConfig('moco', 'quick'), batchSize: 0, out }), /batchSize \(--batch-size\) must be an integer >= 1/);
  assert.equal(existsSync(out), false);
  // the command line: a clear message and exit status 1, no config printed first
  const r = spawnSync(process.execPath, ['--import', 'tsx', BIN, 'pretrain', '--epochs', '-1', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /\[pretrain\] epochs \(--epochs\) must be a non-negative integer, got -1/);
  assert.doesNotMatch(r.stdout, /"batchSize"/);
  assert.equal(existsSync(out), false);
});
