// Autograd semantics: accumulation, noGrad, detach as a real cut, errors, and deterministic memory.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { nativeAvailable } from '../helpers.js';

const devices: T.DeviceName[] = nativeAvailable() ? ['reference', 'native'] : ['reference'];

describe('autograd', () => {
  for (const device of devices) {
    it(`accumulates into leaf grads across backward calls (${device})`, () => {
      const x = T.tensor([1, 2, 3], [3], { device, requiresGrad: true });
      T.tidy(() => x.mul(x).sum().backward());
      assert.deepEqual(x.grad?.toArray(), [2, 4, 6]);
      T.tidy(() => x.mul(3).sum().backward());
      assert.deepEqual(x.grad?.toArray(), [5, 7, 9]);
      x.grad?.dispose();
      x.grad = null;
    });

    it(`a tensor used twice gets both contributions (${device})`, () => {
      const x = T.tensor([2, -1], [2], { device, requiresGrad: true });
      const y = T.add(x, x); // d/dx = 2 through two paths of the same node
      T.mul(y, x).sum().backward(); // (2x) * x = 2x^2 -> 4x
      assert.deepEqual(x.grad?.toArray(), [8, -4]);
    });

    it(`detach cuts the graph: stop-gradient (${device})`, () => {
      const x = T.tensor([1, 2], [2], { device, requiresGrad: true });
      const z = T.mul(x, 2);
      const stopped = z.detach();
      assert.equal(stopped.requiresGrad, false);
      // loss = sum(x * stop(2x)): gradient is stop(2x) only, not 4x
      T.mul(x, stopped).sum().backward();
      assert.deepEqual(x.grad?.toArray(), [2, 4]);
    });

    it(`noGrad records nothing: momentum-style updates are cut (${device})`, () => {
      const q = T.tensor([1, 1], [2], { device, requiresGrad: true });
      const k = T.noGrad(() => T.mul(q, 0.5));
      assert.equal(k.requiresGrad, false);
      assert.equal(k.node, null);
      const loss = T.mul(q, k).sum();
      loss.backward();
      assert.deepEqual(q.grad?.toArray(), [0.5, 0.5]);
    });

    it(`explicit gradient for a non-scalar output (${device})`, () => {
      const x = T.tensor([1, 2, 3], [3], { device, requiresGrad: true });
      const y = T.mul(x, x);
      y.backward(T.tensor([1, 0, 2], [3], { device }));
      assert.deepEqual(x.grad?.toArray(), [2, 0, 12]);
    });
  }

  it('backward of a non-scalar without a gradient is an error naming the shape', () => {
    const x = T.tensor([1, 2, 3], [3], { device: 'reference', requiresGrad: true });
    assert.throws(() => T.mul(x, 2).backward(), /\[backward\].*one-element.*\[3\]/);
  });

  it('backward of a tensor that does not require grad is an error', () => {
    const x = T.tensor([1, 2], [2], { device: 'reference' });
    assert.throws(() => x.sum().backward(), /\[backward\] .*does not require grad/);
  });
});

describe('errors name the op and the shapes', () => {
  const dev = { device: 'reference' as const };
  it('shape mismatch', () => {
    assert.throws(() => T.add(T.zeros([2, 3], dev), T.zeros([4], dev)), /\[add\] shapes \[2, 3\] and \[4\] cannot be broadcast/);
    assert.throws(() => T.matmul(T.zeros([2, 3], dev), T.zeros([4, 5], dev)), /\[matmul\] inner dims differ: \[2, 3\] @ \[4, 5\]/);
    assert.throws(() => T.conv2d(T.zeros([3, 8, 8], dev), T.zeros([4, 3, 3, 3], dev)), /\[conv2d\] expected 4-D input.*\[3, 8, 8\]/);
    assert.throws(() => T.reshape(T.zeros([2, 3], dev), [4]), /\[reshape\] cannot reshape \[2, 3\]/);
  });
  it('wrong dtype', () => {
    assert.throws(() => T.add(T.zeros([2], dev), T.zeros([2], { ...dev, dtype: 'int32' })), /\[add\] dtype mismatch: float32 \[2\] and int32 \[2\]/);
    assert.throws(() => T.gather(T.zeros([2, 3], dev), 1, T.zeros([2, 1], dev)), /\[gather\] index must be int32/);
    assert.throws(() => T.matmul(T.zeros([2, 2], { ...dev, dtype: 'int32' }), T.zeros([2, 2], { ...dev, dtype: 'int32' })), /\[matmul\] expected a float tensor/);
  });
  it('use of a freed tensor', () => {
    const x = T.ones([2], dev);
    x.dispose();
    assert.throws(() => T.exp(x), /\[exp\] use of a freed tensor/);
    assert.throws(() => x.data, /use of a freed tensor/);
  });
  it('unknown device', () => {
    assert.throws(() => T.zeros([2], { device: 'cuda' as T.DeviceName }), /\[device\] unknown device 'cuda'/);
  });
  it('index out of range', () => {
    assert.throws(() => T.indexSelect(T.zeros([3], dev), 0, T.tensor([0, 3], [2], { ...dev, dtype: 'int32' })), /\[indexSelect\] index 3 out of range for a dim of size 3/);
  });
});

