// clipGradNorm against torch.nn.utils.clip_grad_norm_: total norm returned, gradients scaled in place.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as T from '../../src/tensor/index.js';
import type { DeviceName, Tensor } from '../../src/tensor/index.js';
import { clipGradNorm } from '../../src/optim/index.js';
import { assertClose, nativeAvailable } from '../helpers.js';
import { loadOptimFixtures } from './fixtures.js';

const fx = loadOptimFixtures();
const devices: DeviceName[] = nativeAvailable() ? ['reference', 'native'] : ['reference'];

describe('clipGradNorm', () => {
  for (const device of devices) {
    for (const c of fx.clip) {
      it(`maxNorm ${c.maxNorm}, norm ${c.normType} (${device})`, () => {
        T.tidy(() => {
          const params: Tensor[] = c.shapes.map((s, k) => {
            const p = T.zeros(s, { device, requiresGrad: true });
            p.grad = T.keep(T.tensor(c.grads[k]!, s, { device }));
            return p;
          });
          const total = clipGradNorm(params, c.maxNorm, { normType: c.normType === 'inf' ? Infinity : c.normType });
          assertClose([total], [c.totalNorm], 'total norm', 1e-6, 1e-7);
          params.forEach((p, k) => assertClose(p.grad!.data, c.clipped[k]!, `clipped grad ${k}`, 1e-6, 1e-7));
          for (const p of params) p.grad!.dispose();
        });
      });
    }
  }

  it('ignores parameters without gradients, returns 0 when none has one, and can reject non-finite norms', () => {
    const a = T.keep(T.zeros([2], { requiresGrad: true }));
    const b = T.keep(T.zeros([2], { requiresGrad: true }));
    assert.equal(clipGradNorm([a, b], 1), 0);
    a.grad = T.keep(T.tensor([3, 4]));
    assert.equal(clipGradNorm([a, b], 10), 5);
    assert.deepEqual(Array.from(a.grad.data), [3, 4]);
    a.grad.data[0] = Number.NaN;
    assert.throws(() => clipGradNorm([a, b], 1, { errorIfNonfinite: true }), /non-finite/);
    a.dispose();
    b.dispose();
  });
});
