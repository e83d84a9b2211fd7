// Backbones: torchvision ResNets and timm/MAE Vision Transformers with their state-dict names.
export * from './resnet.js';
export * from './vit.js';
