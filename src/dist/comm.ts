// The process group of a data-parallel run: Open MPI through the optional selfsup_mpi addon when the process was
// launched by mpirun/srun, a single-process stand-in otherwise. The addon is loaded lazily, only for a launch
// with more than one rank, so a machine without Open MPI runs everything single-process as before.
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
import { hostname } from 'node:os';

export type ReduceOp = 'sum' | 'max' | 'min';
export type CommArray = Float32Array | Float64Array | Int32Array;

/** A nonblocking allreduce in flight; the array must not be touched until wait() returns. */
export interface PendingReduce {
  wait(): void;
  /** true once the reduction has completed (wait() is still required) */
  test(): boolean;
}

export interface Comm {
  readonly rank: number;
  readonly size: number;
  /** rank among the processes on this machine */
  readonly localRank: number;
  readonly localSize: number;
  /** 'mpi' for an Open MPI job, 'local' for a single process */
  readonly backend: 'mpi' | 'local';
  /** this rank's host and rank, for messages: "rank 1 of 2 on node7" */
  describe(): string;
  /** In place across ranks (sum by default); blocking. */
  allreduce(a: CommArray, op?: ReduceOp): void;
  /** In-place sum that runs on the communication thread while this thread computes. */
  iallreduce(a: CommArray): PendingReduce;
  /** Every rank's equally long array, concatenated in rank order. */
  allgather<A extends CommArray>(a: A): A;
  /** In place from root (bytes of any typed array). */
  broadcast(a: CommArray | Uint8Array, root?: number): void;
  barrier(): void;
  /** Ends every rank of the job now with this exit code (MPI_Abort); never returns. */
  abort(code: number): never;
  finalize(): void;
}

interface MpiAddon {
  init(): void;
  finalize(): void;
  info(): { initialized: boolean; rank: number; size: number; localRank: number; localSize: number; processor: string; library: string };
  allreduce(a: CommArray, op: ReduceOp): void;
  iallreduce(a: CommArray): number;
  wait(h: number): void;
  test(h: number): boolean;
  allgather(send: CommArray, recv: CommArray): void;
  broadcast(a: CommArray | Uint8Array, root: number): void;
  barrier(): void;
  abort(code: number): never;
  setChunkElements(n: number): void;
}

const ADDON_PATH = '../../native/mpi/build/Release/selfsup_mpi.node';
/** What to install when distributed training is asked for and Open MPI is missing (one definition for all messages). */
export const MPI_PACKAGES_HINT = 'install the Debian packages libopenmpi-dev and openmpi-bin (apt-get install libopenmpi-dev openmpi-bin), then run npm run build:mpi';

let addonCache: MpiAddon | null = null;
let addonError: string | null = null;

/** The Open MPI addon, loaded on first use; null (with mpiLoadError()) when it is not built or cannot load. */
export function mpiAddon(): MpiAddon | null {
  if (addonCache !== null || addonError !== null) return addonCache;
  try {
    addonCache = createRequire(import.meta.url)(process.env.SELFSUP_MPI_ADDON ?? ADDON_PATH) as MpiAddon;
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    addonError = `the Open MPI binding is not available (${reason}); ${MPI_PACKAGES_HINT}`;
  }
  return addonCache;
}

export function mpiLoadError(): string | null {
  mpiAddon();
  return addonError;
}

/** The world size the launcher (mpirun, or srun with PMIx) announced to this process, or 1. */
export function launchedWorldSize(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.OMPI_COMM_WORLD_SIZE ?? env.PMIX_SIZE ?? env.PMI_SIZE ?? env.SLURM_NTASKS;
  // SLURM_NTASKS alone (an sbatch shell) does not mean this process is one of the tasks
  if (v === undefined || (env.SLURM_NTASKS === v && env.SLURM_PROCID === undefined && env.OMPI_COMM_WORLD_SIZE === undefined)) return 1;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/** The single-process group: collectives are copies or no-ops. */
class LocalComm implements Comm {
  readonly rank = 0;
  readonly size = 1;
  readonly localRank = 0;
  readonly localSize = 1;
  readonly backend = 'local' as const;
  describe(): string { return `rank 0 of 1 on ${hostname()}`; }
  allreduce(): void {}
  iallreduce(): PendingReduce { return { wait: () => undefined, test: () => true }; }
  allgather<A extends CommArray>(a: A): A { return a.slice() as A; }
  broadcast(): void {}
  barrier(): void {}
  abort(code: number): never { process.exit(code); }
  finalize(): void {}
}

class MpiComm implements Comm {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  readonly backend = 'mpi' as const;
  private readonly host: string;
  private finalized = false;
  constructor(private readonly addon: MpiAddon) {
    addon.init();
    const i = addon.info();
    this.rank = i.rank;
    this.size = i.size;
    this.localRank = i.localRank;
    this.localSize = i.localSize;
    this.host = i.processor;
  }
  describe(): string { return `rank ${this.rank} of ${this.size} on ${this.host}`; }
  allreduce(a: CommArray, op: ReduceOp = 'sum'): void { this.addon.allreduce(a, op); }
  iallreduce(a: CommArray): PendingReduce {
    const h = this.addon.iallreduce(a);
    let done = false;
    return {
      wait: () => { if (!done) { done = true; this.addon.wait(h); } },
      test: () => done || this.addon.test(h),
    };
  }
  allgather<A extends CommArray>(a: A): A {
    const out = new (a.constructor as new (n: number) => A)(a.length * this.size);
    this.addon.allgather(a, out);
    return out;
  }
  broadcast(a: CommArray | Uint8Array, root = 0): void { this.addon.broadcast(a, root); }
  barrier(): void { this.addon.barrier(); }
  abort(code: number): never { return this.addon.abort(code); }
  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.addon.finalize();
  }
}

let current: Comm = new LocalComm();

/** The process group in use (single-process until initDistributed() joins an MPI job). */
export function comm(): Comm {
  return current;
}

/**
 * Joins the MPI job this process was launched into (once; later calls return the same group). Single-process when
 * not launched by mpirun/srun, or with force: 'local'. A multi-rank launch without the binding is an error that
 * says what to install, as is force: 'mpi' without it.
 */
export function initDistributed(opts: { force?: 'mpi' | 'local' } = {}): Comm {
  if (current.backend === 'mpi') return current;
  const world = launchedWorldSize();
  if (opts.force === 'local' || (world === 1 && opts.force !== 'mpi')) return current;
  const addon = mpiAddon();
  if (addon === null) {
    throw new Error(`[dist] this process was launched as one of ${world} ranks, but ${addonError ?? MPI_PACKAGES_HINT}`);
  }
  current = new MpiComm(addon);
  // A clean exit finalizes. A failing one aborts the whole job: the other ranks may be blocked in a collective
  // waiting for this one, and MPI_Finalize would wait for them in turn (a hung job instead of a failed one).
  // Node reports an uncaught error only after 'exit' handlers, and the abort below would swallow it: say it first
  process.on('uncaughtExceptionMonitor', (e) => {
    writeSync(2, `[dist] ${current.describe()} failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  });
  process.once('exit', (code) => {
    if (code !== 0) {
      // let mpirun forward this rank's last words (the error) before the job is torn down
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      current.abort(code);
    }
    try { current.finalize(); } catch { current.abort(1); }
  });
  return current;
}

/** Test hook: chunk size of the native allreduce (elements per MPI call). */
export function setAllreduceChunkElements(n: number): void {
  mpiAddon()?.setChunkElements(n);
}
