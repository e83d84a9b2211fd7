// Backbones by name for the methods: torchvision-style ResNets (ImageNet or CIFAR stem, width multiplier) and
// timm-style ViTs, each with a replaceable classifier `fc` the methods turn into their heads.
import type { Rng, Tensor } from '../tensor/index.js';
import type { Layer, Module } from '../nn/module.js';
import { BatchNorm2d, Sequential } from '../nn/layers.js';
import { ResNet, resnet18, resnet34, resnet50 } from '../models/resnet.js';
import { VisionTransformer } from '../models/vit.js';
import * as T from '../tensor/index.js';
import type { FrozenBackbone } from './method.js';

export const BACKBONES = ['resnet18-cifar', 'resnet34-cifar', 'resnet50-cifar', 'resnet18', 'resnet34', 'resnet50'] as const;

export interface BackboneOptions {
  numClasses: number;
  width: number;
  rng: Rng;
  zeroInitResidual: boolean;
  /** replaces every BatchNorm2d (e.g. MoCo's split BN) */
  normLayer?: (channels: number) => BatchNorm2d;
}

export function buildBackbone(arch: string, o: BackboneOptions): Layer {
  const m = /^(resnet(?:18|34|50))(-cifar)?$/.exec(arch);
  if (m === null) {
    throw new Error(`[backbone] unknown ResNet arch '${arch}'; expected one of ${BACKBONES.join(', ')}`);
  }
  const build = { resnet18, resnet34, resnet50 }[m[1] as 'resnet18' | 'resnet34' | 'resnet50'];
  const net = build({ numClasses: o.numClasses, width: o.width, zeroInitResidual: o.zeroInitResidual, stem: m[2] ? 'cifar' : 'imagenet' }, { rng: o.rng });
  if (o.normLayer !== undefined) replaceBatchNorm(net, o.normLayer);
  return net;
}

/** Swaps every BatchNorm2d in the tree for normLayer(channels), keeping names and the initialised affine values. */
export function replaceBatchNorm(root: Module, normLayer: (channels: number) => BatchNorm2d): void {
  for (const m of [...root.modules()]) {
    for (const [name, child] of [...m.namedChildren()]) {
      if (!(child instanceof BatchNorm2d)) continue;
      const bn = normLayer(child.numFeatures);
      T.noGrad(() => {
        if (bn.weight !== null && child.weight !== null) T.copy_(bn.weight, child.weight);
        if (bn.bias !== null && child.bias !== null) T.copy_(bn.bias, child.bias);
      });
      if (m instanceof Sequential) m.set(Number(name), bn);
      else m.registerModule(name, bn);
      child.dispose();
    }
  }
}

/** Pooled backbone features before the head (what kNN and linear probes read). */
export function backboneFeatures(encoder: Layer, x: Tensor): Tensor {
  if (encoder instanceof ResNet || encoder instanceof VisionTransformer) return encoder.forwardFeatures(x);
  throw new Error(`[backbone] ${encoder.constructor.name} has no forwardFeatures`);
}

/** An encoder that is part of a method, as the backbone evaluation reads (features before its head). */
export function encoderBackbone(encoder: Layer): FrozenBackbone {
  if (encoder instanceof ResNet || encoder instanceof VisionTransformer) {
    return { module: encoder, features: (x) => encoder.forwardFeatures(x), dim: encoder.numFeatures, owned: false };
  }
  throw new Error(`[backbone] ${encoder.constructor.name} has no forwardFeatures`);
}
