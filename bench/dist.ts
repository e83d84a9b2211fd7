// npm run bench:dist: data-parallel costs on this machine, as JSON lines.
//  1. allreduce (float32 sum, in place) of 1, 16 and 64 MB on 2 ranks through the selfsup binding, next to a plain C
//     MPI program doing the same, compiled with mpicc in this run (bench/allreduce.c); ratio = C time / ours.
//  2. training img/s of the bench configs (SimSiam, MoCo v2, MAE; batch 128, 32x32) with 1 process x 2 threads and
//     2 processes x 1 thread, and the share of the 2-rank step spent waiting on the gradient allreduce.
// Run on a quiet machine (take the bench lock). Options: --iters 20 --steps 3 --warmup 1 --methods simsiam,moco,mae
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const HERE = dirname(fileURLToPath(import.meta.url));
const iters = arg('iters', '20');
const steps = arg('steps', '3');
const warmup = arg('warmup', '1');
const methods = arg('methods', 'simsiam,moco,mae').split(',');
const RANKS = 2;
const MPIRUN = [...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '-np', String(RANKS), '--bind-to', 'core'];
const cpu = cpus()[0]?.model ?? 'unknown CPU';
const common = { cpu, cores: cpus().length, load1: +loadavg()[0]!.toFixed(2) };

function jsonLines(text: string): Record<string, number | string>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, number | string>);
}

// 1. allreduce: the C baseline is built here, from source, with this machine's mpicc
const work = mkdtempSync(join(tmpdir(), 'bench-dist-'));
try {
  const exe = join(work, 'allreduce');
  execFileSync('mpicc', ['-O2', join(HERE, 'allreduce.c'), '-o', exe]);
  const c = jsonLines(execFileSync('mpirun', [...MPIRUN, exe, iters], { encoding: 'utf8' }));
  const ours = jsonLines(execFileSync('mpirun', [...MPIRUN, process.execPath, '--import', 'tsx', join(HERE, 'dist-allreduce-child.ts'), iters], { encoding: 'utf8' }));
  for (const r of ours) {
    const base = c.find((x) => x.mb === r.mb)!;
    const bytes = Number(r.mb) * 1024 * 1024;
    const sec = Number(r.sec);
    // bus bandwidth as nccl-tests count it: 2 (P - 1) / P of the buffer crosses each link
    console.log(JSON.stringify({
      name: 'allreduce', impl: r.impl, mb: r.mb, ranks: r.ranks, sec: +sec.toPrecision(4),
      busbw_GBps: +((bytes * 2 * (RANKS - 1)) / RANKS / sec / 1e9).toFixed(3), c_sec: +Number(base.sec).toPrecision(4),
      vs_c: +(Number(base.sec) / sec).toFixed(3), iters: Number(iters), ...common,
    }));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

// 2. training: one process with both cores' threads, then one thread on each of two ranks
const child = join(HERE, 'dist-train-child.ts');
for (const m of methods) {
  const args = [process.execPath, '--import', 'tsx', child, m, '128', steps, warmup];
  const single = jsonLines(execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } }))[0]!;
  const multi = jsonLines(execFileSync('mpirun', [...MPIRUN, '-x', 'OMP_NUM_THREADS=1', ...args], { encoding: 'utf8' }))[0]!;
  for (const r of [single, multi]) {
    const step = Number(r.stepSec);
    const wait = Number(r.commWaitSec);
    console.log(JSON.stringify({
      name: 'train_dist', method: m, ranks: r.ranks, threads_per_rank: r.threads, batch: r.batch, value: +(Number(r.batch) / step).toFixed(2), unit: 'img/s',
      step_sec: +step.toFixed(3), comm_wait_sec: +wait.toFixed(4), comm_share: +(wait / step).toFixed(4),
      grad_mb: +(Number(r.gradBytes) / 1048576).toFixed(1), buckets: r.buckets, steps: Number(steps), ...common,
    }));
  }
}
