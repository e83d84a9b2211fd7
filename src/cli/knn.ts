// `selfsup knn`: weighted kNN accuracy (top-1, top-5) of a pretraining run's encoder on a labelled train/test pair,
// the MoCo CIFAR demo's monitor as a command: cosine similarity, k neighbours voting with exp(sim / t).
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { DataLoader } from '../data/loader.js';
import type { Dataset } from '../data/datasets.js';
import { evalTransform } from '../data/open.js';
import { extractOnce, heldOutLossMeter, type KnnFeature } from '../train/pretrain.js';
import { knnClassify } from '../eval/knn.js';
import { loadPretrained, openLabelledPair, positiveInt, finiteNumber } from '../eval/pretrained.js';
import { writeFileAtomic } from '../io/atomic.js';
import { confusionMatrix, perClassAccuracy, writeConfusionPng } from '../eval/confusion.js';
import type { OnProgress } from '../io/progress.js';
import { progressBar } from './progress.js';

export interface KnnCommandOptions {
  checkpoint: string;
  /** labelled training images for the feature bank (default: the run's data) */
  data?: string;
  /** labelled test images (default: the test split of --data) */
  testData?: string;
  k: number;
  t: number;
  limit: number | null;
  testLimit: number | null;
  batchSize: number;
  workers: number;
  /** JSON file for the result */
  out?: string;
  /** 'backbone' (pooled features) or 'head' (the encoder's head output, as the MoCo CIFAR demo); default: the run's knn.feature */
  feature?: KnnFeature;
  /** confusion-matrix PNG (default: knn-confusion.png in the run folder) */
  confusion?: string;
  /** progress of the two feature passes, batch by batch */
  onProgress?: OnProgress;
}

export interface KnnCommandResult {
  method: string;
  epoch: number;
  top1: number;
  top5: number;
  bank: number;
  test: number;
  classes: number;
  k: number;
  t: number;
  feature: KnnFeature;
  seconds: number;
  /**
   * Methods with a held-out loss (MAE: the reconstruction loss on the removed patches): its mean over the test images,
   * from the same pass and with the same fixed masks as pretrain's monitor, so it equals the monitor's figure.
   */
  testLoss?: number;
  /** recall of each class on the test images */
  perClass: Array<{ className: string; total: number; correct: number; accuracy: number }>;
  /** confusion[true][predicted] counts */
  confusion: number[][];
  confusionPng: string;
}

