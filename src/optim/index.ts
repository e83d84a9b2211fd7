// Optimizers (SGD, LARS, AdamW) over parameter groups, lr schedules, gradient clipping and group builders.
export {
  Optimizer, floatData, setFusedOptimizers, type FusedItem,
  type CommonGroupOptions, type ParamGroup, type BasicGroupInit, type ParamGroupInit, type ParamsInit,
  type GroupValue, type OptimizerKind, type OptimizerStateDict, type OptimizerStateMeta, type ParamState,
} from './optimizer.js';
export { SGD, type SGDHyper, type SGDOptions } from './sgd.js';
export { LARS, type LARSHyper, type LARSOptions } from './lars.js';
export { AdamW, type AdamWHyper, type AdamWOptions } from './adamw.js';
export { clipGradNorm, type ClipGradNormOptions } from './clip.js';
export { scheduledLr, adjustLearningRate, mocoMomentum, type LrSchedule, type ScheduledGroup } from './schedule.js';
export { weightDecayGroups, layerDecayGroups, vitLayerId, type NamedParameters, type DecayGroup, type LayerDecayOptions } from './groups.js';
