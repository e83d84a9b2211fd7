// Modules and layers, PyTorch-shaped: import * as nn from '../nn/index.js'.
export * from './module.js';
export * from './layers.js';
export * from './transformer.js';
export * as init from './init.js';
