// Run under mpirun -np 2 by eval.test.ts: `selfsup linear` and `selfsup finetune` on tiny runs, each rank training
// on its shard at half the global batch; rank 0 writes each job's output folder.
import { join } from 'node:path';
import { initDistributed } from '../../src/dist/comm.js';
import { runLinear } from '../../src/cli/linear.js';
import { runFinetune } from '../../src/cli/finetune.js';
import { EVAL_JOBS, finetuneJobArgs, linearJobArgs } from './tiny.js';

const [root, data] = process.argv.slice(2) as [string, string];
const comm = initDistributed({ force: 'mpi' });
for (const job of EVAL_JOBS) {
  const out = join(root, 'two', job.name);
  if (job.command === 'linear') await runLinear({ ...linearJobArgs(job, root, data, out), comm });
  else await runFinetune({ ...finetuneJobArgs(job, root, data, out), comm });
}
