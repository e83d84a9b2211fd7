// Collectives on tensors: the differentiable sum across ranks that SyncBatchNorm is built from, and the gathers of
// the official DDP code (concat_all_gather, MoCo's batch_shuffle_ddp / batch_unshuffle_ddp).
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { record } from '../tensor/autograd.js';
import { comm as currentComm, type Comm } from './comm.js';

function floatData(op: string, t: Tensor): Float32Array | Float64Array {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Float64Array) return d;
  throw new Error(`[${op}] expected a float32 or float64 tensor, got ${t.dtype}`);
}

/**
 * Sum over ranks, differentiable: every rank's output feeds every rank's loss, so the gradient of an input is the
 * sum over ranks of the output's gradients (another allreduce), as torch.distributed.nn.all_reduce.
 */
export function allreduceSum(x: Tensor, comm: Comm = currentComm()): Tensor {
  const out = T.noGrad(() => T.clone(x));
  comm.allreduce(floatData('allreduceSum', out));
  return record(out, 'allreduceSum', [x], (g) => {
    const gx = T.clone(g);
    comm.allreduce(floatData('allreduceSum', gx));
    return [gx];
  });
}

/**
 * Every rank's x ([N, ...], the same N everywhere) concatenated in rank order: [P * N, ...]. No gradient flows back,
 * as the official concat_all_gather (torch.distributed.all_gather has none). MoCo enqueues all ranks' keys with it;
 * MoCo v3 gathers its keys with it.
 */
export function concatAllGather(x: Tensor, comm: Comm = currentComm()): Tensor {
  if (comm.size === 1) return T.noGrad(() => T.clone(x));
  const d = x.data;
  if (!(d instanceof Float32Array || d instanceof Float64Array || d instanceof Int32Array)) {
    throw new Error(`[concatAllGather] cannot gather a ${x.dtype} tensor`);
  }
  const all = comm.allgather(d);
  return T.tensor(all, [x.shape[0]! * comm.size, ...x.shape.slice(1)], { dtype: x.dtype, device: x.device });
}

/**
 * MoCo's batch_shuffle_ddp: the keys' images of all ranks are gathered, shuffled by one permutation of the global
 * batch (drawn by rank 0 and broadcast; every rank passes the same one here, rank 0's wins), and each rank
 * continues with its slice. Returns the slice and the permutation that undoes the shuffle.
 */
export function batchShuffleDdp(x: Tensor, idxShuffle: Int32Array, comm: Comm = currentComm()): { x: Tensor; idxUnshuffle: Int32Array } {
  return T.noGrad(() => {
    const xGather = concatAllGather(x, comm); // [P*N, ...]
    const total = xGather.shape[0]!;
    if (idxShuffle.length !== total) throw new Error(`[batchShuffleDdp] permutation of ${idxShuffle.length} for a global batch of ${total}`);
    const perm = Int32Array.from(idxShuffle);
    comm.broadcast(perm, 0);
    const idxUnshuffle = new Int32Array(total);
    for (let i = 0; i < total; i++) idxUnshuffle[perm[i]!] = i;
    const n = x.shape[0]!;
    const idxThis = T.tensor(perm.subarray(comm.rank * n, (comm.rank + 1) * n), [n], { dtype: 'int32', device: x.device });
    const out = T.indexSelect(xGather, 0, idxThis); // [N, ...]
    xGather.dispose();
    idxThis.dispose();
    return { x: out, idxUnshuffle };
  });
}

/** MoCo's batch_unshuffle_ddp: gathers the shuffled results and takes this rank's rows back in its own order. */
export function batchUnshuffleDdp(x: Tensor, idxUnshuffle: Int32Array, comm: Comm = currentComm()): Tensor {
  return T.noGrad(() => {
    const xGather = concatAllGather(x, comm); // [P*N, ...]
    const n = x.shape[0]!;
    const idxThis = T.tensor(idxUnshuffle.subarray(comm.rank * n, (comm.rank + 1) * n), [n], { dtype: 'int32', device: x.device });
    const out = T.indexSelect(xGather, 0, idxThis); // [N, ...]
    xGather.dispose();
    idxThis.dispose();
    return out;
  });
}

/** The mean over ranks of a few numbers (losses and metrics for logging, as MAE's all_reduce_mean). */
export function allreduceMean(values: readonly number[], comm: Comm = currentComm()): number[] {
  if (comm.size === 1) return [...values];
  const a = Float64Array.from(values);
  comm.allreduce(a);
  return [...a].map((v) => v / comm.size);
}
