// Run under mpirun -np 2: the binding's collectives and the sampler's shards, each rank asserting what it receives.
import assert from 'node:assert/strict';
import { initDistributed, setAllreduceChunkElements } from '../../src/dist/comm.js';
import { shardOrder } from '../../src/dist/sampler.js';
import { DataLoader } from '../../src/data/loader.js';
import type { Dataset } from '../../src/data/datasets.js';
import * as T from '../../src/tensor/index.js';
import { allreduceSum, concatAllGather } from '../../src/dist/collectives.js';

const comm = initDistributed({ force: 'mpi' });
const { rank, size } = comm;
assert.equal(size, 2);

// allreduce: sum, max, min; chunked (7 elements per MPI call over 100)
setAllreduceChunkElements(7);
const a = Float32Array.from({ length: 100 }, (_, i) => i * (rank + 1));
comm.allreduce(a);
assert.deepEqual([...a], Array.from({ length: 100 }, (_, i) => i * 3));
const m = Float64Array.of(rank, 1 - rank);
comm.allreduce(m, 'max');
assert.deepEqual([...m], [1, 1]);
const i32 = Int32Array.of(rank + 5);
comm.allreduce(i32, 'min');
assert.equal(i32[0], 5);
setAllreduceChunkElements(1 << 26);

// nonblocking: two in flight, completed in order
const b1 = new Float32Array(1000).fill(rank + 1);
const b2 = new Float32Array(10).fill(10 * (rank + 1));
const p1 = comm.iallreduce(b1);
const p2 = comm.iallreduce(b2);
p2.wait();
p1.wait();
assert.equal(b1[999], 3);
assert.equal(b2[0], 30);

// allgather in rank order, broadcast from rank 1
assert.deepEqual([...comm.allgather(Int32Array.of(rank, rank * 10))], [0, 0, 1, 10]);
const bc = Float32Array.of(rank === 1 ? 7 : 0, rank === 1 ? 8 : 0);
comm.broadcast(bc, 1);
assert.deepEqual([...bc], [7, 8]);

// tensors: concat_all_gather, and the differentiable allreduce (gradient = sum of the ranks' output gradients)
const x = T.tensor([rank + 1, 2 * (rank + 1)], [1, 2], { requiresGrad: true });
assert.deepEqual([...concatAllGather(x).data], [1, 2, 2, 4]);
const y = allreduceSum(x);
assert.deepEqual([...y.data], [3, 6]);
T.sum(T.mulScalar(y, rank + 1)).backward();
assert.deepEqual([...x.grad!.data], [3, 3]); // d/dx of (1 + 2) * y

// the sampler: shards of one permutation, disjoint, their union the epoch (dropLast drops the tail)
const order = Int32Array.from({ length: 11 }, (_, i) => (i * 7) % 11);
const mine = shardOrder(order, rank, size, true);
const all = comm.allgather(mine);
assert.equal(mine.length, 5);
assert.equal(new Set(all).size, 10, 'shards are disjoint');
assert.deepEqual([...all].sort((p, q) => p - q), [...order.slice(0, 10)].sort((p, q) => p - q), 'union is the epoch minus its tail');
// through the DataLoader: every epoch, the ranks' shards are disjoint and make up the one-process epoch's order
const n = 23;
const ds: Dataset = {
  name: 'ints', length: n, classes: [],
  source: { kind: 'packed', data: new Uint8Array(n * 3), offsets: Float64Array.from({ length: n + 1 }, (_, i) => 3 * i), widths: new Int32Array(n).fill(1), heights: new Int32Array(n).fill(1), labels: new Int32Array(n) },
};
const opts = { batchSize: 3, transform: { views: [] }, shuffle: true, dropLast: true, seed: 5, numWorkers: 0 };
const single = new DataLoader(ds, opts);
const sharded = new DataLoader(ds, { ...opts, shard: { rank, worldSize: size } });
assert.equal(sharded.length, 3, '11 samples per rank make 3 batches of 3');
for (const epoch of [0, 1]) {
  const gathered = comm.allgather(sharded.order(epoch));
  assert.equal(new Set(gathered).size, 22, `epoch ${epoch}: shards are disjoint`);
  assert.deepEqual([...gathered].sort((p, q) => p - q), [...single.order(epoch).slice(0, 22)].sort((p, q) => p - q), `epoch ${epoch}: union is the epoch`);
}
assert.notDeepEqual([...sharded.order(0)], [...sharded.order(1)], 'each epoch reshuffles');
process.stdout.write(`ok rank ${rank}\n`);
