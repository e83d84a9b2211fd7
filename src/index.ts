// selfsup's public API: the tensor engine, layers and optimizers, backbones, the three methods and their trainer.
export * as T from './tensor/index.js';
export * from './nn/module.js';
export * from './nn/layers.js';
export * from './nn/transformer.js';
export * from './optim/index.js';
export * from './models/index.js';
export { MoCo, SplitBatchNorm2d, mocoV1Config, mocoV2Config, mocoCifarConfig, type MocoConfig } from './methods/moco.js';
export { SimSiam, simsiamConfig, outputStd, type SimSiamConfig } from './methods/simsiam.js';
export { MaskedAutoencoderViT, maeVitBasePatch16, maeVitSmallPatch16, maeVitTinyPatch16, maeVitTinyPatch4, type MaeConfig } from './methods/mae.js';
export { defaultConfig, presetConfig, presetNames, type PretrainConfig, type MethodName } from './methods/config.js';
export { pretrain, buildMethod, trainStep, monitorFeatures, type PretrainResult } from './methods/pretrain.js';
export { saveCheckpoint, loadCheckpoint, loadModelWeights } from './methods/checkpoint.js';
export { knnClassify } from './eval/knn.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { engineReport, engineSummary, type EngineReport } from './cli/doctor.js';
