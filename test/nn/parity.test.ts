// PyTorch parity of layers: conv-bn-relu (training-mode BN), a timm transformer block, label-smoothed cross-entropy.
import { test } from 'node:test';
import * as T from '../../src/tensor/index.js';
import { BatchNorm2d, Block, Conv2d, ReLU, Sequential } from '../../src/nn/index.js';
import { nativeAvailable } from '../helpers.js';
import { checkParity, parityTargets } from './parity.js';

const targets = parityTargets(nativeAvailable());

for (const { device, dtype } of targets) {
  test(`conv-bn-relu matches PyTorch (${device}, ${dtype})`, () => {
    const m = new Sequential(new Conv2d(3, 8, 3, { stride: 2, padding: 1, bias: false }, { device }), new BatchNorm2d(8, {}, { device }), new ReLU());
    checkParity('conv_bn_relu', { device, dtype, module: m, forward: (i) => m.forward(i.get('x')!) });
    m.dispose();
  });

  test(`timm transformer block matches PyTorch (${device}, ${dtype})`, () => {
    const m = new Block(24, 3, { eps: 1e-6 }, { device });
    checkParity('vit_block', { device, dtype, module: m, forward: (i) => m.forward(i.get('x')!) });
    m.dispose();
  });

  test(`cross-entropy with label smoothing matches PyTorch (${device}, ${dtype})`, () => {
    checkParity('cross_entropy', {
      device, dtype, forward: (i) => T.crossEntropy(i.get('logits')!, i.get('labels')!, { labelSmoothing: 0.1 }),
    });
  });
}
