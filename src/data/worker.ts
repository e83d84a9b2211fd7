// Worker-thread entry of the DataLoader: receives the sample source and view specs once, then builds batches on request.
// Every failure is answered with an error message for the batch, so the loader rejects instead of waiting forever.
import { parentPort, workerData } from 'node:worker_threads';
import { BatchBuilder, type BadFilePolicy, type BatchTask } from './batch.js';
import { type SampleSource } from './datasets.js';
import { type ViewsSpec } from './transforms.js';

export interface WorkerInit {
  source: SampleSource;
  views: ViewsSpec;
  badFile: BadFilePolicy;
}

export type WorkerReply =
  | { type: 'batch'; result: import('./batch.js').BatchResult }
  | { type: 'error'; batchId: number; message: string };

if (!parentPort) throw new Error('[DataLoader worker] must run as a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const builder = new BatchBuilder(init.source, init.views, init.badFile);

// batches run one at a time per worker (decoding inside a batch is already concurrent)
let chain: Promise<void> = Promise.resolve();
export type WorkerRequest = { type: 'batch'; task: BatchTask } | { type: 'recycle'; buffers: ArrayBuffer[] };

port.on('message', (req: WorkerRequest) => {
  if (req.type === 'recycle') {
    builder.recycle(req.buffers);
    return;
  }
  const task = req.task;
  chain = chain.then(async () => {
    try {
      const result = await builder.build(task);
      const reply: WorkerReply = { type: 'batch', result };
      port.postMessage(reply, [...result.views.map((v) => v.buffer), result.labels.buffer, result.indices.buffer] as ArrayBuffer[]);
    } catch (e) {
      const reply: WorkerReply = { type: 'error', batchId: task.batchId, message: e instanceof Error ? e.message : String(e) };
      port.postMessage(reply);
    }
  });
});
