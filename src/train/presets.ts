// Named pretraining presets per method: 'quick' (Fashion-MNIST, minutes on two cores), the CIFAR demo settings and
// the official ImageNet recipes. Method sections come from the methods' own config factories; only what a recipe
// changes is restated here. A new method adds its entry (presets with at least 'quick').
import type { ConfigPatch, MethodName } from './config.js';
import { mocoV1Config, mocoV2Config, mocoCifarConfig } from '../methods/moco.js';
import { simsiamConfig } from '../methods/simsiam.js';
import { maeConfig, maeCifarConfig } from '../methods/mae.js';

/** The quick start's kNN monitor: 5000 bank images, 1000 test images. */
const QUICK_KNN = { bankSize: 5000, testSize: 1000 };

export const PRESETS: Record<MethodName, Record<string, ConfigPatch>> = {
  moco: {
    // narrow ResNet-18 (CIFAR stem) on 8192 Fashion-MNIST images; the CIFAR demo's settings with an MLP head
    quick: {
      arch: 'resnet18-cifar', width: 0.25, imgSize: 32, augment: 'moco-v2-cifar', batchSize: 128, epochs: 4, limit: 8192,
      optim: { name: 'sgd', lr: 0.06, scaleLr: false, weightDecay: 5e-4, schedule: 'cosine' },
      moco: { ...mocoCifarConfig(), K: 2048, mlp: true, bnSplits: 4 },
      knn: QUICK_KNN,
    },
    // moco_cifar10_demo: ResNet-18 CIFAR stem, lr 0.06 (batch 512), wd 5e-4, cos, 200 epochs
    cifar: {
      arch: 'resnet18-cifar', imgSize: 32, augment: 'moco-v2-cifar', batchSize: 512, epochs: 200,
      optim: { name: 'sgd', lr: 0.06, scaleLr: false, weightDecay: 5e-4, schedule: 'cosine' },
      moco: mocoCifarConfig(),
    },
    // moco/main_moco.py defaults: ResNet-50, lr 0.03 (batch 256), wd 1e-4, 200 epochs, steps at 120/160
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
    // the paper's CIFAR-10 setting: ResNet-18 CIFAR stem, lr 0.03 * batch / 256, wd 5e-4, batch 512
    cifar: {
      arch: 'resnet18-cifar', imgSize: 32, augment: 'simsiam-cifar', batchSize: 512, epochs: 800,
      optim: { name: 'sgd', lr: 0.03, scaleLr: true, weightDecay: 5e-4, schedule: 'cosine' },
      simsiam: simsiamConfig(),
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
};
