// `selfsup show-augs`: a PNG grid of augmented views (rows: images, columns: original then views) to tune augmentations by eye.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cifar10, fashionMnist, imageFolder, loadSampleImage, type Dataset } from '../data/datasets.js';
import * as F from '../data/functional.js';
import { type PipelineImage, type RgbImage } from '../data/image.js';
import { PRESET_NAMES, preset, presetNormalization } from '../data/presets.js';
import { hashKeys, Rng } from '../tensor/rng.js';
import { buildTransform } from '../data/transforms.js';
import { writeGridPng } from '../eval/picture.js';

export interface ShowAugsOptions {
  data: string;
  preset: string;
  out: string;
  rows: number;
  cols: number;
  size?: number;
  seed: number;
  /** integer magnification of each cell (nearest neighbour), for 32 px images */
  zoom?: number;
}

function openData(data: string): Dataset {
  if (data === 'fashion-mnist') return fashionMnist();
  if (existsSync(join(data, 'cifar-10-batches-bin')) || existsSync(join(data, 'data_batch_1.bin'))) return cifar10(data);
  return imageFolder(data);
}

/** A tensor view back to 8-bit RGB, undoing the preset's Normalize. */
function toRgb(view: PipelineImage, norm: { mean: readonly number[]; std: readonly number[] } | null): RgbImage {
  if (view.kind === 'rgb') return view;
  const { height, width, data } = view;
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    const src = Math.min(c, view.channels - 1);
    const m = norm?.mean[src] ?? 0, s = norm?.std[src] ?? 1;
    for (let p = 0; p < plane; p++) out[p * 3 + c] = Math.max(0, Math.min(255, Math.round((data[src * plane + p]! * s + m) * 255)));
  }
  return { kind: 'rgb', data: out, width, height };
}

/** Writes the grid and returns its size. */
export async function showAugs(o: ShowAugsOptions): Promise<{ width: number; height: number; rows: number; cols: number }> {
  const ds = openData(o.data);
  const spec = preset(o.preset, o.size !== undefined ? { size: o.size } : {});
  const views = spec.views.map(buildTransform);
  const norm = presetNormalization(spec);
  const rows = Math.min(o.rows, ds.length);
  const images: RgbImage[][] = [];
  for (let r = 0; r < rows; r++) {
    // evenly spaced samples so the rows span the classes
    const index = Math.floor((r * ds.length) / rows);
    const img = await loadSampleImage(ds.source, index);
    const row: RgbImage[] = [];
    for (let c = 0; c < o.cols; c++) {
      const v = c % views.length;
      const rng = Rng.fromKeys(hashKeys(o.seed, Math.floor(c / views.length), index), v);
      row.push(toRgb(views[v]!.apply(img, rng), norm));
    }
    const cell = row[0]!;
    const [h, w] = F.resizeOutputSize(img.height, img.width, Math.min(cell.height, cell.width));
    row.unshift(F.centerCrop(F.resize(img, h, w, 'bilinear'), cell.height, cell.width));
    images.push(row);
  }
  const cellH = Math.max(...images.flat().map((i) => i.height));
  const cellW = Math.max(...images.flat().map((i) => i.width));
  const zoom = o.zoom ?? Math.max(1, Math.ceil(96 / Math.max(cellH, cellW)));
  const cols = o.cols + 1;
  const { width: W, height: H } = await writeGridPng(o.out, images, zoom);
  return { width: W, height: H, rows, cols };
}

function positiveInt(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`[show-augs] --${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}

export function registerShowAugs(program: Command): void {
  program
    .command('show-augs')
    .description('write a PNG grid of augmented views: one row per image, the original then one column per view')
    .requiredOption('--data <dir>', "image folder (class subfolders or flat), CIFAR-10 binary folder, or 'fashion-mnist'")
    .option('--preset <name>', `augmentation preset: ${PRESET_NAMES.join(', ')}`, 'moco-v2')
    .option('--out <file>', 'PNG to write (default: augs-<preset>.png)')
    .option('--rows <n>', 'images (rows)', positiveInt('rows'), 8)
    .option('--cols <n>', 'views per image (columns after the original); multi-view presets alternate their views', positiveInt('cols'), 6)
    .option('--size <px>', "override the preset's output size", positiveInt('size'))
    .option('--zoom <k>', 'magnify cells k times (default: to at least 96 px)', positiveInt('zoom'))
    .option('--seed <n>', 'random seed', (v: string) => Number.parseInt(v, 10), 0)
    .action(async (flags: { data: string; preset: string; out?: string; rows: number; cols: number; size?: number; zoom?: number; seed: number }) => {
      const out = resolve(flags.out ?? `augs-${flags.preset}.png`);
      const opts: ShowAugsOptions = { data: flags.data, preset: flags.preset, out, rows: flags.rows, cols: flags.cols, seed: flags.seed };
      if (flags.size !== undefined) opts.size = flags.size;
      if (flags.zoom !== undefined) opts.zoom = flags.zoom;
      const r = await showAugs(opts);
      process.stdout.write(`wrote ${out} (${r.width}x${r.height}: ${r.rows} images x original + ${r.cols - 1} views, preset ${flags.preset})\n`);
    });
}
