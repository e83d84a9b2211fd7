// The baseline every learned feature must beat: weighted kNN on the raw pixels of the same images, under the same
// protocol as the kNN monitor (cosine, k, t). Two variants, as people quote them: raw pixels, and pixels with the
// bank's mean image subtracted (which removes the brightness every image shares, so cosine compares shapes).
import * as T from '../tensor/index.js';
import type { Dataset } from '../data/datasets.js';
import { DataLoader } from '../data/loader.js';
import type { ViewsSpec } from '../data/transforms.js';
import { knnClassify, type KnnOptions } from './knn.js';

export interface PixelBaseline {
  raw: { top1: number; top5: number };
  centered: { top1: number; top5: number };
  /** the side, in pixels, the images were compared at (absent in checkpoints written before it was recorded) */
  size?: number;
}

/**
 * The one square size every image of a dataset is stored at (Fashion-MNIST 28, CIFAR 32), or null where it is not
 * known without decoding (image files) or the images differ. The pixel baseline compares images at this size, so a
 * run that trains at a lower resolution is still measured against the pixels as stored.
 */
export function nativeImageSize(ds: Dataset): number | null {
  const src = ds.source;
  if (src.kind !== 'packed' || src.widths.length === 0) return null;
  const w = src.widths[0]!;
  for (let i = 0; i < src.widths.length; i++) if (src.widths[i] !== w || src.heights[i] !== w) return null;
  return w;
}

async function pixels(ds: Dataset, spec: ViewsSpec, workers: number): Promise<{ x: Float32Array; dim: number; labels: Int32Array }> {
  const loader = new DataLoader(ds, { batchSize: 256, transform: spec, shuffle: false, dropLast: false, seed: 0, numWorkers: workers });
  const chunks: Float32Array[] = [];
  const labels: number[] = [];
  let dim = 0;
  try {
    for await (const b of loader.epoch(0)) {
      dim = b.shape[1] * b.shape[2] * b.shape[3];
      chunks.push(Float32Array.from(b.images));
      for (const l of b.labels) labels.push(l);
    }
  } finally {
    await loader.close();
  }
  const x = new Float32Array(labels.length * dim);
  let off = 0;
  for (const c of chunks) { x.set(c, off); off += c.length; }
  return { x, dim, labels: Int32Array.from(labels) };
}

/** kNN top-1/top-5 of the test images against the bank on raw and on mean-subtracted pixels (eval transform applied). */
export async function pixelKnnBaseline(bank: Dataset, test: Dataset, spec: ViewsSpec, classes: number,
  opts: KnnOptions & { workers?: number } = {}): Promise<PixelBaseline> {
  const workers = opts.workers ?? 0;
  const b = await pixels(bank, spec, workers);
  const q = await pixels(test, spec, workers);
  const mean = new Float32Array(b.dim);
  const nBank = b.labels.length;
  for (let i = 0; i < nBank; i++) for (let j = 0; j < b.dim; j++) mean[j]! += b.x[i * b.dim + j]! / nBank;
  const run = (center: boolean): { top1: number; top5: number } => T.tidy(() => {
    const prep = (a: Float32Array, n: number): T.Tensor => {
      const t = T.tensor(center ? a.map((v, i) => v - mean[i % b.dim]!) : a, [n, b.dim]);
      return T.l2Normalize(t, 1);
    };
    const r = knnClassify(prep(b.x, nBank), b.labels, prep(q.x, q.labels.length), q.labels, classes, opts);
    return { top1: r.top1, top5: r.top5 };
  });
  return { raw: run(false), centered: run(true) };
}