function assertCloseArr(a: number[], b: number[]): void {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 1e-5 * (1 + Math.abs(b[i]!)), `element ${i}: ${v} vs ${b[i]}`));
}

describe('memory', () => {
  it('tidy disposes intermediates and keeps results and kept tensors', () => {
    const kept = T.keep(T.ones([2], { device: 'reference' }));
    let inner: T.Tensor | null = null;
    const out = T.tidy(() => {
      inner = T.add(kept, 1);
      return T.mul(inner, 2);
    });
    assert.equal(out.isDisposed, false);
    assert.equal(kept.isDisposed, false);
    assert.equal((inner as unknown as T.Tensor).isDisposed, true);
    assert.deepEqual(out.toArray(), [4, 4]);
  });

  for (const device of devices) {
    it(`tidy-then-backward gives the gradient, as without tidy; the intermediates go after backward (${device})`, () => {
      const w = T.tensor([1, -2, 3], [3], { device, requiresGrad: true });
      const x = T.tensor([4, 5, 6], [3], { device });
      let inner: T.Tensor | null = null;
      const loss = T.tidy(() => {
        inner = T.mul(w, x);
        return T.sum(T.exp(T.mulScalar(inner, 0.1)));
      });
      const kept = inner as unknown as T.Tensor;
      assert.equal(kept.isDisposed, false, "the graph keeps the scope's intermediates until backward");
      loss.backward();
      // d/dw sum(exp(0.1 w x)) = 0.1 x exp(0.1 w x)
      const expect = [1, -2, 3].map((wi, i) => 0.1 * [4, 5, 6][i]! * Math.exp(0.1 * wi * [4, 5, 6][i]!));
      assertCloseArr(w.grad!.toArray(), expect);
      assert.equal(kept.isDisposed, true, 'backward released them');
      loss.dispose();
      w.grad!.dispose();
      w.grad = null;
      // disposing the result without backward releases them too
      const again = T.tidy(() => { inner = T.mul(w, x); return T.sum(inner); });
      assert.equal((inner as unknown as T.Tensor).isDisposed, false);
      again.dispose();
      assert.equal((inner as unknown as T.Tensor).isDisposed, true);
    });
  }

  it('nested tidy scopes keep the graph for the outer backward', () => {
    const w = T.tensor([2, 3], [2], { device: 'reference', requiresGrad: true });
    const loss = T.tidy(() => {
      const h = T.tidy(() => T.square(T.mulScalar(w, 2))); // 4 w^2
      return T.sum(T.mul(h, h)); // 16 w^4
    });
    loss.backward();
    assert.deepEqual(w.grad!.toArray(), [64 * 8, 64 * 27]);
  });

  it('backward through an intermediate disposed by hand is an error naming the op', () => {
    const w = T.tensor([1, 2], [2], { device: 'reference', requiresGrad: true });
    const h = T.mul(w, 3);
    const loss = T.sum(h);
    h.dispose();
    assert.throws(() => loss.backward(), /\[backward\] the mulScalar output of shape \[2\] \(an input of sum\) was disposed before backward\(\)/);
    assert.equal(w.grad, null);
  });

  it('a second backward through a freed graph is an error, as in PyTorch; retainGraph allows it', () => {
    const w = T.tensor([1, 2], [2], { device: 'reference', requiresGrad: true });
    const loss = T.sum(T.square(w));
    loss.backward(undefined, { retainGraph: true });
    loss.backward();
    assert.deepEqual(w.grad!.toArray(), [4, 8]);
    assert.throws(() => loss.backward(), /\[backward\] trying to backward through the graph a second time: the sum output of shape \[\] was freed/);
  });

  it('views share storage until the last holder is disposed', () => {
    const x = T.ones([2, 2], { device: 'reference' });
    const v = T.reshape(x, [4]);
    x.dispose();
    assert.deepEqual(v.toArray(), [1, 1, 1, 1]);
    v.dispose();
    assert.equal(v.storage.data, null);
  });
});

