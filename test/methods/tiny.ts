// The tiny encoder of reference/make_method_fixtures.py: conv1 -> bn1 -> relu -> global average pool -> fc.
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { Module } from '../../src/nn/module.js';
import { BatchNorm2d, Conv2d, Linear } from '../../src/nn/layers.js';
import { SplitBatchNorm2d } from '../../src/methods/moco.js';

export class TinyEncoder extends Module {
  constructor(numClasses: number, bnSplits = 1) {
    super();
    this.registerModule('conv1', new Conv2d(3, 8, 3, { padding: 1, bias: false }));
    this.registerModule('bn1', bnSplits > 1 ? new SplitBatchNorm2d(8, bnSplits) : new BatchNorm2d(8));
    this.registerModule('fc', new Linear(8, numClasses));
  }
  forward(x: Tensor): Tensor {
    const h = T.relu(this.child<BatchNorm2d>('bn1').forward(this.child<Conv2d>('conv1').forward(x)));
    return this.child<Linear>('fc').forward(T.mean(h, [2, 3]));
  }
}
