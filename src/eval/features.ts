// The one loop that runs a frozen model over a loader's images to collect features: the kNN monitor's banks, the
// precomputed linear probe and `embed` each hand it a sink for what they keep.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Batch } from '../data/loader.js';
import type { BatchSource } from './supervised.js';

/**
 * Runs `features` over every batch `loader` yields in epoch 0, in its order, with no graph (eval mode is the
 * caller's), and hands each batch's features [B, D] to `sink` with the images [B, C, H, W] and the batch. The sink runs
 * inside the batch's tidy scope: it must copy out or `T.keep` what it holds on to. `onBatch` counts batches.
 */
export async function forEachFeatureBatch(loader: BatchSource, features: (x: Tensor) => Tensor,
  sink: (f: Tensor, x: Tensor, b: Batch) => void, onBatch?: (done: number, total: number) => void): Promise<void> {
  let batches = 0;
  for await (const b of loader.epoch(0)) {
    T.noGrad(() => T.tidy(() => {
      const x = T.tensor(b.images, b.shape); // [B, C, H, W]
      sink(features(x), x, b); // [B, D]
    }));
    onBatch?.(++batches, loader.length);
  }
}
