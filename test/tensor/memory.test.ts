// Memory stays flat over thousands of training steps: native buffers are freed deterministically by tidy().
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { nativeAddon } from '../../src/backend/native.js';
import { nativeAvailable } from '../helpers.js';

it('2,000 forward/backward steps of a small conv net keep resident memory flat', { skip: !nativeAvailable() && 'native addon not built' }, async () => {
  const rng = new T.Rng(0);
  const p = (shape: number[], std: number): T.Tensor => T.keep(T.randn(shape, { rng, std, requiresGrad: true }));
  const w1 = p([8, 3, 3, 3], 0.2);
  const g1 = T.keep(T.ones([8], { requiresGrad: true }));
  const b1 = T.keep(T.zeros([8], { requiresGrad: true }));
  const rm = T.keep(T.zeros([8]));
  const rv = T.keep(T.ones([8]));
  const w2 = p([10, 8 * 8 * 8], 0.05);
  const params = [w1, g1, b1, w2];
  const x = T.keep(T.randn([16, 3, 16, 16], { rng }));
  const y = T.keep(T.tensor(Array.from({ length: 16 }, (_, i) => i % 10), [16], { dtype: 'int32' }));

  const step = (): number => T.tidy(() => {
    let h = T.conv2d(x, w1, null, { padding: 1 });                      // [16, 8, 16, 16]
    h = T.relu(T.batchNorm(h, rm, rv, g1, b1, { training: true }));
    h = T.maxPool2d(h, 2);                                               // [16, 8, 8, 8]
    const logits = T.linear(T.flatten(h, 1), w2);                        // [16, 10]
    const loss = T.crossEntropy(logits, y);
    loss.backward();
    T.noGrad(() => {
      for (const q of params) {
        T.copy_(q, T.sub(q, T.mul(q.grad!, 0.01)));
        q.grad!.dispose();
        q.grad = null;
      }
    });
    return loss.item();
  });

  let rss200 = 0;
  let live200 = 0;
  let first = 0;
  let last = 0;
  for (let i = 1; i <= 2000; i++) {
    last = step();
    // a training loop awaits its data loader between steps; Node runs buffer finalizers on the event loop
    if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    if (i === 1) first = last;
    if (i === 200) { rss200 = process.memoryUsage().rss; live200 = nativeAddon().memoryStats().liveBytes; }
  }
  const rss2000 = process.memoryUsage().rss;
  const live2000 = nativeAddon().memoryStats().liveBytes;
  assert.ok(last < first, `loss should fall: ${first} -> ${last}`);
  assert.equal(live2000, live200, `live native bytes changed: ${live200} -> ${live2000}`);
  const growth = (rss2000 - rss200) / rss200;
  assert.ok(growth < 0.05, `RSS grew ${(growth * 100).toFixed(1)}% from step 200 (${rss200}) to 2000 (${rss2000})`);
});
