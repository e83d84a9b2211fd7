// Run under mpirun -np 2 by dist.test.ts. simsiam | mae: the pretraining engine end to end (sampler, SyncBN or plain
// DDP, per-sample masks), rank 0 writing the run folder. moco: three training steps of MoCo with shuffling BN across
// the ranks, each rank holding its half of the global batch; rank 0 writes losses and weights.
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { initDistributed } from '../../src/dist/comm.js';
import { pretrain, buildOptimizer, trainStep } from '../../src/train/pretrain.js';
import { buildMethod } from '../../src/methods/registry.js';
import { DistributedDataParallel } from '../../src/dist/ddp.js';
import { MoCo } from '../../src/methods/moco.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import * as T from '../../src/tensor/index.js';
import { tinyConfig, mocoBatches, mocoShuffles, MOCO_BATCH } from './tiny.js';

const [method, out] = process.argv.slice(2) as ['simsiam' | 'mae' | 'mocov3' | 'moco', string];
const comm = initDistributed({ force: 'mpi' });
if (method === 'moco') {
  const cfg = tinyConfig('moco', out);
  const model = buildMethod(cfg, new T.Rng(cfg.seed)) as MoCo;
  model.distribute(comm);
  model.train();
  const { opt } = buildOptimizer(cfg, model);
  // a 5 KB cap: many buckets, so the test covers their order and overlap
  const ddp = new DistributedDataParallel(model, comm, { skipBuffer: (n) => n === 'queue' || n === 'queue_ptr', bucketCapMb: 0.005 });
  // rank r: rows r, r + P, ... of the global batch (DistributedSampler's interleaving)
  const perRank = MOCO_BATCH / comm.size;
  const rows = T.tensor(Array.from({ length: perRank }, (_, i) => comm.rank + i * comm.size), [perRank], { dtype: 'int32' });
  const shuffles = mocoShuffles();
  const losses: number[] = [];
  mocoBatches().forEach(([x1, x2], step) => {
    const views = [T.indexSelect(x1!, 0, rows), T.indexSelect(x2!, 0, rows)];
    losses.push(trainStep(model, opt, views, 0, { ddp, context: { shuffles: [shuffles[step]!] } }).loss);
  });
  if (comm.rank === 0) {
    writeSafetensors(join(out, 'moco.safetensors'), model.stateDict(), {});
    writeFileSync(join(out, 'losses.json'), JSON.stringify(losses));
  }
} else {
  await pretrain(tinyConfig(method, out), { callbacks: { log: () => undefined }, bucketCapMb: 0.005 });
}