describe('rng', () => {
  it('reproduces bit-for-bit from a seed', () => {
    const a = new T.Rng(42);
    const b = new T.Rng(42);
    for (let i = 0; i < 100; i++) assert.equal(a.uniform(), b.uniform());
    assert.deepEqual(Array.from(new T.Rng(3).randperm(10)), Array.from(new T.Rng(3).randperm(10)));
    assert.notDeepEqual(Array.from(new T.Rng(3).randperm(10)), Array.from(new T.Rng(4).randperm(10)));
  });
  it('has the right moments', () => {
    const r = new T.Rng(1);
    let s = 0;
    let s2 = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) { const v = r.normal(); s += v; s2 += v * v; }
    assert.ok(Math.abs(s / n) < 0.03);
    assert.ok(Math.abs(s2 / n - 1) < 0.04);
    let tn = 0;
    for (let i = 0; i < 1000; i++) { const v = r.truncatedNormal(0, 1, -2, 2); assert.ok(v >= -2 && v <= 2); tn += v; }
    assert.ok(Math.abs(tn / 1000) < 0.1);
    const perm = Array.from(r.randperm(50)).sort((a, b) => a - b);
    assert.deepEqual(perm, Array.from({ length: 50 }, (_, i) => i));
    let ones = 0;
    for (let i = 0; i < 10000; i++) ones += r.bernoulli(0.3);
    assert.ok(Math.abs(ones / 10000 - 0.3) < 0.02);
  });
  it('state can be saved and restored', () => {
    const r = new T.Rng(9);
    r.normal();
    const st = r.getState();
    const a = [r.uniform(), r.normal(), r.normal()];
    r.setState(st);
    assert.deepEqual([r.uniform(), r.normal(), r.normal()], a);
  });
});

describe('backward with freeActivations', () => {
  for (const device of devices) {
    it(`gives the same gradients and disposes intermediates as it passes them (${device})`, () => {
      const rng = new T.Rng(5);
      const x = T.keep(T.randn([4, 6], { device, rng }));
      const w1 = T.keep(T.randn([8, 6], { device, rng, requiresGrad: true }));
      const w2 = T.keep(T.randn([3, 8], { device, rng, requiresGrad: true }));
      const run = (free: boolean): { g1: number[]; g2: number[]; h: T.Tensor; z: T.Tensor; loss: T.Tensor } => {
        const h = T.relu(T.linear(x, w1));                  // [4, 8], used twice below
        const z = T.add(T.linear(h, w2), T.sum(h, 1, true)); // [4, 3]
        const loss = T.sum(T.mul(z, z));
        loss.backward(undefined, { freeActivations: free });
        const out = { g1: w1.grad!.toArray(), g2: w2.grad!.toArray(), h, z, loss };
        w1.grad!.dispose(); w1.grad = null;
        w2.grad!.dispose(); w2.grad = null;
        return out;
      };
      T.tidy(() => {
        const kept = run(false);
        const freed = run(true);
        assert.deepEqual(freed.g1, kept.g1);
        assert.deepEqual(freed.g2, kept.g2);
        assert.equal(kept.h.isDisposed, false);
        assert.equal(freed.h.isDisposed, true);
        assert.equal(freed.z.isDisposed, true);
        assert.equal(freed.loss.isDisposed, false);
        assert.equal(x.isDisposed || w1.isDisposed || w2.isDisposed, false);
      });
      for (const t of [x, w1, w2]) t.dispose();
    });
  }
});
