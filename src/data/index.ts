// The data pipeline's public surface: datasets, transforms and presets, and the worker-thread DataLoader.
export * from './datasets.js';
export { decodeImage, DEFAULT_MAX_PIXELS, SMALL_JPEG_PIXELS } from './decode.js';
export * as functional from './functional.js';
export * from './image.js';
export { DataLoader, type Batch, type DataLoaderOptions } from './loader.js';
export type { BadFilePolicy } from './batch.js';
export * from './presets.js';
export { hashKeys, Rng } from '../tensor/rng.js';
export * from './transforms.js';
