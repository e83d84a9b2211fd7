// `selfsup retrieve`: the k training images nearest to a query image under a pretrained encoder, printed with their
// cosine similarities and classes, and drawn as a PNG row (query first). The query goes through the run's evaluation
// transform (Resize + CenterCrop to the run's size), as every image the kNN monitor sees does.
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { DataLoader } from '../data/loader.js';
import { type Dataset, loadSampleImage } from '../data/datasets.js';
import { decodeImage, DEFAULT_MAX_PIXELS } from '../data/decode.js';
import { evalTransform, openDataset } from '../data/open.js';
import { extractOnce } from '../train/pretrain.js';
import { loadPretrained, positiveInt } from '../eval/pretrained.js';
import { nearestNeighbours, writeCaptionedRowPng, type Neighbour } from '../eval/retrieve.js';
import type { OnProgress } from '../io/progress.js';
import { progressBar } from './progress.js';

export interface RetrieveOptions {
  checkpoint: string;
  query: string;
  /** the images to search (default: the run's training data) */
  data?: string;
  k: number;
  /** search only the first N images (evenly strided) of the data */
  limit: number | null;
  /** input size; must equal the run's (default: the run's) */
  imgSize?: number;
  /** the PNG to write (default: retrieve-<query>.png in the run folder) */
  out?: string;
  batchSize: number;
  workers: number;
  /** progress of the feature pass over the searched images */
  onProgress?: OnProgress;
}

export interface RetrieveResult {
  query: string;
  neighbours: Array<Neighbour & { label: number; className: string | null; path: string | null }>;
  png: string;
  searched: number;
}

export async function runRetrieve(o: RetrieveOptions): Promise<RetrieveResult> {
  const queryPath = resolve(o.query);
  if (!existsSync(queryPath)) throw new Error(`[retrieve] query image ${o.query}: no such file`);
  // decode first, so a file that is not an image fails here, naming it, before any feature pass
  let queryImage;
  try {
    queryImage = await decodeImage(readFileSync(queryPath), queryPath, DEFAULT_MAX_PIXELS);
  } catch (e) {
    throw new Error(`[retrieve] cannot decode the query image ${o.query}: ${(e as Error).message}`);
  }
  const p = loadPretrained(o.checkpoint, 'retrieve');
  try {
    const size = p.cfg.imgSize;
    if (o.imgSize !== undefined && o.imgSize !== size) {
      throw new Error(`[retrieve] the checkpoint in ${o.checkpoint} was trained on ${size}x${size} images but --img-size is ` +
        `${o.imgSize}; queries are resized to the run's size by its evaluation transform (Resize + CenterCrop ${size}), ` +
        'so leave --img-size out');
    }
    const spec = evalTransform(p.cfg.augment, size);
    const bankSet = openDataset(o.data ?? p.cfg.data, 'train', o.limit);
    const querySet: Dataset = {
      name: `query:${queryPath}`, length: 1, classes: [],
      source: { kind: 'files', paths: [queryPath], labels: Int32Array.of(-1), maxPixels: DEFAULT_MAX_PIXELS },
    };
    const mk = (ds: Dataset, workers: number): DataLoader => new DataLoader(ds, { batchSize: o.batchSize, transform: spec,
      shuffle: false, dropLast: false, seed: 0, numWorkers: workers, badFile: 'error' });
    const [query] = await extractOnce(p.model, mk(querySet, 0));
    const [bank, bankLabels] = await extractOnce(p.model, mk(bankSet, o.workers), undefined,
      { phase: 'features of the searched images', on: o.onProgress ?? (() => {}) });
    try {
      const found = nearestNeighbours(bank, query, o.k);
      const paths = bankSet.source.kind === 'files' ? bankSet.source.paths : null;
      const neighbours = found.map((n) => {
        const label = bankLabels[n.index]!;
        return { ...n, label, className: label >= 0 ? bankSet.classes[label] ?? null : null, path: paths?.[n.index] ?? null };
      });
      const png = resolve(o.out ?? join(o.checkpoint, `retrieve-${basename(queryPath).replace(/\.[^.]+$/, '')}.png`));
      const cells = [{ image: queryImage, caption: 'query', sub: basename(queryPath).slice(0, 18) }];
      for (const [rank, n] of neighbours.entries()) {
        cells.push({ image: await loadSampleImage(bankSet.source, n.index), caption: `#${rank + 1}  cos ${n.similarity.toFixed(3)}`,
          sub: n.className ?? `image ${n.index}` });
      }
      await writeCaptionedRowPng(png, cells, `${neighbours.length} nearest of ${bankSet.length} images (${p.cfg.method}, epoch ${p.epoch})`);
      return { query: queryPath, neighbours, png, searched: bankSet.length };
    } finally {
      bank.dispose();
      query.dispose();
    }
  } finally {
    p.model.dispose();
  }
}

export function registerRetrieve(program: Command): void {
  program
    .command('retrieve')
    .description('the k training images nearest to a query image (cosine similarity of the encoder features), printed and drawn as a PNG')
    .requiredOption('--checkpoint <dir>', "run folder written by 'selfsup pretrain'")
    .requiredOption('--query <image>', 'query image (any format sharp decodes: PNG, JPEG, WebP, TIFF)')
    .option('--data <path>', "images to search (default: the run's training data)")
    .option('--k <n>', 'neighbours to show', positiveInt('retrieve', 'k'), 8)
    .option('--limit <n>', 'search only N images of the data (evenly strided)', positiveInt('retrieve', 'limit'))
    .option('--img-size <n>', "input size; must equal the run's (queries are resized as its evaluation transform does)", positiveInt('retrieve', 'img-size'))
    .option('--out <file>', 'PNG to write (default: retrieve-<query>.png in the run folder)')
    .option('--batch-size <n>', 'images per forward pass', positiveInt('retrieve', 'batch-size'), 256)
    .option('--workers <n>', 'data loader threads', (v: string) => Number.parseInt(v, 10), 2)
    .option('--json', 'print the result as JSON')
    .action(async (f: { checkpoint: string; query: string; data?: string; k: number; limit?: number; imgSize?: number; out?: string; batchSize: number; workers: number; json?: boolean }) => {
      const bar = progressBar('retrieve');
      const r = await runRetrieve({
        onProgress: bar.update, checkpoint: f.checkpoint, query: f.query, k: f.k, limit: f.limit ?? null, batchSize: f.batchSize, workers: f.workers,
        ...(f.data !== undefined ? { data: f.data } : {}), ...(f.imgSize !== undefined ? { imgSize: f.imgSize } : {}),
        ...(f.out !== undefined ? { out: f.out } : {}),
      });
      bar.stop();
      if (f.json === true) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      const lines = [`[retrieve] ${r.neighbours.length} nearest of ${r.searched} images to ${r.query}:`];
      for (const [i, n] of r.neighbours.entries()) {
        lines.push(`  #${String(i + 1).padStart(2)}  cos ${n.similarity.toFixed(4)}  ${(n.className ?? '-').padEnd(14)} ${n.path ?? `image ${n.index}`}`);
      }
      lines.push(`[retrieve] wrote ${r.png}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
