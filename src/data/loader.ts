// DataLoader: seeded shuffling, drop-last, batches of NCHW float32 built on worker threads while training runs,
// with a bounded prefetch queue. Same seed => same batches, whatever the worker count or scheduling.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BatchBuilder, type BadFilePolicy, type BatchResult, type BatchTask } from './batch.js';
import { type Dataset, type Warn } from './datasets.js';
import { Rng } from '../tensor/rng.js';
import { type ViewsSpec } from './transforms.js';
import { shardOrder } from '../dist/sampler.js';
import { type WorkerInit, type WorkerReply, type WorkerRequest } from './worker.js';

// Compiled (dist/, an installed package), the worker is plain JavaScript and starts directly. From the TypeScript
// sources (a git checkout, the tests), a tiny bootstrap registers tsx's loader (resolved from this package, not from
// the caller's cwd) and then imports worker.ts: Node 20 ignores `--import` hooks for a worker's own .ts entry point.
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCES ? './worker.ts' : './worker.js', import.meta.url);

function startWorker(init: WorkerInit): Worker {
  if (!FROM_SOURCES) return new Worker(WORKER_URL, { workerData: init });
  const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })
  .catch((e) => { setImmediate(() => { throw e; }); });`;
  return new Worker(bootstrap, { eval: true, workerData: init });
}

export interface Batch {
  /** first view, [N, C, H, W] */
  images: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
  /** dataset indices of the samples in this batch */
  indices: Int32Array;
  /** every view (multi-view presets), each [N, C, H, W]; views[0] === images */
  views: Float32Array[];
}

export interface DataLoaderOptions {
  batchSize: number;
  /** one view per entry: a preset from presets.ts or your own specs */
  transform: ViewsSpec;
  shuffle?: boolean;
  dropLast?: boolean;
  seed?: number;
  /** worker threads; 0 builds batches on the calling thread (default: available cores) */
  numWorkers?: number;
  /** batches in flight per worker (the prefetch queue holds at most numWorkers * prefetchFactor batches) */
  prefetchFactor?: number;
  /** 'skip' (default): a bad file is replaced by the next good sample, with one warning naming it; 'error': stop */
  badFile?: BadFilePolicy;
  warn?: Warn;
  /**
   * Data-parallel runs: this rank's share of every epoch's order (DistributedSampler semantics, see
   * src/dist/sampler.ts); with dropLast the epoch's tail that does not divide by worldSize is dropped, without it the
   * shards are padded by wrapping around.
   */
  shard?: { rank: number; worldSize: number };
}

interface Pending {
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
  worker: number;
}

/** An epoch's sample order over n samples: a permutation seeded by (seed, epoch), or 0..n-1 without shuffle. */
export function epochOrder(n: number, shuffle: boolean, seed: number, epoch: number): Int32Array {
  return shuffle ? Rng.fromKeys(0x5348554646, seed, epoch).randperm(n) : Int32Array.from({ length: n }, (_, i) => i);
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly numWorkers: number;
  readonly prefetchFactor: number;
  private readonly badFile: BadFilePolicy;
  private readonly warn: Warn;
  private readonly warned = new Set<string>();
  private workers: Worker[] = [];
  private inFlight: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextTaskId = 0;
  private local: BatchBuilder | null = null;
  private broken: Error | null = null;
  private closed = false;
  private iterating = false;
  private recycleNext = 0;

  constructor(readonly dataset: Dataset, private readonly options: DataLoaderOptions) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`[DataLoader] batchSize must be a positive integer, got ${batchSize}`);
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.seed = options.seed ?? 0;
    this.numWorkers = options.numWorkers ?? availableParallelism();
    this.prefetchFactor = options.prefetchFactor ?? 2;
    this.badFile = options.badFile ?? 'skip';
    this.warn = options.warn ?? ((m) => process.emitWarning(m));
    if (!Number.isInteger(this.numWorkers) || this.numWorkers < 0) throw new Error(`[DataLoader] numWorkers must be a non-negative integer, got ${this.numWorkers}`);
    if (!Number.isInteger(this.prefetchFactor) || this.prefetchFactor < 1) throw new Error(`[DataLoader] prefetchFactor must be >= 1, got ${this.prefetchFactor}`);
    if (dataset.length === 0) throw new Error(`[DataLoader] dataset ${dataset.name} is empty`);
  }

  /** batches per epoch */
  get length(): number {
    const n = this.samplesPerEpoch;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Samples this loader yields per epoch (before batching): the dataset, or this rank's shard of it. */
  get samplesPerEpoch(): number {
    const n = this.dataset.length;
    const s = this.options.shard;
    if (s === undefined) return n;
    return this.dropLast ? Math.floor(n / s.worldSize) : Math.ceil(n / s.worldSize);
  }

  /** The sample order of an epoch: a seeded permutation (or 0..n-1 without shuffle), then this rank's shard of it. */
  order(epoch: number): Int32Array {
    const n = this.dataset.length;
    const full = epochOrder(n, this.shuffle, this.seed, epoch);
    const s = this.options.shard;
    return s === undefined ? full : shardOrder(full, s.rank, s.worldSize, this.dropLast);
  }

  private start(): void {
    if (this.workers.length > 0 || this.numWorkers === 0) {
      if (this.numWorkers === 0 && !this.local) this.local = new BatchBuilder(this.dataset.source, this.options.transform, this.badFile);
      return;
    }
    const init: WorkerInit = { source: this.dataset.source, views: this.options.transform, badFile: this.badFile };
    for (let w = 0; w < this.numWorkers; w++) {
      const worker = startWorker(init);
      worker.on('message', (reply: WorkerReply) => this.onReply(w, reply));
      worker.on('error', (err) => this.fail(new Error(`[DataLoader] worker ${w} crashed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`[DataLoader] worker ${w} exited unexpectedly (code ${code})`));
      });
      worker.unref(); // referenced only while it owes us a batch, so a forgotten close() never keeps the process alive
      this.workers.push(worker);
      this.inFlight.push(0);
    }
  }

  private onReply(w: number, reply: WorkerReply): void {
    const id = reply.type === 'batch' ? reply.result.batchId : reply.batchId;
    const p = this.pending.get(id);
    this.release(w);
    if (!p) return; // from an abandoned epoch
    this.pending.delete(id);
    if (reply.type === 'batch') p.resolve(reply.result);
    else p.reject(new Error(reply.message));
  }

  private release(w: number): void {
    this.inFlight[w] = Math.max(0, (this.inFlight[w] ?? 1) - 1);
    if (this.inFlight[w] === 0) this.workers[w]?.unref();
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    void this.close();
  }

  private submit(task: BatchTask): Promise<BatchResult> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.numWorkers === 0) return this.local!.build(task);
    const w = task.batchId % this.numWorkers;
    const worker = this.workers[w]!;
    const promise = new Promise<BatchResult>((resolve, reject) => this.pending.set(task.batchId, { resolve, reject, worker: w }));
    if (this.inFlight[w] === 0) worker.ref();
    this.inFlight[w]! += 1;
    const req: WorkerRequest = { type: 'batch', task };
    worker.postMessage(req);
    return promise;
  }

  /**
   * Optional: hand a batch's image buffers back once you are done with them (e.g. copied into your tensors), so
   * the workers reuse them instead of faulting in fresh memory for every batch. The batch's arrays are detached
   * (length 0) afterwards.
   */
  recycle(batch: Batch): void {
    if (this.closed || this.broken) return;
    const buffers = batch.views.map((v) => v.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer && b.byteLength > 0);
    if (buffers.length === 0) return;
    if (this.numWorkers === 0) {
      // detach the caller's views as a transfer to a worker would
      this.local?.recycle(buffers.map((b) => structuredClone(b, { transfer: [b] })));
      return;
    }
    const w = this.recycleNext++ % this.numWorkers;
    const req: WorkerRequest = { type: 'recycle', buffers };
    this.workers[w]?.postMessage(req, buffers);
  }

  /** Iterate the batches of one epoch. Batches arrive in order; at most numWorkers * prefetchFactor are being built. */
  async *epoch(epoch = 0): AsyncGenerator<Batch, void, undefined> {
    if (this.closed) throw new Error('[DataLoader] closed');
    if (this.iterating) throw new Error('[DataLoader] an epoch is already being iterated; finish it (or break out of it) first');
    this.iterating = true;
    try {
      this.start();
      const order = this.order(epoch);
      const nBatches = this.length;
      const depth = Math.max(1, this.numWorkers * this.prefetchFactor);
      const queue: Array<Promise<BatchResult>> = [];
      let submitted = 0;
      const submitNext = (): void => {
        const b = submitted++;
        const indices = order.slice(b * this.batchSize, Math.min((b + 1) * this.batchSize, order.length));
        // ids are unique across epochs so late replies from an abandoned epoch are dropped
        const p = this.submit({ batchId: this.nextTaskId++, epoch, seed: this.seed, indices });
        p.catch(() => undefined);
        queue.push(p);
      };
      while (submitted < Math.min(depth, nBatches)) submitNext();
      for (let b = 0; b < nBatches; b++) {
        const result = await queue.shift()!;
        if (submitted < nBatches) submitNext();
        for (const w of result.warnings) {
          if (!this.warned.has(w.key)) {
            this.warned.add(w.key);
            this.warn(w.message);
          }
        }
        yield { images: result.views[0]!, shape: result.shape, labels: result.labels, indices: result.indices, views: result.views };
      }
    } finally {
      this.iterating = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = this.broken ?? new Error('[DataLoader] closed');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}
