// selfsup's public API: the tensor engine, layers and optimizers, backbones, the three methods and their trainer.
export * as T from './tensor/index.js';
export * from './nn/module.js';
export * from './nn/layers.js';
export * from './nn/transformer.js';
export * from './optim/index.js';
export * from './models/index.js';
export { MoCo, SplitBatchNorm2d, mocoV1Config, mocoV2Config, mocoCifarConfig, mocoLinearRecipe, type MocoConfig } from './methods/moco.js';
export { SimSiam, simsiamConfig, simsiamLinearRecipe, outputStd, type SimSiamConfig } from './methods/simsiam.js';
export { MaskedAutoencoderViT, maeConfig, maeCifarConfig, maeModelConfig, maeVitBasePatch16, maeVitSmallPatch16, maeVitTinyPatch16, maeVitTinyPatch4, vitFromMae, type MaeConfig, type MaeMethodConfig } from './methods/mae.js';
export { backboneStateDict, type Method, type MethodSpec, type TrainingStepOutput, type FrozenBackbone } from './methods/method.js';
export { METHODS, METHOD_NAMES, methodSpec, buildMethod, type MethodName } from './methods/registry.js';
export { defaultConfig, presetConfig, presetNames, type PretrainConfig, type TrainConfig } from './train/config.js';
export { pretrain, trainStep, buildOptimizer, monitorFeatures, type PretrainResult } from './train/pretrain.js';
export { saveCheckpoint, loadCheckpoint, loadModelWeights } from './train/checkpoint.js';
export { knnClassify } from './eval/knn.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { engineReport, engineSummary, type EngineReport } from './cli/doctor.js';
