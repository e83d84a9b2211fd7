// Run by bench/dist.ts, alone or under mpirun: training steps of a bench config at a global batch split over the
// ranks, with DDP as `selfsup pretrain` runs it; rank 0 prints the median step time and the share of it spent
// waiting on the gradient allreduce after backward (the communication not hidden behind backward).
import * as T from '../src/tensor/index.js';
import type { Tensor } from '../src/tensor/index.js';
import { initDistributed } from '../src/dist/comm.js';
import { DistributedDataParallel } from '../src/dist/ddp.js';
import { trainStep } from '../src/train/pretrain.js';
import { buildMethod } from '../src/methods/registry.js';
import { benchConfig, benchOptimizer, type BenchMethod } from './configs.js';

const [method, batchArg, stepsArg, warmupArg] = process.argv.slice(2) as [BenchMethod, string, string, string];
const comm = initDistributed();
const batch = Number(batchArg);
const steps = Number(stepsArg);
const cfg = benchConfig(method, batch);
const model = buildMethod(cfg, new T.Rng(0));
if (comm.size > 1) model.distribute?.(comm);
const opt = benchOptimizer(method, model.parameters().filter((p) => p.requiresGrad));
const bucketCapMb = process.env.BENCH_BUCKET_MB === undefined ? undefined : Number(process.env.BENCH_BUCKET_MB);
const ddp = comm.size > 1 ? new DistributedDataParallel(model, comm, { skipBuffer: (n) => model.checkpointExtras.includes(n), bucketCapMb }) : null;
const rng = new T.Rng(1 + comm.rank);
const local = batch / comm.size;
const views: Tensor[] = Array.from({ length: model.viewsPerSample }, () => T.keep(T.randn([local, 3, cfg.imgSize, cfg.imgSize], { rng })));
for (let i = 0; i < Number(warmupArg); i++) trainStep(model, opt, views, 0, { ddp });
const times: number[] = [];
const waits: number[] = [];
for (let i = 0; i < steps; i++) {
  comm.barrier();
  const t0 = performance.now();
  const r = trainStep(model, opt, views, 0, { ddp });
  times.push(performance.now() - t0);
  waits.push(r.commWaitMs);
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
// the slowest rank's wait is what the step pays
const worstWait = Float64Array.of(median(waits));
comm.allreduce(worstWait, 'max');
if (comm.rank === 0) {
  console.log(JSON.stringify({
    method, ranks: comm.size, threads: Number(process.env.OMP_NUM_THREADS ?? 0), batch, stepSec: median(times) / 1000,
    commWaitSec: worstWait[0]! / 1000, gradBytes: ddp?.buckets.reduce((s, b) => s + b.flat.byteLength, 0) ?? 0, buckets: ddp?.buckets.length ?? 0,
  }));
}
