// The pictures a pretraining run logs while it trains: its augmentation grid at the start, and for MAE the official
// demo's reconstruction rows of the same held-out images with the same masks after every epoch.
import * as T from '../tensor/index.js';
import { DataLoader } from '../data/loader.js';
import type { Dataset } from '../data/datasets.js';
import type { ViewsSpec } from '../data/transforms.js';
import type { PretrainConfig } from '../train/config.js';
import { evalTransform, openDataset } from '../data/open.js';
import type { Method } from '../methods/method.js';
import { augmentationCells, gridPng, reconstructionCells, zoomTo } from './picture.js';
import { presetNormalization } from '../data/presets.js';

/** The first `n` images of ds through a transform, as one batch [n, C, H, W]. */
export async function loadImages(ds: Dataset, transform: ViewsSpec): Promise<{ images: Float32Array; shape: [number, number, number, number] }> {
  const loader = new DataLoader(ds, { batchSize: ds.length, transform, shuffle: false, dropLast: false, seed: 0, numWorkers: 0 });
  try {
    for await (const b of loader.epoch(0)) return { images: b.images, shape: b.shape };
  } finally {
    await loader.close();
  }
  throw new Error(`[data] ${ds.name} holds no images`);
}

/** 8 training images x (original + 6 views) of the run's augmentation, as PNG bytes. */
export async function augmentationGridPng(ds: Dataset, spec: ViewsSpec, seed: number): Promise<Uint8Array> {
  const cells = await augmentationCells(ds, spec, { rows: 8, cols: 6, seed });
  return (await gridPng(cells, zoomTo(cells))).png;
}

/**
 * For a method that reconstructs its input (MAE), a function that draws its reconstructions of `rows` fixed held-out
 * images (evenly spaced through the test split) with fixed masks, as PNG bytes; the model is put in eval mode for the
 * pass and restored. Null for the other methods.
 */
export async function reconstructionMonitor(cfg: PretrainConfig, model: Method, rows = 8): Promise<(() => Promise<Uint8Array>) | null> {
  if (model.reconstruct === undefined) return null;
  const ds = openDataset(cfg.testData ?? cfg.data, 'test', rows);
  const { images, shape } = await loadImages(ds, evalTransform(cfg.augment, cfg.imgSize));
  const norm = presetNormalization(evalTransform(cfg.augment, cfg.imgSize));
  return async () => {
    const wasTraining = model.training;
    model.eval();
    const x = T.tensor(images, shape);
    try {
      const r = model.reconstruct!(x, new T.Rng(cfg.seed + 1)); // the same masks every epoch
      const cells = reconstructionCells(r, norm);
      for (const t of [r.original, r.masked, r.reconstruction, r.pasted]) t.dispose();
      return (await gridPng(cells, zoomTo(cells))).png;
    } finally {
      x.dispose();
      model.train(wasTraining);
    }
  };
}
