// Launching data-parallel runs: `--nproc N` re-runs the same command under a local mpirun, and every rank of a
// job defaults to its share of this machine's cores for its compute threads.
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism, cpus } from 'node:os';
import { initDistributed, MPI_PACKAGES_HINT, type Comm } from './comm.js';

/** OpenMP threads for one of localSize ranks on this machine: its share of the cores (at least 1). */
export function threadsPerRank(localSize: number): number {
  return Math.max(1, Math.min(availableParallelism(), Math.floor(cpus().length / Math.max(1, localSize))));
}

/**
 * What to tell a user whose launcher bound each rank to fewer cores than its share (Open MPI binds every rank to
 * one core when it starts 2 or fewer): the rank can only compute on the cores it was bound to. Null when the
 * binding leaves the rank its share.
 */
export function bindingAdvice(boundCores: number, cores: number, localSize: number): string | null {
  const share = Math.max(1, Math.floor(cores / Math.max(1, localSize)));
  if (boundCores >= share) return null;
  return `each rank is bound to ${boundCores} core(s) but its share of this machine is ${share} of ${cores}: it computes on ${boundCores} thread(s). `
    + `Give each rank its cores with mpirun --map-by slot:PE=${share} --bind-to core -x OMP_NUM_THREADS=${share} (what --nproc does), or --bind-to none`;
}

let bindingNote: string | null = null;

/**
 * Each rank of a job on this machine computes on its share of the cores unless OMP_NUM_THREADS says (called before
 * the native addon loads, which reads it). When the launcher bound the rank to fewer cores, the advice is kept for
 * the command to print.
 */
export function applyRankThreads(env: NodeJS.ProcessEnv = process.env): void {
  const local = launchedLocalSize(env);
  if (local <= 1 || env.OMP_NUM_THREADS !== undefined) return;
  env.OMP_NUM_THREADS = String(threadsPerRank(local));
  bindingNote = bindingAdvice(availableParallelism(), cpus().length, local);
}

/** The ranks mpirun/srun started on this machine, or 1. */
export function launchedLocalSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.OMPI_COMM_WORLD_LOCAL_SIZE ?? env.PMIX_LOCAL_SIZE ?? env.MPI_LOCALNRANKS ?? 1);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

export interface LocalLaunch {
  nproc: number;
  /** compute threads per rank (default: cores / nproc) */
  threads?: number;
  /** the command line to run on every rank, without --nproc / --threads */
  args: string[];
}

/** The mpirun command line for a local launch, after checking mpirun exists and the ranks fit the cores. */
export function localMpirunArgs(l: LocalLaunch, op: string): { cmd: string; args: string[] } {
  const cores = availableParallelism();
  if (!Number.isInteger(l.nproc) || l.nproc < 1) throw new Error(`[${op}] --nproc must be a positive integer, got ${l.nproc}`);
  if (l.nproc > cores) {
    throw new Error(`[${op}] --nproc ${l.nproc} is more than the ${cores} cores of this machine; use fewer ranks, or run mpirun -np ${l.nproc} --oversubscribe yourself to force it`);
  }
  const threads = l.threads ?? Math.max(1, Math.floor(cores / l.nproc));
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`[${op}] --threads must be a positive integer, got ${l.threads}`);
  if (threads * l.nproc > cores) {
    throw new Error(`[${op}] --nproc ${l.nproc} x --threads ${threads} is more than the ${cores} cores of this machine`);
  }
  const probe = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(`[${op}] --nproc needs mpirun, which was not found on PATH: ${MPI_PACKAGES_HINT}`);
  }
  const args = [
    ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
    '-np', String(l.nproc),
    // each rank owns `threads` cores for its compute threads
    '--map-by', `slot:PE=${threads}`, '--bind-to', 'core',
    '-x', `OMP_NUM_THREADS=${threads}`,
    process.execPath, ...process.execArgv, ...l.args,
  ];
  return { cmd: 'mpirun', args };
}

/** Runs the launch and resolves with mpirun's exit code (signals forwarded, so Ctrl-C ends every rank). */
export function runLocalMpirun(l: LocalLaunch, op: string): Promise<number> {
  const { cmd, args } = localMpirunArgs(l, op);
  process.stderr.write(`[${op}] launching ${l.nproc} ranks x ${l.threads ?? Math.max(1, Math.floor(availableParallelism() / l.nproc))} threads: ${cmd} ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals): void => { child.kill(sig); };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('error', (e) => reject(new Error(`[${op}] mpirun failed to start: ${e.message}`)));
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal !== null ? 128 : 1));
    });
  });
}

/** The command line without the options that launched it locally (--nproc, --threads), for every rank to run. */
export function rankArgs(argv: readonly string[], names: readonly string[] = ['--nproc', '--threads']): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (names.includes(a)) { i++; continue; }
    if (names.some((n) => a.startsWith(`${n}=`))) continue;
    out.push(a);
  }
  return out;
}

/** The options of a data-parallel command (`--nproc N [--threads T]`). */
export interface DistributedFlags { nproc?: number | undefined; threads?: number | undefined }

/**
 * A command's action, data parallel: with --nproc the same command line re-runs under a local mpirun and this
 * process waits for it; otherwise the process joins the job mpirun/srun launched it into (or runs alone), and an
 * error says which rank it happened on.
 */
export async function runDistributed(op: string, f: DistributedFlags, body: (comm: Comm) => Promise<void>): Promise<void> {
  if (f.nproc !== undefined) {
    process.exitCode = await runLocalMpirun({
      nproc: f.nproc, ...(f.threads !== undefined ? { threads: f.threads } : {}), args: rankArgs(process.argv.slice(1)),
    }, op);
    return;
  }
  if (f.threads !== undefined) throw new Error(`[${op}] --threads goes with --nproc; for one process set OMP_NUM_THREADS`);
  const dist = initDistributed();
  if (bindingNote !== null && dist.localRank === 0) process.stderr.write(`[${op}] ${bindingNote}\n`);
  try {
    await body(dist);
  } catch (e) {
    if (dist.size > 1 && e instanceof Error) e.message = `[dist] ${dist.describe()}: ${e.message}`;
    throw e;
  }
}
