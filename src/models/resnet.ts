// torchvision's ResNet (v1.5: stride on the 3x3 conv of Bottleneck) with its state-dict names, plus the CIFAR stem
// (3x3 stride-1 conv1, no max-pool) the SimSiam/MoCo CIFAR recipes use and a width multiplier.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { globalRng } from '../tensor/index.js';
import { Module, type Factory, type Layer } from '../nn/module.js';
import { AdaptiveAvgPool2d, BatchNorm2d, BatchNormBase, Conv2d, Identity, Linear, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import { defaultLinearInit, kaimingNormal_, ones_, zeros_ } from '../nn/init.js';

function conv3x3(inPlanes: number, outPlanes: number, stride: number, f: Factory): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false }, f);
}

function conv1x1(inPlanes: number, outPlanes: number, stride: number, f: Factory): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false }, f);
}

/**
 * relu(norm(x) + residual) (residual null: relu(norm(x))): one fused kernel when the norm layer is a batch norm that
 * fuses (BatchNormBase.forwardRelu), the composition otherwise. The relu modules stay registered for PyTorch's
 * module tree; the fused kernel does their work.
 */
function normRelu(norm: Layer, x: Tensor, residual: Tensor | null = null): Tensor {
  if (norm instanceof BatchNormBase) return norm.forwardRelu(x, residual);
  const y = norm.forward(x);
  return T.relu(residual === null ? y : T.add(y, residual));
}

/** conv3x3-bn-relu-conv3x3-bn, plus the (downsampled) identity, then relu. */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  constructor(inPlanes: number, planes: number, stride: number, downsample: Sequential | null, f: Factory) {
    super();
    this.registerModule('conv1', conv3x3(inPlanes, planes, stride, f));
    this.registerModule('bn1', new BatchNorm2d(planes, {}, f));
    this.registerModule('relu', new ReLU());
    this.registerModule('conv2', conv3x3(planes, planes, 1, f));
    this.registerModule('bn2', new BatchNorm2d(planes, {}, f));
    this.registerModule('downsample', downsample);
  }
  /** the last batch norm of the residual branch (zero-initialised by zeroInitResidual) */
  get lastBn(): BatchNorm2d { return this.child('bn2'); }
  forward(x: Tensor): Tensor {
    const out = normRelu(this.child('bn1'), this.child<Conv2d>('conv1').forward(x)); // [N, planes, H/s, W/s]
    const ds = this.childOrNull<Layer>('downsample');
    const identity = ds === null ? x : ds.forward(x); // [N, planes, H/s, W/s]
    return normRelu(this.child('bn2'), this.child<Conv2d>('conv2').forward(out), identity);
  }
}

/** conv1x1-bn-relu-conv3x3(stride)-bn-relu-conv1x1(x4)-bn, plus the (downsampled) identity, then relu. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  constructor(inPlanes: number, planes: number, stride: number, downsample: Sequential | null, f: Factory) {
    super();
    const width = planes; // groups = 1, base_width = 64
    this.registerModule('conv1', conv1x1(inPlanes, width, 1, f));
    this.registerModule('bn1', new BatchNorm2d(width, {}, f));
    this.registerModule('conv2', conv3x3(width, width, stride, f));
    this.registerModule('bn2', new BatchNorm2d(width, {}, f));
    this.registerModule('conv3', conv1x1(width, planes * Bottleneck.expansion, 1, f));
    this.registerModule('bn3', new BatchNorm2d(planes * Bottleneck.expansion, {}, f));
    this.registerModule('relu', new ReLU());
    this.registerModule('downsample', downsample);
  }
  get lastBn(): BatchNorm2d { return this.child('bn3'); }
  forward(x: Tensor): Tensor {
    let out = normRelu(this.child('bn1'), this.child<Conv2d>('conv1').forward(x));
    out = normRelu(this.child('bn2'), this.child<Conv2d>('conv2').forward(out)); // [N, width, H/s, W/s]
    const ds = this.childOrNull<Layer>('downsample');
    const identity = ds === null ? x : ds.forward(x); // [N, 4 planes, H/s, W/s]
    return normRelu(this.child('bn3'), this.child<Conv2d>('conv3').forward(out), identity);
  }
}

export interface ResNetConfig {
  block: 'basic' | 'bottleneck';
  /** blocks per stage */
  layers: readonly [number, number, number, number];
  /** classifier outputs; 0 makes fc an Identity (features of size numFeatures) */
  numClasses?: number;
  /** multiplies the stage widths 64/128/256/512 (rounded) */
  width?: number;
  /** 'imagenet': 7x7/2 conv + 3x3/2 max-pool; 'cifar': 3x3/1 conv, no max-pool */
  stem?: 'imagenet' | 'cifar';
  /** zero-initialise the last BN gamma of every residual branch (torchvision's zero_init_residual) */
  zeroInitResidual?: boolean;
  inChans?: number;
}

