// Run under mpirun by bench/dist.ts: the selfsup binding's in-place allreduce (float32, sum) of 1, 16 and 64 MB,
// blocking and nonblocking (iallreduce + wait, as DDP's buckets use it); rank 0 prints the median seconds as JSON.
import { initDistributed } from '../src/dist/comm.js';

const comm = initDistributed({ force: 'mpi' });
const iters = Number(process.argv[2] ?? 20);
const warmup = 3;
for (const mb of [1, 16, 64]) {
  const buf = new Float32Array((mb * 1024 * 1024) / 4).fill(comm.rank + 1);
  for (const mode of ['blocking', 'nonblocking'] as const) {
    const t: number[] = [];
    for (let i = 0; i < warmup + iters; i++) {
      comm.barrier();
      const t0 = performance.now();
      if (mode === 'blocking') comm.allreduce(buf);
      else comm.iallreduce(buf).wait();
      if (i >= warmup) t.push((performance.now() - t0) / 1000);
    }
    t.sort((a, b) => a - b);
    if (comm.rank === 0) console.log(JSON.stringify({ impl: `selfsup-${mode}`, mb, ranks: comm.size, sec: t[Math.floor(iters / 2)] }));
  }
}
