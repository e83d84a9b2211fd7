// Launching data-parallel runs through the CLI: a rank killed mid-epoch ends the whole job quickly with a message
// naming it and `--resume` then finishes the run; bad launches (configs that differ across ranks, no mpirun, more
// ranks than cores, no binding) stop with errors naming the problem.
import { it, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpiSkip, MPIRUN_FLAGS } from './mpi.js';
import { readCheckpointJson } from '../../src/train/checkpoint.js';
import { applyRankThreads, bindingAdvice, threadsPerRank } from '../../src/dist/launch.js';
import { makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';
import { DEBIAN_FASHION_MNIST_DIR } from '../../src/data/datasets.js';

const BIN = fileURLToPath(new URL('../../bin/selfsup.js', import.meta.url));
const dataSkip = mpiSkip !== false ? mpiSkip : !existsSync(DEBIAN_FASHION_MNIST_DIR) ? 'dataset-fashion-mnist not installed' : false;

/** A tiny SimSiam pretraining on Fashion-MNIST: 8 steps of 16 per epoch, a checkpoint every 2 steps. */
function tinyArgs(out: string, epochs: number, batch = 16): string[] {
  return ['pretrain', '--method', 'simsiam', '--epochs', String(epochs), '--batch-size', String(batch), '--limit', '128', '--workers', '0',
    '--out', out, '--no-progress', '--set', 'width=0.125', '--set', 'simsiam.dim=32', '--set', 'simsiam.predDim=8',
    '--set', 'knn.disabled=true', '--set', 'ckptEverySteps=2', '--set', 'logEvery=1'];
}

const ENV = { ...process.env, OMP_NUM_THREADS: '1' };

/** The pid of rank r among mpirun's children (its environment names the rank). */
function rankPid(mpirunPid: number, rank: number): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== mpirunPid) continue;
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(d);
    } catch { /* gone */ }
  }
  return null;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function loggedSteps(out: string): number {
  const p = join(out, 'log.jsonl');
  if (!existsSync(p)) return 0;
  return readFileSync(p, 'utf8').split('\n').filter((l) => l.includes('"event":"step"')).length;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('launching data-parallel runs', () => {
  it('a rank killed mid-epoch ends the job (non-zero, < 30 s, names the rank, no rank left); --resume finishes the run', { skip: dataSkip, timeout: 180_000 }, async () => {
    const out = mkdtempSync(join(tmpdir(), 'dist-fault-'));
    try {
      const job = spawn('mpirun', [...MPIRUN_FLAGS, '-np', '2', process.execPath, BIN, ...tinyArgs(out, 2)], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      job.stdout.on('data', (b: Buffer) => { output += b.toString(); });
      job.stderr.on('data', (b: Buffer) => { output += b.toString(); });
      const exited = new Promise<number | null>((resolve) => job.on('exit', (code) => resolve(code)));
      // mid-epoch 1, after the checkpoint at step 2
      const deadline = Date.now() + 120_000;
      while (loggedSteps(out) < 3) {
        assert.ok(Date.now() < deadline, `the run never reached step 3:\n${output}`);
        assert.equal(job.exitCode, null, `the run ended early:\n${output}`);
        await sleep(20);
      }
      const victim = rankPid(job.pid!, 1);
      const survivor = rankPid(job.pid!, 0);
      assert.ok(victim !== null && survivor !== null, 'found both ranks');
      const t0 = Date.now();
      process.kill(victim, 'SIGKILL');
      const code = await exited;
      const seconds = (Date.now() - t0) / 1000;
      assert.notEqual(code, 0, 'the job fails');
      assert.ok(seconds < 30, `the job took ${seconds} s to end`);
      assert.match(output, /rank 1/, `the message names rank 1:\n${output}`);
      // rank 0 is gone too (a zombie waiting for a reaper counts as gone); mpirun itself has returned by now
      while (alive(survivor) && (Date.now() - t0) / 1000 < 30) await sleep(50);
      assert.ok(!alive(survivor), 'rank 0 was left running');
      const mid = readCheckpointJson(out);
      assert.ok(mid !== null && mid.state.step >= 2 && mid.state.step < 16, `a mid-run checkpoint (step ${mid?.state.step})`);
      const resumed = spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', '2', process.execPath, BIN, ...tinyArgs(out, 2), '--resume'], { env: ENV, encoding: 'utf8', timeout: 120_000 });
      assert.equal(resumed.status, 0, `resume failed:\n${resumed.stdout}\n${resumed.stderr}`);
      assert.match(resumed.stdout, /resumed from .* at epoch \d, step \d+/);
      const done = readCheckpointJson(out);
      assert.equal(done?.state.epoch, 2);
      assert.equal(done?.state.step, 16);
      assert.equal(done?.state.worldSize, 2);
      // a different number of ranks is refused
      const single = spawnSync(process.execPath, [BIN, ...tinyArgs(out, 3), '--resume'], { env: ENV, encoding: 'utf8', timeout: 60_000 });
      assert.notEqual(single.status, 0);
      assert.match(single.stderr, /trained on 2 rank\(s\); resume it on 2/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('configs that differ across ranks: every rank stops, naming the key (hash checked at start)', { skip: dataSkip, timeout: 120_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), 'dist-mismatch-'));
    try {
      // MPMD: rank 0 and rank 1 get different command lines
      const r = spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', '1', process.execPath, BIN, ...tinyArgs(out, 1, 16), ':', '-np', '1', process.execPath, BIN, ...tinyArgs(out, 1, 32)],
        { env: ENV, encoding: 'utf8', timeout: 100_000 });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /\[pretrain\] the config differs across ranks \(checked by a hash at start\): rank 1 has batchSize=32 where rank 0 has 16/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('--nproc: no mpirun on PATH, or more ranks than cores, is an error saying what to do', { timeout: 60_000 }, () => {
    const noMpi = spawnSync(process.execPath, [BIN, ...tinyArgs('/nonexistent', 1), '--nproc', '1'], { env: { ...ENV, PATH: '/nonexistent' }, encoding: 'utf8' });
    assert.notEqual(noMpi.status, 0);
    assert.match(noMpi.stderr, /\[pretrain\] --nproc needs mpirun, which was not found on PATH: install the Debian packages libopenmpi-dev and openmpi-bin/);
    const cores = availableParallelism();
    const tooMany = spawnSync(process.execPath, [BIN, ...tinyArgs('/nonexistent', 1), '--nproc', String(cores + 1)], { env: ENV, encoding: 'utf8' });
    assert.notEqual(tooMany.status, 0);
    assert.match(tooMany.stderr, new RegExp(`\\[pretrain\\] --nproc ${cores + 1} is more than the ${cores} cores of this machine`));
  });

  it('linear and finetune --nproc: no mpirun on PATH, or more ranks than cores, is an error saying what to do', { timeout: 60_000 }, () => {
    const cores = availableParallelism();
    for (const cmd of ['linear', 'finetune']) {
      const noMpi = spawnSync(process.execPath, [BIN, cmd, '--checkpoint', '/nonexistent', '--nproc', '1'], { env: { ...ENV, PATH: '/nonexistent' }, encoding: 'utf8' });
      assert.notEqual(noMpi.status, 0);
      assert.match(noMpi.stderr, new RegExp(`\\[${cmd}\\] --nproc needs mpirun, which was not found on PATH: install the Debian packages libopenmpi-dev and openmpi-bin`));
      const tooMany = spawnSync(process.execPath, [BIN, cmd, '--checkpoint', '/nonexistent', '--nproc', String(cores + 1)], { env: ENV, encoding: 'utf8' });
      assert.notEqual(tooMany.status, 0);
      assert.match(tooMany.stderr, new RegExp(`\\[${cmd}\\] --nproc ${cores + 1} is more than the ${cores} cores of this machine`));
    }
  });

  it('linear with options that differ across ranks: every rank stops, naming the option (hash checked at start)', { skip: mpiSkip, timeout: 120_000 }, () => {
    const root = mkdtempSync(join(tmpdir(), 'dist-linear-mismatch-'));
    try {
      const data = makeImageFolder(join(root, 'data'), { classes: ['a', 'b'], perClass: 2, size: 16 });
      const run = makeTinyRun('simsiam', data, join(root, 'run'));
      const args = (seed: number): string[] => [process.execPath, BIN, 'linear', '--checkpoint', run, '--epochs', '1', '--batch-size', '2', '--workers', '0', '--seed', String(seed)];
      const r = spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', '1', ...args(0), ':', '-np', '1', ...args(1)], { env: ENV, encoding: 'utf8', timeout: 100_000 });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /\[linear\] the config differs across ranks \(checked by a hash at start\): rank 1 has seed=1 where rank 0 has 0/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("each rank of a job defaults to its share of the machine's cores; a binding to fewer cores is explained", () => {
    const env: NodeJS.ProcessEnv = { OMPI_COMM_WORLD_LOCAL_SIZE: '2' };
    applyRankThreads(env);
    assert.equal(env.OMP_NUM_THREADS, String(threadsPerRank(2)));
    const mine: NodeJS.ProcessEnv = { OMPI_COMM_WORLD_LOCAL_SIZE: '2', OMP_NUM_THREADS: '3' };
    applyRankThreads(mine);
    assert.equal(mine.OMP_NUM_THREADS, '3', 'OMP_NUM_THREADS wins');
    const alone: NodeJS.ProcessEnv = {};
    applyRankThreads(alone);
    assert.equal(alone.OMP_NUM_THREADS, undefined, 'one process keeps the OpenMP default');
    assert.equal(bindingAdvice(8, 16, 2), null);
    assert.match(bindingAdvice(1, 16, 2)!, /each rank is bound to 1 core\(s\) but its share of this machine is 8 of 16: .*--map-by slot:PE=8 --bind-to core -x OMP_NUM_THREADS=8/);
  });

  it('a launch as one of several ranks without the Open MPI binding says which packages to install', { timeout: 60_000 }, () => {
    const r = spawnSync(process.execPath, [BIN, ...tinyArgs('/nonexistent', 1)], {
      env: { ...ENV, OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0', SELFSUP_MPI_ADDON: '/nonexistent/selfsup_mpi.node' }, encoding: 'utf8',
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /\[dist\] this process was launched as one of 2 ranks, but the Open MPI binding is not available .*install the Debian packages libopenmpi-dev and openmpi-bin/);
  });
});
