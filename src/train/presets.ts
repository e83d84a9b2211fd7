// Named pretraining presets per method: 'quick' (Fashion-MNIST, minutes on two cores), the CIFAR demo settings and
// the official ImageNet recipes. Method sections come from the methods' own config factories; only what a recipe
// changes is restated here. A new method adds its entry (presets with at least 'quick').
import type { ConfigPatch, MethodName } from './config.js';
import { mocoV1Config, mocoV2Config, mocoCifarConfig } from '../methods/moco.js';
import { simsiamConfig, simsiamCifarConfig } from '../methods/simsiam.js';
import { maeConfig, maeCifarConfig } from '../methods/mae.js';
import { mocoV3ResNetConfig, mocoV3VitConfig } from '../methods/mocov3.js';

/** The quick start's kNN monitor: 5000 bank images, 1000 test images. */
const QUICK_KNN = { bankSize: 5000, testSize: 1000 };

export const PRESETS: Record<MethodName, Record<string, ConfigPatch>> = {
  moco: {
    // the quick start: narrow ResNet-18 (CIFAR stem) on 20,480 Fashion-MNIST images at 20 px, 8 epochs; the CIFAR
    // demo's settings with a linear head (v1's fc) and crops of at least half the image (Fashion-MNIST's centred items
    // keep their outline), and the demo's kNN monitor on the normalised head output. Chosen by measurement (README,
    // "Choosing the quick start"): MoCo beats SimSiam and MoCo v3; the linear head beats the MLP (+2.3 points at 32k
    // images); crop scale 0.5-1 beats 0.2-1; 8 epochs at 20 px beat 6 at 28 px in about the same time (79.95% vs 78.81% on
    // 10,000 test images), and the head output beats the pooled features by 1.7-2.8 points.
    quick: {
      arch: 'resnet18-cifar', width: 0.25, imgSize: 20, augment: 'moco-v2-cifar', cropMin: 0.5, batchSize: 128, epochs: 8, limit: 20480,
      optim: { name: 'sgd', lr: 0.06, scaleLr: false, weightDecay: 5e-4, schedule: 'cosine' },
      moco: { ...mocoCifarConfig(), K: 2048, mlp: false, bnSplits: 4 },
      knn: { ...QUICK_KNN, feature: 'head' },
    },
    // moco_cifar10_demo: ResNet-18 CIFAR stem, lr 0.06 (batch 512), wd 5e-4, cos, 200 epochs, bn-splits 8, its own
    // augmentation (RandomResizedCrop(32) at the default scale 0.08-1) and kNN on the normalised 128-d fc output
    cifar: {
      arch: 'resnet18-cifar', imgSize: 32, augment: 'moco-demo-cifar', batchSize: 512, epochs: 200,
      optim: { name: 'sgd', lr: 0.06, scaleLr: false, weightDecay: 5e-4, schedule: 'cosine' },
      moco: mocoCifarConfig(),
      knn: { k: 200, t: 0.1, feature: 'head' },
    },
    // moco/main_moco.py defaults: ResNet-50, lr 0.03 (batch 256), wd 1e-4, 200 epochs, steps at 120/160; 8 BN splits
    // stand in for the 8 GPUs' shuffling BN
    v1: {
      arch: 'resnet50', imgSize: 224, augment: 'moco-v1', batchSize: 256, epochs: 200,
      optim: { name: 'sgd', lr: 0.03, scaleLr: false, weightDecay: 1e-4, schedule: 'step', milestones: [120, 160] },
      moco: mocoV1Config(),
    },
    // MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos
    v2: {
      arch: 'resnet50', imgSize: 224, augment: 'moco-v2', batchSize: 256, epochs: 200,
      optim: { name: 'sgd', lr: 0.03, scaleLr: false, weightDecay: 1e-4, schedule: 'cosine' },
      moco: mocoV2Config(),
    },
  },
  simsiam: {
    quick: {
      arch: 'resnet18-cifar', width: 0.25, imgSize: 32, augment: 'simsiam-cifar', batchSize: 128, epochs: 4, limit: 8192,
      optim: { name: 'sgd', lr: 0.06, scaleLr: true, weightDecay: 5e-4, schedule: 'cosine' },
      simsiam: { ...simsiamConfig(), dim: 512, predDim: 128 },
      knn: QUICK_KNN,
    },
    // the paper's CIFAR-10 setting (appendix D): ResNet-18 CIFAR stem, lr 0.03 * batch / 256, wd 5e-4, batch 512,
    // 800 epochs, a 2-layer projector
    cifar: {
      arch: 'resnet18-cifar', imgSize: 32, augment: 'simsiam-cifar', batchSize: 512, epochs: 800,
      optim: { name: 'sgd', lr: 0.03, scaleLr: true, weightDecay: 5e-4, schedule: 'cosine' },
      simsiam: simsiamCifarConfig(),
    },
    // simsiam/main_simsiam.py: ResNet-50, batch 512, lr 0.05 * batch / 256, wd 1e-4, fix_pred_lr, 100 epochs
    imagenet: {
      arch: 'resnet50', imgSize: 224, augment: 'simsiam', batchSize: 512, epochs: 100,
      optim: { name: 'sgd', lr: 0.05, scaleLr: true, weightDecay: 1e-4, schedule: 'cosine' },
      simsiam: simsiamConfig(),
    },
  },
  mae: {
    // a 6-block ViT-Tiny/4 on 32x32 Fashion-MNIST
    quick: {
      arch: 'vit-d192-depth6-heads3-patch4', imgSize: 32, augment: 'mae-cifar', batchSize: 128, epochs: 4, limit: 8192,
      optim: { name: 'adamw', lr: 1.5e-4 * 4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 1 },
      mae: maeCifarConfig(),
      knn: QUICK_KNN,
    },
    // CIFAR-sized MAE: ViT-Tiny/4 on 32x32 (64 patches), decoder 128-d x 4
    cifar: {
      arch: 'vit-tiny-patch4', imgSize: 32, augment: 'mae-cifar', batchSize: 256, epochs: 200,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 10 },
      mae: maeCifarConfig(),
    },
    // mae PRETRAIN.md: ViT-B/16, blr 1.5e-4, batch 4096, wd 0.05, 800 epochs, 40 warmup, mask 0.75, norm_pix_loss
    'vit-base': {
      arch: 'vit-base', imgSize: 224, augment: 'mae', batchSize: 4096, epochs: 800,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, beta1: 0.9, beta2: 0.95, schedule: 'warmupCosine', warmupEpochs: 40, minLr: 0 },
      mae: maeConfig(),
    },
    'vit-small': {
      arch: 'vit-small', imgSize: 224, augment: 'mae', batchSize: 4096, epochs: 800,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 40 },
      mae: maeConfig(),
    },
    'vit-tiny': {
      arch: 'vit-tiny', imgSize: 224, augment: 'mae', batchSize: 4096, epochs: 800,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.05, schedule: 'warmupCosine', warmupEpochs: 40 },
      mae: maeConfig(),
    },
  },
  mocov3: {
    // narrow ResNet-18 (CIFAR stem) on 8192 Fashion-MNIST images: the ResNet recipe (LARS, T 1.0) with smaller MLPs
    quick: {
      arch: 'resnet18-cifar', width: 0.25, imgSize: 32, augment: 'moco-v3-cifar', batchSize: 128, epochs: 4, limit: 8192,
      optim: { name: 'lars', lr: 0.6, scaleLr: true, weightDecay: 1e-6, momentum: 0.9, schedule: 'warmupCosine', warmupEpochs: 1, minLr: 0 },
      mocov3: { ...mocoV3ResNetConfig(), dim: 128, mlpDim: 512 },
      knn: QUICK_KNN,
    },
    // CONFIG.md, ResNet-50 100 epochs: main_moco.py's defaults (LARS lr 0.6 x batch/256, wd 1e-6, batch 4096, 10 warmup
    // epochs, dim 256, mlp 4096, T 1.0, m 0.99) with --moco-m-cos --crop-min=.2
    resnet50: {
      arch: 'resnet50', imgSize: 224, augment: 'moco-v3', cropMin: 0.2, batchSize: 4096, epochs: 100,
      optim: { name: 'lars', lr: 0.6, scaleLr: true, weightDecay: 1e-6, momentum: 0.9, schedule: 'warmupCosine', warmupEpochs: 10, minLr: 0 },
      mocov3: mocoV3ResNetConfig(),
    },
    // CONFIG.md ViT-Small, 1 node: -a vit_small -b 1024 --optimizer=adamw --lr=1.5e-4 --weight-decay=.1 --epochs=300
    // --warmup-epochs=40 --stop-grad-conv1 --moco-m-cos --moco-t=.2; vits.py's vit_small has 12 heads
    'vit-small': {
      arch: 'vit-d384-depth12-heads12', imgSize: 224, augment: 'moco-v3', cropMin: 0.08, batchSize: 1024, epochs: 300,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.1, beta1: 0.9, beta2: 0.999, schedule: 'warmupCosine', warmupEpochs: 40, minLr: 0 },
      mocov3: mocoV3VitConfig(),
    },
    // CONFIG.md ViT-Base: the ViT-Small flags at main_moco.py's default batch 4096
    'vit-base': {
      arch: 'vit-base', imgSize: 224, augment: 'moco-v3', cropMin: 0.08, batchSize: 4096, epochs: 300,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.1, beta1: 0.9, beta2: 0.999, schedule: 'warmupCosine', warmupEpochs: 40, minLr: 0 },
      mocov3: mocoV3VitConfig(),
    },
    // CIFAR-sized (MoCo v3 has no official CIFAR recipe): the ViT recipe on ViT-Tiny/4 (32 px, 64 patches), the moco-v3
    // augmentation without blur, batch 512, 200 epochs with 20 warmup
    cifar: {
      arch: 'vit-tiny-patch4', imgSize: 32, augment: 'moco-v3-cifar', batchSize: 512, epochs: 200,
      optim: { name: 'adamw', lr: 1.5e-4, scaleLr: true, weightDecay: 0.1, beta1: 0.9, beta2: 0.999, schedule: 'warmupCosine', warmupEpochs: 20, minLr: 0 },
      mocov3: mocoV3VitConfig(),
    },
  },
};
