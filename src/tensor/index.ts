// The tensor engine's public surface: tensors, autograd, ops, devices and random numbers.
import './methods.js';
import { registerBackend } from './device.js';
import { nativeAvailable, nativeBackend, nativeLoadError } from '../backend/native.js';

// The native device loads lazily; when the addon is missing, using it fails with one line naming libdnnl-dev.
registerBackend('native', () => {
  if (!nativeAvailable()) throw new Error(nativeLoadError() ?? '[native] addon not built');
  return nativeBackend;
});
export { Tensor, Storage, tidy, keep, empty, sizeOf, contiguousStrides, fmtShape, type Shape } from './tensor.js';
export { noGrad, isGradEnabled, type GradNode, type BackwardOptions } from './autograd.js';
export * from './ops.js';
export * from './composite.js';
export { Rng, manualSeed, globalRng, type RngState } from './rng.js';
export {
  enableProfiler, profilerEnabled, profileRequested, startProfile, stopProfile, profile, formatProfile, profileJson, inPhase,
  type ProfileReport, type ProfileRow, type ProfilePhase,
} from './profiler.js';
export { getBackend, setDefaultDevice, getDefaultDevice, registerBackend } from './device.js';
export type { DType, DeviceName, TypedArray } from '../backend/backend.js';
