// `selfsup embed`: embeddings of a folder (or dataset split) to embeddings.safetensors, a CSV of file paths and
// labels beside it, maps (PNG scatters coloured by label): PCA always, t-SNE with --tsne, and the TensorBoard
// projector's files (tensors, metadata, sprite) in tb/. Everything is computed before anything is written.
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as T from '../tensor/index.js';
import { DataLoader } from '../data/loader.js';
import { describeSample } from '../data/datasets.js';
import { evalTransform, openDataset } from '../data/open.js';
import { serializeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { pca, embeddingsCsv } from '../eval/embed.js';
import { tsne } from '../eval/tsne.js';
import { scatterSvg, tensorImageToRgb } from '../eval/picture.js';
import { forEachFeatureBatch } from '../eval/features.js';
import { writeProjector } from '../io/tensorboard.js';
import type { RgbImage } from '../data/image.js';
import { loadPretrained, positiveInt, runNormalization } from '../eval/pretrained.js';
import sharp from 'sharp';
import { SingleBar } from 'cli-progress';
import type { OnProgress } from '../io/progress.js';
import { progressBar } from './progress.js';

export interface EmbedOptions {
  checkpoint: string;
  /** images: a folder (class subfolders give labels), a dataset, or default the run's data */
  data?: string;
  split: 'train' | 'test';
  out: string;
  limit: number | null;
  batchSize: number;
  workers: number;
  /** also a t-SNE map with this perplexity (sklearn's default is 30); null: PCA only */
  tsnePerplexity?: number | null;
  /** progress of the feature pass, batch by batch */
  onProgress?: OnProgress;
  /** t-SNE progress: iteration (of 1000) and KL divergence */
  onTsne?: (iteration: number, kl: number) => void;
}

export interface EmbedResult {
  count: number; dim: number; labelled: boolean; explained: number[]; files: string[];
  /** KL(P || Q) of the t-SNE map, when one was made */
  tsneKl?: number;
}

/**
 * The TensorBoard projector's sprite: every image as a square thumbnail in a square grid, row-major. TensorBoard caps
 * sprites at 8192 x 8192 px, so thumbnails shrink (nearest pixel) to fit; at most 64 px.
 */
export class SpriteSheet {
  readonly cols: number;
  readonly dim: number;
  private readonly rgb: Uint8Array;

  constructor(readonly count: number, imageSize: number) {
    this.cols = Math.max(1, Math.ceil(Math.sqrt(count)));
    this.dim = Math.max(1, Math.min(64, imageSize, Math.floor(8192 / this.cols)));
    this.rgb = new Uint8Array(this.cols * this.dim * this.cols * this.dim * 3);
  }

  add(i: number, img: RgbImage): void {
    const W = this.cols * this.dim;
    const x0 = (i % this.cols) * this.dim;
    const y0 = Math.floor(i / this.cols) * this.dim;
    for (let y = 0; y < this.dim; y++) {
      const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / this.dim));
      for (let x = 0; x < this.dim; x++) {
        const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / this.dim));
        const s = (sy * img.width + sx) * 3;
        const d = ((y0 + y) * W + x0 + x) * 3;
        this.rgb[d] = img.data[s]!; this.rgb[d + 1] = img.data[s + 1]!; this.rgb[d + 2] = img.data[s + 2]!;
      }
    }
  }

  async png(): Promise<Uint8Array> {
    const side = this.cols * this.dim;
    return new Uint8Array(await sharp(this.rgb, { raw: { width: side, height: side, channels: 3 } }).png().toBuffer());
  }
}

