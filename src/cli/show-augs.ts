// `selfsup show-augs`: a PNG grid of augmented views (rows: images, columns: original then views) to tune augmentations by eye.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cifar10, fashionMnist, imageFolder, type Dataset } from '../data/datasets.js';
import { PRESET_NAMES, preset } from '../data/presets.js';
import { augmentationCells, writeGridPng, zoomTo } from '../eval/picture.js';

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

/** Writes the grid and returns its size. */
export async function showAugs(o: ShowAugsOptions): Promise<{ width: number; height: number; rows: number; cols: number }> {
  const ds = openData(o.data);
  const spec = preset(o.preset, o.size !== undefined ? { size: o.size } : {});
  const images = await augmentationCells(ds, spec, { rows: o.rows, cols: o.cols, seed: o.seed });
  const { width: W, height: H } = await writeGridPng(o.out, images, o.zoom ?? zoomTo(images));
  return { width: W, height: H, rows: images.length, cols: o.cols + 1 };
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