export class ResNet extends Module {
  readonly numFeatures: number;
  readonly config: Required<ResNetConfig>;
  constructor(cfg: ResNetConfig, f: Factory = {}) {
    super();
    this.config = { numClasses: 1000, width: 1, stem: 'imagenet', zeroInitResidual: false, inChans: 3, ...cfg };
    const c = this.config;
    const widths = [64, 128, 256, 512].map((w) => Math.max(1, Math.round(w * c.width)));
    const Block = c.block === 'basic' ? BasicBlock : Bottleneck;
    const expansion = Block.expansion;
    let inPlanes = widths[0]!;
    if (c.stem === 'cifar') {
      this.registerModule('conv1', new Conv2d(c.inChans, inPlanes, 3, { stride: 1, padding: 1, bias: false }, f));
    } else {
      this.registerModule('conv1', new Conv2d(c.inChans, inPlanes, 7, { stride: 2, padding: 3, bias: false }, f));
    }
    this.registerModule('bn1', new BatchNorm2d(inPlanes, {}, f));
    this.registerModule('relu', new ReLU());
    this.registerModule('maxpool', c.stem === 'cifar' ? new Identity() : new MaxPool2d(3, 2, 1));
    for (let s = 0; s < 4; s++) {
      const planes = widths[s]!;
      const stride = s === 0 ? 1 : 2;
      const stage = new Sequential();
      for (let b = 0; b < c.layers[s]!; b++) {
        const st = b === 0 ? stride : 1;
        let downsample: Sequential | null = null;
        if (b === 0 && (st !== 1 || inPlanes !== planes * expansion)) {
          downsample = new Sequential(conv1x1(inPlanes, planes * expansion, st, f), new BatchNorm2d(planes * expansion, {}, f));
        }
        stage.append(new Block(inPlanes, planes, st, downsample, f));
        inPlanes = planes * expansion;
      }
      this.registerModule(`layer${s + 1}`, stage);
    }
    this.registerModule('avgpool', new AdaptiveAvgPool2d(1));
    this.numFeatures = inPlanes;
    this.registerModule('fc', c.numClasses > 0 ? new Linear(inPlanes, c.numClasses, true, f) : new Identity());
    if (f.skipInit !== true) this.initWeights(f);
  }

  /**
   * torchvision: kaiming-normal (fan_out, relu) convs, BN weight 1 bias 0, optional zero-init of the last BN. The
   * CIFAR stem's conv1 keeps PyTorch's default Conv2d init (kaiming_uniform, a = sqrt(5)): the MoCo CIFAR demo
   * swaps a fresh nn.Conv2d in after torchvision's init has run.
   */
  private initWeights(f: Factory): void {
    const rng = f.rng ?? globalRng;
    const stem = this.child<Conv2d>('conv1');
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        if (m === stem && this.config.stem === 'cifar') defaultLinearInit(m.weight, m.bias, rng);
        else kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' }, rng);
      } else if (m instanceof BatchNorm2d) { ones_(m.weight!); zeros_(m.bias!); }
    }
    if (this.config.zeroInitResidual) {
      for (const m of this.modules()) if (m instanceof BasicBlock || m instanceof Bottleneck) zeros_(m.lastBn.weight!);
    }
  }

  /** The classifier (or projector) on top of the pooled features; methods replace it. */
  get fc(): Layer { return this.child<Layer>('fc'); }
  set fc(m: Layer) { this.registerModule('fc', m); }

  /** Pooled features before fc. */
  forwardFeatures(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new Error(`[ResNet] expected images [N, C, H, W], got [${x.shape.join(', ')}]`);
    let y = normRelu(this.child('bn1'), this.child<Conv2d>('conv1').forward(x)); // [N, w0, H', W']
    y = this.child<Layer>('maxpool').forward(y);
    for (let s = 1; s <= 4; s++) y = this.child<Sequential>(`layer${s}`).forward(y); // [N, numFeatures, h, w]
    return T.flatten(this.child<AdaptiveAvgPool2d>('avgpool').forward(y), 1); // [N, numFeatures]
  }

  forward(x: Tensor): Tensor {
    return this.fc.forward(this.forwardFeatures(x)); // [N, numClasses]
  }
}

export type ResNetOptions = Partial<Omit<ResNetConfig, 'block' | 'layers'>>;

export function resnet18(o: ResNetOptions = {}, f: Factory = {}): ResNet {
  return new ResNet({ block: 'basic', layers: [2, 2, 2, 2], ...o }, f);
}
export function resnet34(o: ResNetOptions = {}, f: Factory = {}): ResNet {
  return new ResNet({ block: 'basic', layers: [3, 4, 6, 3], ...o }, f);
}
export function resnet50(o: ResNetOptions = {}, f: Factory = {}): ResNet {
  return new ResNet({ block: 'bottleneck', layers: [3, 4, 6, 3], ...o }, f);
}
/** ResNet-18 with the CIFAR stem (SimSiam's and MoCo's CIFAR-10 recipes); 10 classes unless told. */
export function resnet18Cifar(o: ResNetOptions = {}, f: Factory = {}): ResNet {
  return resnet18({ stem: 'cifar', numClasses: 10, ...o }, f);
}
export function resnet34Cifar(o: ResNetOptions = {}, f: Factory = {}): ResNet {
  return resnet34({ stem: 'cifar', numClasses: 10, ...o }, f);
}
export function resnet50Cifar(o: ResNetOptions = {}, f: Factory = {}): ResNet {
  return resnet50({ stem: 'cifar', numClasses: 10, ...o }, f);
}