export async function runKnn(o: KnnCommandOptions): Promise<KnnCommandResult> {
  const t0 = performance.now();
  const p = loadPretrained(o.checkpoint, 'knn');
  const trainSpec = o.data ?? p.cfg.data;
  const testSpec = o.testData ?? (o.data !== undefined ? o.data : (p.cfg.testData ?? p.cfg.data));
  const { train, test, classes } = openLabelledPair('knn', trainSpec, testSpec, o.limit, o.testLimit);
  const spec = evalTransform(p.cfg.augment, p.cfg.imgSize);
  const mk = (ds: Dataset): DataLoader => new DataLoader(ds, { batchSize: o.batchSize, transform: spec, shuffle: false, dropLast: false, seed: 0, numWorkers: o.workers });
  const on = o.onProgress ?? (() => {});
  // the run's monitor feature unless told (configs written before knn.feature existed read the backbone)
  const feature = o.feature ?? p.cfg.knn.feature ?? 'backbone';
  const [bank, bankLabels] = await extractOnce(p.model, mk(train), undefined, { phase: 'features of the bank', on }, feature);
  const meter = p.model.heldOutLoss !== undefined ? heldOutLossMeter(p.model) : null;
  const [queries, queryLabels] = await extractOnce(p.model, mk(test), meter?.add, { phase: 'features of the test images', on }, feature);
  try {
    const r = knnClassify(bank, bankLabels, queries, queryLabels, classes.length, { k: o.k, t: o.t });
    const n = classes.length;
    const counts = confusionMatrix(r.predictions, queryLabels, n);
    const confusionPng = resolve(o.confusion ?? join(o.checkpoint, 'knn-confusion.png'));
    await writeConfusionPng(confusionPng, counts, classes,
      `kNN confusion (${p.cfg.method}, epoch ${p.epoch}): top-1 ${(100 * r.top1).toFixed(2)}% on ${test.length} images`);
    const result: KnnCommandResult = {
      method: p.cfg.method, epoch: p.epoch, top1: r.top1, top5: r.top5, bank: train.length, test: test.length,
      classes: n, k: Math.min(o.k, train.length), t: o.t, feature, seconds: (performance.now() - t0) / 1000,
      ...(meter !== null ? { testLoss: meter.mean() } : {}),
      perClass: perClassAccuracy(counts, n).map((c) => ({ className: classes[c.index]!, total: c.total, correct: c.correct, accuracy: c.accuracy })),
      confusion: Array.from({ length: n }, (_, i) => Array.from(counts.subarray(i * n, (i + 1) * n))),
      confusionPng,
    };
    if (o.out !== undefined) writeFileAtomic(resolve(o.out), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    bank.dispose();
    queries.dispose();
    p.model.dispose();
  }
}

export function registerKnn(program: Command): void {
  program
    .command('knn')
    .description('weighted kNN accuracy (top-1, top-5) of a checkpoint on a labelled train/test pair')
    .requiredOption('--checkpoint <dir>', "run folder written by 'selfsup pretrain' (config.json + checkpoint)")
    .option('--data <path>', "labelled training images for the feature bank (default: the run's data)")
    .option('--test-data <path>', 'labelled test images (default: the test split of --data)')
    .option('--k <n>', 'neighbours', positiveInt('knn', 'k'), 200)
    .option('--t <x>', 'temperature of the vote weights', finiteNumber('knn', 't'), 0.1)
    .option('--limit <n>', 'use only N training images (evenly strided)', positiveInt('knn', 'limit'))
    .option('--test-limit <n>', 'use only N test images', positiveInt('knn', 'test-limit'))
    .option('--batch-size <n>', 'images per forward pass', positiveInt('knn', 'batch-size'), 256)
    .option('--workers <n>', 'data loader threads', (v: string) => Number.parseInt(v, 10), 2)
    .option('--out <file>', 'also write the result as JSON')
    .option('--confusion <png>', 'confusion-matrix PNG (default: knn-confusion.png in the run folder)')
    .option('--feature <kind>', "'backbone' (pooled features) or 'head' (the encoder's head output, the MoCo CIFAR demo's monitor); default: the run's knn.feature")
    .action(async (f: { checkpoint: string; data?: string; testData?: string; k: number; t: number; limit?: number; testLimit?: number; batchSize: number; workers: number; out?: string; confusion?: string; feature?: string }) => {
      if (f.feature !== undefined && f.feature !== 'backbone' && f.feature !== 'head') throw new Error(`[knn] --feature must be 'backbone' or 'head', got '${f.feature}'`);
      const bar = progressBar('knn');
      const r = await runKnn({
        onProgress: bar.update, checkpoint: f.checkpoint, k: f.k, t: f.t, limit: f.limit ?? null, testLimit: f.testLimit ?? null, batchSize: f.batchSize, workers: f.workers,
        ...(f.data !== undefined ? { data: f.data } : {}), ...(f.testData !== undefined ? { testData: f.testData } : {}), ...(f.out !== undefined ? { out: f.out } : {}),
        ...(f.feature !== undefined ? { feature: f.feature as KnnFeature } : {}),
        ...(f.confusion !== undefined ? { confusion: f.confusion } : {}),
      });
      bar.stop();
      process.stdout.write(`[knn] ${r.method} (epoch ${r.epoch}): top-1 ${(100 * r.top1).toFixed(2)}% top-5 ${(100 * r.top5).toFixed(2)}% `
        + `(${r.feature} features, k=${r.k}, t=${r.t}, bank ${r.bank}, test ${r.test}, ${r.classes} classes, ${r.seconds.toFixed(1)} s)`
        + `${r.testLoss !== undefined ? `; test reconstruction loss ${r.testLoss.toFixed(4)}` : ''}\n`);
      const width = Math.max(...r.perClass.map((c) => c.className.length));
      for (const c of r.perClass) {
        process.stdout.write(`  ${c.className.padEnd(width)}  ${Number.isNaN(c.accuracy) ? '   -  ' : `${(100 * c.accuracy).toFixed(1).padStart(5)}%`}  (${c.correct}/${c.total})\n`);
      }
      process.stdout.write(`[knn] confusion matrix: ${r.confusionPng}\n`);
    });
}
