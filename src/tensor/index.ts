// The tensor engine's public surface: tensors, autograd, ops, devices and random numbers.
import './methods.js';
export { Tensor, Storage, tidy, keep, empty, sizeOf, contiguousStrides, fmtShape, type Shape } from './tensor.js';
export { noGrad, isGradEnabled, type GradNode, type BackwardOptions } from './autograd.js';
export * from './ops.js';
export * from './composite.js';
export { Rng, manualSeed, globalRng, type RngState } from './rng.js';
export { getBackend, setDefaultDevice, getDefaultDevice, registerBackend } from './device.js';
export type { DType, DeviceName, TypedArray } from '../backend/backend.js';
