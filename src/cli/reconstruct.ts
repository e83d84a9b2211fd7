// `selfsup reconstruct`: for an MAE run, a PNG grid like the official demo, one row per image:
// original | masked | reconstruction | reconstruction with the visible patches pasted back.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import * as T from '../tensor/index.js';
import { evalTransform, openDataset } from '../data/open.js';
import { MaskedAutoencoderViT } from '../methods/mae.js';
import { reconstruct } from '../eval/reconstruct.js';
import { reconstructionCells, writeGridPng } from '../eval/picture.js';
import { loadImages } from '../eval/run-pictures.js';
import { loadPretrained, positiveInt, finiteNumber, runNormalization } from '../eval/pretrained.js';

export interface ReconstructOptions {
  checkpoint: string;
  /** images to reconstruct (default: the test split of the run's data) */
  data?: string;
  out: string;
  images: number;
  /** default: the run's mask ratio */
  maskRatio?: number;
  seed: number;
  zoom?: number;
}

export interface ReconstructResult { width: number; height: number; rows: number; loss: number; maskRatio: number }

export async function runReconstruct(o: ReconstructOptions): Promise<ReconstructResult> {
  const p = loadPretrained(o.checkpoint, 'reconstruct', ['mae']);
  const model = p.model as MaskedAutoencoderViT;
  try {
    const maskRatio = o.maskRatio ?? p.cfg.mae.maskRatio;
    if (!(maskRatio >= 0 && maskRatio < 1)) throw new Error(`[reconstruct] --mask-ratio must be in [0, 1), got ${maskRatio}`);
    const ds = openDataset(o.data ?? p.cfg.testData ?? p.cfg.data, 'test', o.images);
    if (ds.length === 0) throw new Error(`[reconstruct] ${o.data ?? p.cfg.data} holds no images`);
    const { images, shape } = await loadImages(ds, evalTransform(p.cfg.augment, p.cfg.imgSize));
    const x = T.tensor(images, shape);
    const noise = T.rand([shape[0], model.numPatches], { rng: new T.Rng(o.seed) });
    const r = reconstruct(model, x, maskRatio, noise);
    x.dispose();
    noise.dispose();
    const rows = reconstructionCells(r, runNormalization(p.cfg));
    for (const t of [r.original, r.masked, r.reconstruction, r.pasted]) t.dispose();
    const zoom = o.zoom ?? Math.max(1, Math.ceil(96 / p.cfg.imgSize));
    const size = await writeGridPng(resolve(o.out), rows, zoom);
    return { ...size, rows: shape[0], loss: r.loss, maskRatio };
  } finally {
    model.dispose();
  }
}

export function registerReconstruct(program: Command): void {
  program
    .command('reconstruct')
    .description('MAE reconstructions as a PNG grid: original | masked | reconstruction | reconstruction + visible patches')
    .requiredOption('--checkpoint <dir>', "an MAE run folder written by 'selfsup pretrain --method mae'")
    .option('--data <path>', "images (default: the test split of the run's data)")
    .option('--out <file>', 'PNG to write', 'reconstruction.png')
    .option('--images <n>', 'rows (images, evenly strided through the data)', positiveInt('reconstruct', 'images'), 8)
    .option('--mask-ratio <x>', "fraction of patches removed (default: the run's)", finiteNumber('reconstruct', 'mask-ratio'))
    .option('--seed <n>', 'seed of the random masks', (v: string) => Number.parseInt(v, 10), 0)
    .option('--zoom <k>', 'magnify cells k times (default: to at least 96 px)', positiveInt('reconstruct', 'zoom'))
    .action(async (f: { checkpoint: string; data?: string; out: string; images: number; maskRatio?: number; seed: number; zoom?: number }) => {
      const r = await runReconstruct({
        checkpoint: f.checkpoint, out: f.out, images: f.images, seed: f.seed,
        ...(f.data !== undefined ? { data: f.data } : {}), ...(f.maskRatio !== undefined ? { maskRatio: f.maskRatio } : {}), ...(f.zoom !== undefined ? { zoom: f.zoom } : {}),
      });
      process.stdout.write(`[reconstruct] wrote ${resolve(f.out)} (${r.width}x${r.height}, ${r.rows} images, mask ratio ${r.maskRatio}, loss on removed patches ${r.loss.toFixed(4)})\n`);
    });
}
