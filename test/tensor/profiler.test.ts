// The per-kernel profiler: FLOP counts of conv and matmul from their sizes, calls, and time attributed to the
// forward, backward and optimizer phases.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { SGD } from '../../src/optim/index.js';

describe('profiler', () => {
  T.enableProfiler();

  test('counts conv and matmul FLOPs per pass and attributes kernels to forward, backward and optimizer', () => {
    const rng = new T.Rng(3);
    const x = T.randn([2, 3, 6, 6], { device: 'reference', rng, requiresGrad: true });
    const w = T.randn([4, 3, 3, 3], { device: 'reference', rng, requiresGrad: true });
    const lw = T.randn([5, 4 * 4 * 4], { device: 'reference', rng, requiresGrad: true });
    const opt = new SGD([w, lw], { lr: 0.1, momentum: 0.9 });
    const { report } = T.profile(() => T.tidy(() => {
      const y = T.relu(T.conv2d(x, w));                     // [2, 4, 4, 4]
      const z = T.linear(T.reshape(y, [2, 64]), lw);        // [2, 5]
      T.sum(z).backward();
      opt.step();
    }));
    const row = (name: string): T.ProfileRow => {
      const r = report.rows.find((q) => q.name === name);
      assert.ok(r !== undefined, `no row ${name} in ${report.rows.map((q) => q.name).join(', ')}`);
      return r;
    };
    const convFlop = 2 * 2 * 4 * 4 * 4 * 3 * 3 * 3; // 2 N O OH OW C KH KW
    assert.equal(row('conv2d').flop, convFlop);
    assert.equal(row('conv2d').calls, 1);
    assert.equal(row('conv2d').backwardMs, 0);
    assert.equal(row('conv2dBackwardData').flop, convFlop);
    assert.equal(row('conv2dBackwardWeight').flop, convFlop);
    assert.equal(row('conv2dBackwardWeight').forwardMs, 0);
    assert.ok(row('conv2dBackwardWeight').backwardMs > 0);
    // forward x @ W^T (matmul); backward g @ W and g^T @ x in one linearBackward call: 2 * 2 * 5 * 64 FLOP each
    assert.equal(row('matmul').calls, 1);
    assert.equal(row('matmul').flop, 2 * 2 * 5 * 64);
    assert.equal(row('linearBackward').calls, 1);
    assert.equal(row('linearBackward').flop, 2 * 2 * 2 * 5 * 64);
    assert.equal(row('linearBackward').forwardMs, 0);
    assert.equal(row('unary.relu').calls, 1);
    assert.equal(row('unaryGrad.relu').forwardMs, 0);
    assert.equal(report.flop, 3 * convFlop + 3 * 2 * 2 * 5 * 64);
    assert.ok(report.phaseMs.backward > 0 && report.phaseMs.optimizer >= 0 && report.wallMs >= report.phaseMs.backward);
    const table = T.formatProfile(report, 'tiny');
    assert.match(table, /^tiny: wall .* GFLOP/);
    assert.match(table, /conv2dBackwardWeight/);
    assert.match(table, /outside kernels/);
    for (const t of [x, w, lw]) t.dispose();
    opt.disposeState();
  });

  test('counts the fused attention products: 2 forward, 4 backward, of 2 B H N^2 hd FLOP each', () => {
    const [B, N, H, hd] = [2, 5, 3, 4];
    const qkv = T.randn([B, N, 3 * H * hd], { device: 'reference', rng: new T.Rng(4), requiresGrad: true });
    const { report } = T.profile(() => T.tidy(() => T.sum(T.attention(qkv, H, 0.5)).backward()));
    const per = 2 * B * H * N * N * hd;
    assert.equal(report.rows.find((r) => r.name === 'attentionForward')?.flop, 2 * per);
    assert.equal(report.rows.find((r) => r.name === 'attentionBackward')?.flop, 4 * per);
    qkv.dispose();
  });

  test('records nothing outside a profile', () => {
    T.startProfile();
    const empty = T.stopProfile();
    assert.equal(empty.rows.length, 0);
    T.tidy(() => T.matmul(T.ones([2, 2], { device: 'reference' }), T.ones([2, 2], { device: 'reference' })));
    T.startProfile();
    assert.equal(T.stopProfile().rows.length, 0);
  });
});
