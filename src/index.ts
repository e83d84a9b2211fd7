// selfsup's public API (docs/api.md): the tensor engine, layers and optimizers, backbones, the methods behind one
// Method interface, data loading and augmentation, the training step and loop, checkpoints and evaluation. Named
// exports only: what is not listed here is internal and may change.

// ---- tensors, layers, optimizers, backbones
export * as T from './tensor/index.js';
export { Module, type Layer, type Factory, type StateDict, type LoadReport, type LoadOptions } from './nn/module.js';
export * from './nn/layers.js';
export { Attention, Block, Mlp, type AttentionOptions } from './nn/transformer.js';
export * as init from './nn/init.js';
export * from './optim/index.js';
export * from './models/index.js';

// ---- methods
export { backboneStateDict, type Method, type MethodSpec, type TrainingStepOutput, type TrainingProgress, type FrozenBackbone } from './methods/method.js';
export { METHODS, METHOD_NAMES, methodSpec, buildMethod, type MethodName, type MethodSections } from './methods/registry.js';
export { buildBackbone, BACKBONES, type BackboneOptions } from './methods/backbones.js';
export {
  MoCo, SplitBatchNorm2d, mocoV1Config, mocoV2Config, mocoCifarConfig, mocoLinearRecipe, mocoKeys, type MocoConfig,
} from './methods/moco.js';
export { SimSiam, simsiamConfig, simsiamLinearRecipe, simsiamKeys, outputStd, type SimSiamConfig } from './methods/simsiam.js';
export {
  MaskedAutoencoderViT, maeConfig, maeCifarConfig, maeModelConfig, maeVitBasePatch16, maeVitSmallPatch16, maeVitTinyPatch16,
  maeVitTinyPatch4, vitFromMae, maeKeys, type MaeConfig, type MaeMethodConfig,
} from './methods/mae.js';
export {
  MoCoV3, buildMlp, mocoV3Vit, mocoV3ResNetConfig, mocoV3VitConfig, mocoV3LinearRecipe, type MocoV3Config, type KeyGather,
} from './methods/mocov3.js';

// ---- data: datasets, the loader, transforms and augmentation presets
export {
  imageFolder, cifar10, cifar100, mnist, fashionMnist, cacheDecoded, DEBIAN_FASHION_MNIST_DIR, CIFAR10_CLASSES,
  FASHION_MNIST_CLASSES, type Dataset, type ImageFolderOptions, type CifarOptions, type MnistOptions,
} from './data/datasets.js';
export { openDataset, subset, evalTransform } from './data/open.js';
export { DataLoader, type Batch, type DataLoaderOptions } from './data/loader.js';
export {
  Compose, RandomApply, RandomResizedCrop, Resize, CenterCrop, RandomHorizontalFlip, ColorJitter, RandomGrayscale,
  GaussianBlur, Solarize, ToTensor, Normalize, MultiView, buildTransform, twoCrops,
  type Transform, type TransformSpec, type ViewsSpec,
} from './data/transforms.js';
export {
  preset as augmentationPreset, presetNormalization, PRESET_NAMES as AUGMENTATION_PRESETS, IMAGENET_MEAN, IMAGENET_STD,
  CIFAR_MEAN, CIFAR_STD,
} from './data/presets.js';
export { mixupBatch, type MixupOptions } from './data/mixup.js';

// ---- training
export {
  defaultConfig, presetConfig, presetNames, checkResumeConfig, RESUMABLE_KEYS, type PretrainConfig, type TrainConfig,
} from './train/config.js';
export {
  pretrain, trainStep, buildOptimizer, monitorFeatures, extract as extractFeatures, NonFiniteLossError,
  type PretrainResult, type PretrainCallbacks, type StepResult,
} from './train/pretrain.js';
export { saveCheckpoint, loadCheckpoint, loadModelWeights, type TrainState } from './train/checkpoint.js';

// ---- evaluation and files
export { knnClassify, type KnnOptions, type KnnResult } from './eval/knn.js';
export { linearProbe, linearHead, type LinearRecipe, type LinearResult } from './eval/linear.js';
export { finetune, finetuneModel, finetuneRecipe, type FinetuneRecipe } from './eval/finetune.js';
export {
  readSafetensors, writeSafetensors, saveModule, loadModule, stripPrefix, composeKeyMaps, mocoV3Keys, mocoV3PretrainKeys, type KeyMap,
} from './io/safetensors.js';
export { engineReport, engineSummary, type EngineReport } from './cli/doctor.js';
