// DDP's bucket layout (no MPI needed): the default cap, PyTorch's reverse-order filling and the first small bucket.
import { it, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DistributedDataParallel, defaultBucketCapMb } from '../../src/dist/ddp.js';
import { initDistributed } from '../../src/dist/comm.js';
import { Linear, Sequential } from '../../src/nn/layers.js';
import * as T from '../../src/tensor/index.js';
import { parseBucketCapMb } from '../../src/cli/pretrain.js';

const MB = 1024 * 1024;

// 4 Linear layers of 1024 x 512 (+ bias): 2 MB + 2 KB of gradients each
function fourLayers(): Sequential {
  const rng = new T.Rng(0);
  return new Sequential(...Array.from({ length: 4 }, () => new Linear(512, 1024, true, { rng })));
}

describe('DistributedDataParallel buckets', () => {
  it("default cap: PyTorch's 25 MB for large models, an eighth of the gradients for small ones, at least 1 MB", () => {
    assert.equal(defaultBucketCapMb(400), 25);
    assert.equal(defaultBucketCapMb(200), 25);
    assert.equal(defaultBucketCapMb(23.5), 23.5 / 8);
    assert.equal(defaultBucketCapMb(4), 1);
  });

  it('fills buckets in reverse parameter order, closing each once it holds the cap', () => {
    const model = fourLayers();
    const comm = initDistributed({ force: 'local' });
    const ddp = new DistributedDataParallel(model, comm, { bucketCapMb: 4, firstBucketCapMb: 1 });
    const names = new Map([...model.namedParameters()].map(([n, p]) => [p, n]));
    const layout = ddp.buckets.map((b) => b.params.map((p) => names.get(p)));
    // first bucket closes past 1 MB (layer 3's bias, then weight), the next ones past 4 MB
    assert.deepEqual(layout, [['3.bias', '3.weight'], ['2.bias', '2.weight', '1.bias', '1.weight'], ['0.bias', '0.weight']]);
    assert.equal(ddp.buckets.reduce((s, b) => s + b.flat.length, 0), 4 * (1024 * 512 + 1024));
  });

  it('the default splits a small model into several buckets', () => {
    const model = fourLayers();
    const ddp = new DistributedDataParallel(model, initDistributed({ force: 'local' }));
    // 8 MB of gradients: cap 1 MB, so every weight closes its own bucket
    assert.equal(ddp.buckets.length, 4);
    assert.ok(ddp.buckets.every((b) => b.flat.byteLength <= 2 * MB + 4096));
  });

  it('refuses a cap that is not positive', () => {
    assert.throws(() => new DistributedDataParallel(fourLayers(), initDistributed({ force: 'local' }), { bucketCapMb: 0 }), /\[ddp\] bucketCapMb must be positive, got 0/);
    assert.throws(() => parseBucketCapMb('x'), /\[pretrain\] --bucket-cap-mb must be a positive number of MB, got 'x'/);
    assert.throws(() => parseBucketCapMb('-2'), /got '-2'/);
    assert.equal(parseBucketCapMb('2.5'), 2.5);
    assert.equal(parseBucketCapMb(undefined), undefined);
  });
});
