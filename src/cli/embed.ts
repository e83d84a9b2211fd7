// `selfsup embed`: embeddings of a folder (or dataset split) to embeddings.safetensors, a CSV of file paths and
// labels beside it, and maps (PNG scatters coloured by label): PCA always, t-SNE with --tsne. Everything is computed
// before anything is written.
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
import { scatterSvg } from '../eval/picture.js';
import { loadPretrained, positiveInt } from '../eval/pretrained.js';
import sharp from 'sharp';
import { SingleBar } from 'cli-progress';

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
  /** t-SNE progress: iteration (of 1000) and KL divergence */
  onTsne?: (iteration: number, kl: number) => void;
}

export interface EmbedResult {
  count: number; dim: number; labelled: boolean; explained: number[]; files: string[];
  /** KL(P || Q) of the t-SNE map, when one was made */
  tsneKl?: number;
}

export async function runEmbed(o: EmbedOptions): Promise<EmbedResult> {
  const p = loadPretrained(o.checkpoint, 'embed');
  try {
    const spec = o.data ?? p.cfg.data;
    const ds = openDataset(spec, o.split, o.limit);
    if (ds.length === 0) throw new Error(`[embed] ${spec} holds no images`);
    const loader = new DataLoader(ds, { batchSize: o.batchSize, transform: evalTransform(p.cfg.augment, p.cfg.imgSize), shuffle: false, dropLast: false, seed: 0, numWorkers: o.workers });
    const rows: Float32Array[] = [];
    const labels = new Int32Array(ds.length);
    const indices: number[] = [];
    let dim = 0;
    try {
      for await (const b of loader.epoch(0)) {
        const x = T.tensor(b.images, b.shape);
        const f = T.noGrad(() => T.tidy(() => T.cast(p.model.features(x), 'float32')));
        x.dispose();
        dim = f.shape[1]!;
        rows.push(Float32Array.from(f.data));
        f.dispose();
        b.indices.forEach((idx, j) => { labels[indices.length] = b.labels[j]!; indices.push(idx); });
      }
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
        format: 'selfsup-embeddings', method: p.cfg.method, checkpoint: resolve(o.checkpoint), data: spec, classes: JSON.stringify(ds.classes),
      });
    } finally {
      emb.dispose(); lab.dispose(); pc.dispose(); ts?.dispose();
    }
    mkdirSync(o.out, { recursive: true });
    const files = [join(o.out, 'embeddings.safetensors'), join(o.out, 'embeddings.csv'), join(o.out, 'pca.png')];
    writeFileAtomic(files[0]!, st);
    writeFileAtomic(files[1]!, embeddingsCsv(paths, labels, ds.classes));
    writeFileAtomic(files[2]!, png);
    if (tsnePng !== null) {
      files.push(join(o.out, 'tsne.png'));
      writeFileAtomic(files[3]!, tsnePng);
    }
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
    .option('--out <dir>', 'folder for embeddings.safetensors, embeddings.csv and pca.png', 'embeddings')
    .option('--limit <n>', 'embed only N images (evenly strided)', positiveInt('embed', 'limit'))
    .option('--batch-size <n>', 'images per forward pass', positiveInt('embed', 'batch-size'), 256)
    .option('--workers <n>', 'data loader threads', (v: string) => Number.parseInt(v, 10), 2)
    .option('--tsne', 'also a t-SNE map (tsne.png; exact, up to 5,000 images: a few seconds per 1,000)')
    .option('--perplexity <x>', 't-SNE perplexity', (v: string) => {
      const x = Number(v);
      if (!(x > 0)) throw new Error(`[embed] --perplexity must be a positive number, got '${v}'`);
      return x;
    }, 30)
    .action(async (f: { checkpoint: string; data?: string; split: string; out: string; limit?: number; batchSize: number; workers: number; tsne?: boolean; perplexity: number }) => {
      if (f.split !== 'train' && f.split !== 'test') throw new Error(`[embed] --split must be train or test, got '${f.split}'`);
      const tty = process.stderr.isTTY === true;
      const bar = f.tsne === true && tty ? new SingleBar({ format: '[embed] t-SNE {bar} {value}/{total} | KL {kl} | ETA {eta_formatted}', stream: process.stderr }) : null;
      let started = false;
      const r = await runEmbed({
        checkpoint: f.checkpoint, split: f.split, out: resolve(f.out), limit: f.limit ?? null, batchSize: f.batchSize, workers: f.workers,
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