export async function runEmbed(o: EmbedOptions): Promise<EmbedResult> {
  const p = loadPretrained(o.checkpoint, 'embed');
  try {
    const spec = o.data ?? p.cfg.data;
    const ds = openDataset(spec, o.split, o.limit);
    if (ds.length === 0) throw new Error(`[embed] ${spec} holds no images`);
    const loader = new DataLoader(ds, { batchSize: o.batchSize, transform: evalTransform(p.cfg.augment, p.cfg.imgSize), shuffle: false, dropLast: false, seed: 0, numWorkers: o.workers });
    const rows: Float32Array[] = [];
    const norm = runNormalization(p.cfg);
    const sprite = new SpriteSheet(ds.length, p.cfg.imgSize);
    const labels = new Int32Array(ds.length);
    const indices: number[] = [];
    let dim = 0;
    try {
      await forEachFeatureBatch(loader, (x) => T.cast(p.model.features(x), 'float32'), (f, _x, b) => {
        dim = f.shape[1]!;
        rows.push(Float32Array.from(f.data)); // [B, D]
        b.indices.forEach((idx, j) => {
          sprite.add(indices.length, tensorImageToRgb(b.images, b.shape, j, norm));
          labels[indices.length] = b.labels[j]!;
          indices.push(idx);
        });
      }, (done, total) => o.onProgress?.('features', done, total));
    } finally {
      await loader.close();
    }
    const data = new Float32Array(ds.length * dim);
    let off = 0;
    for (const r of rows) { data.set(r, off); off += r.length; }
    const { projection, explained } = pca(data, ds.length, dim, 2);
    const labelled = ds.classes.length > 0;
    const paths = indices.map((i) => describeSample(ds, i));
    const title = `PCA of ${p.cfg.method} features (${ds.length} images; PC1 ${(100 * explained[0]!).toFixed(1)}%, PC2 ${(100 * explained[1]!).toFixed(1)}%)`;
    const png = await sharp(Buffer.from(scatterSvg(projection, labels, ds.classes, title))).png().toBuffer();
    const perplexity = o.tsnePerplexity ?? null;
    const map = perplexity === null ? null : tsne(data, ds.length, dim, { perplexity, ...(o.onTsne ? { onProgress: o.onTsne } : {}) });
    const tsnePng = map === null ? null : await sharp(Buffer.from(scatterSvg(map.embedding, labels, ds.classes,
      `t-SNE of ${p.cfg.method} features (${ds.length} images; perplexity ${perplexity}, KL ${map.kl.toFixed(3)})`))).png().toBuffer();
    const emb = T.tensor(data, [ds.length, dim], { device: 'reference', dtype: 'float32' });
    const lab = T.tensor(labels, [ds.length], { device: 'reference', dtype: 'int32' });
    const pc = T.tensor(Float32Array.from(projection), [ds.length, 2], { device: 'reference', dtype: 'float32' });
    const ts = map === null ? null : T.tensor(Float32Array.from(map.embedding), [ds.length, 2], { device: 'reference', dtype: 'float32' });
    let st: Uint8Array;
    try {
      st = serializeSafetensors({ embeddings: emb, labels: lab, pca: pc, ...(ts !== null ? { tsne: ts } : {}) }, {
        format: 'selfsup-embeddings', method: p.cfg.method, checkpoint: resolve(o.checkpoint), data: spec, split: o.split, classes: JSON.stringify(ds.classes),
        spriteDim: String(sprite.dim),
      });
    } finally {
      emb.dispose(); lab.dispose(); pc.dispose(); ts?.dispose();
    }
    const spritePng = await sprite.png();
    mkdirSync(o.out, { recursive: true });
    const files = [join(o.out, 'embeddings.safetensors'), join(o.out, 'embeddings.csv'), join(o.out, 'pca.png')];
    writeFileAtomic(files[0]!, st);
    writeFileAtomic(files[1]!, embeddingsCsv(paths, labels, ds.classes));
    writeFileAtomic(files[2]!, png);
    if (tsnePng !== null) {
      files.push(join(o.out, 'tsne.png'));
      writeFileAtomic(join(o.out, 'tsne.png'), tsnePng);
    }
    // the TensorBoard projector's files, with the images as its sprite
    files.push(...writeProjector(join(o.out, 'tb'), {
      tensors: data, n: ds.length, d: dim, metadataHeader: ['label', 'class', 'path'],
      metadata: paths.map((path, i) => [String(labels[i]), labels[i]! >= 0 ? (ds.classes[labels[i]!] ?? '') : '', path]),
      sprite: { png: spritePng, singleImageDim: [sprite.dim, sprite.dim] },
    }));
    return { count: ds.length, dim, labelled, explained, files, ...(map !== null ? { tsneKl: map.kl } : {}) };
  } finally {
    p.model.dispose();
  }
}

export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description('embeddings of a folder to safetensors + CSV (paths, labels), and PCA / t-SNE map PNGs coloured by label')
    .requiredOption('--checkpoint <dir>', "run folder written by 'selfsup pretrain'")
    .option('--data <path>', "images: a folder (class subfolders give labels), 'fashion-mnist', CIFAR binaries (default: the run's data)")
    .option('--split <name>', 'train | test, for datasets with splits', 'test')
    .option('--out <dir>', "folder for embeddings.safetensors, embeddings.csv, pca.png and the TensorBoard projector's tb/ (default: <checkpoint>/embed-<split>, where the dashboard finds it)")
    .option('--limit <n>', 'embed only N images (evenly strided)', positiveInt('embed', 'limit'))
    .option('--batch-size <n>', 'images per forward pass', positiveInt('embed', 'batch-size'), 256)
    .option('--workers <n>', 'data loader threads', (v: string) => Number.parseInt(v, 10), 2)
    .option('--tsne', 'also a t-SNE map (tsne.png; exact, up to 5,000 images: a few seconds per 1,000)')
    .option('--perplexity <x>', 't-SNE perplexity', (v: string) => {
      const x = Number(v);
      if (!(x > 0)) throw new Error(`[embed] --perplexity must be a positive number, got '${v}'`);
      return x;
    }, 30)
    .action(async (f: { checkpoint: string; data?: string; split: string; out?: string; limit?: number; batchSize: number; workers: number; tsne?: boolean; perplexity: number }) => {
      if (f.split !== 'train' && f.split !== 'test') throw new Error(`[embed] --split must be train or test, got '${f.split}'`);
      const tty = process.stderr.isTTY === true;
      const bar = f.tsne === true && tty ? new SingleBar({ format: '[embed] t-SNE {bar} {value}/{total} | KL {kl} | ETA {eta_formatted}', stream: process.stderr }) : null;
      let started = false;
      const passes = progressBar('embed');
      const r = await runEmbed({
        onProgress: passes.update,
        checkpoint: f.checkpoint, split: f.split, out: resolve(f.out ?? join(f.checkpoint, `embed-${f.split}`)), limit: f.limit ?? null, batchSize: f.batchSize, workers: f.workers,
        ...(f.data !== undefined ? { data: f.data } : {}),
        tsnePerplexity: f.tsne === true ? f.perplexity : null,
        onTsne: (it, kl) => {
          if (bar === null) return;
          if (!started) { bar.start(1000, 0, { kl: '-' }); started = true; }
          bar.update(it, { kl: kl.toFixed(3) });
        },
      });
      bar?.stop();
      process.stdout.write(`[embed] ${r.count} embeddings of dimension ${r.dim}${r.labelled ? '' : ' (unlabelled)'}; PCA explains `
        + `${(100 * r.explained[0]!).toFixed(1)}% + ${(100 * r.explained[1]!).toFixed(1)}% of the variance`
        + `${r.tsneKl !== undefined ? `; t-SNE KL ${r.tsneKl.toFixed(3)}` : ''}\n[embed] wrote ${r.files.join(', ')}\n`);
    });
}
