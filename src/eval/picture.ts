// Pictures of tensors: normalised image tensors back to 8-bit RGB, grids of cells (augmentations, MAE
// reconstructions), and PNG scatter plots.
import sharp from 'sharp';
import type { PipelineImage, RgbImage } from '../data/image.js';
import { loadSampleImage, type Dataset } from '../data/datasets.js';
import * as F from '../data/functional.js';
import { presetNormalization } from '../data/presets.js';
import { hashKeys, Rng } from '../tensor/rng.js';
import { buildTransform, type ViewsSpec } from '../data/transforms.js';
import type { Tensor } from '../tensor/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { esc } from '../io/plot.js';

/** Image n of x [N, C, H, W] (C = 1 or 3) as RGB, undoing Normalize(mean, std) and clipping to [0, 255]. */
export function tensorImageToRgb(data: ArrayLike<number>, shape: readonly number[], n: number,
  norm: { mean: readonly number[]; std: readonly number[] } | null): RgbImage {
  const [, C, H, W] = shape as [number, number, number, number];
  const plane = H * W;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    const src = Math.min(c, C - 1);
    const m = norm?.mean[src] ?? 0;
    const s = norm?.std[src] ?? 1;
    const base = (n * C + src) * plane;
    for (let p = 0; p < plane; p++) out[p * 3 + c] = Math.max(0, Math.min(255, Math.round((data[base + p]! * s + m) * 255)));
  }
  return { kind: 'rgb', data: out, width: W, height: H };
}

/** Raw RGB of a grid of equally sized cells (rows x cols), each magnified zoom times, with 4 px white gaps. */
export function gridPixels(cells: readonly (readonly RgbImage[])[], zoom: number): { data: Uint8Array; width: number; height: number } {
  const pad = 4;
  const cellH = Math.max(...cells.flat().map((i) => i.height));
  const cellW = Math.max(...cells.flat().map((i) => i.width));
  const cols = Math.max(...cells.map((r) => r.length));
  const W = cols * cellW * zoom + (cols + 1) * pad;
  const H = cells.length * cellH * zoom + (cells.length + 1) * pad;
  const canvas = new Uint8Array(W * H * 3).fill(255);
  cells.forEach((row, r) => row.forEach((img, c) => {
    const x0 = pad + c * (cellW * zoom + pad);
    const y0 = pad + r * (cellH * zoom + pad);
    for (let y = 0; y < img.height * zoom; y++) {
      for (let x = 0; x < img.width * zoom; x++) {
        const s = (Math.floor(y / zoom) * img.width + Math.floor(x / zoom)) * 3;
        const d = ((y0 + y) * W + x0 + x) * 3;
        canvas[d] = img.data[s]!; canvas[d + 1] = img.data[s + 1]!; canvas[d + 2] = img.data[s + 2]!;
      }
    }
  }));
  return { data: canvas, width: W, height: H };
}

/** A grid of cells as PNG bytes. */
export async function gridPng(cells: readonly (readonly RgbImage[])[], zoom: number): Promise<{ png: Uint8Array; width: number; height: number }> {
  const g = gridPixels(cells, zoom);
  const png = await sharp(g.data, { raw: { width: g.width, height: g.height, channels: 3 } }).png().toBuffer();
  return { png, width: g.width, height: g.height };
}

/** Writes a grid of cells as a PNG atomically; returns its size. */
export async function writeGridPng(path: string, cells: readonly (readonly RgbImage[])[], zoom: number): Promise<{ width: number; height: number }> {
  const g = await gridPng(cells, zoom);
  writeFileAtomic(path, g.png);
  return { width: g.width, height: g.height };
}

/** Zoom that magnifies cells to at least `px` pixels on their longer side. */
export function zoomTo(cells: readonly (readonly RgbImage[])[], px = 96): number {
  return Math.max(1, Math.ceil(px / Math.max(...cells.flat().map((i) => Math.max(i.width, i.height)))));
}

/** A pipeline image (8-bit RGB, or a normalised CHW tensor) as 8-bit RGB, undoing Normalize. */
export function pipelineImageToRgb(view: PipelineImage, norm: { mean: readonly number[]; std: readonly number[] } | null): RgbImage {
  if (view.kind === 'rgb') return view;
  return tensorImageToRgb(view.data, [1, view.channels, view.height, view.width], 0, norm);
}

/**
 * The augmentation grid of `show-augs` and of a run's start: one row per image (evenly spaced through ds so the
 * rows span the classes), the original resized and centre-cropped to the view size, then `cols` views (multi-view
 * presets alternate their views). Each view draws from an RNG keyed by (seed, column, index, view).
 */
export async function augmentationCells(ds: Dataset, spec: ViewsSpec, o: { rows: number; cols: number; seed: number }): Promise<RgbImage[][]> {
  const views = spec.views.map(buildTransform);
  const norm = presetNormalization(spec);
  const rows = Math.min(o.rows, ds.length);
  const images: RgbImage[][] = [];
  for (let r = 0; r < rows; r++) {
    const index = Math.floor((r * ds.length) / rows);
    const img = await loadSampleImage(ds.source, index);
    const row: RgbImage[] = [];
    for (let c = 0; c < o.cols; c++) {
      const v = c % views.length;
      const rng = Rng.fromKeys(hashKeys(o.seed, Math.floor(c / views.length), index), v);
      row.push(pipelineImageToRgb(views[v]!.apply(img, rng), norm));
    }
    const cell = row[0]!;
    const [h, w] = F.resizeOutputSize(img.height, img.width, Math.min(cell.height, cell.width));
    row.unshift(F.centerCrop(F.resize(img, h, w, 'bilinear'), cell.height, cell.width));
    images.push(row);
  }
  return images;
}

/** MAE demo rows: original | masked | reconstruction | reconstruction with the visible patches pasted back. */
export function reconstructionCells(r: { original: Tensor; masked: Tensor; reconstruction: Tensor; pasted: Tensor },
  norm: { mean: readonly number[]; std: readonly number[] } | null): RgbImage[][] {
  const cols = [r.original, r.masked, r.reconstruction, r.pasted];
  const rows: RgbImage[][] = [];
  for (let n = 0; n < r.original.shape[0]!; n++) rows.push(cols.map((t) => tensorImageToRgb(t.data, t.shape, n, norm)));
  return rows;
}

// matplotlib's tab10, then tab20's light shades, for up to 20 classes; more classes cycle
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5'];


/** An SVG scatter plot of 2-D points coloured by label, with a legend of class names. */
export function scatterSvg(xy: ArrayLike<number>, labels: ArrayLike<number>, classes: readonly string[], title: string, size = 640): string {
  const n = labels.length;
  const legendW = classes.length > 0 ? 150 : 0;
  const W = size + legendW;
  const H = size;
  const m = 40;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, xy[2 * i]!); x1 = Math.max(x1, xy[2 * i]!);
    y0 = Math.min(y0, xy[2 * i + 1]!); y1 = Math.max(y1, xy[2 * i + 1]!);
  }
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const px = (v: number): number => m + ((v - x0) / (x1 - x0)) * (size - 2 * m);
  const py = (v: number): number => size - m - ((v - y0) / (y1 - y0)) * (size - 2 * m);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${size / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<rect x="${m}" y="${m}" width="${size - 2 * m}" height="${size - 2 * m}" fill="none" stroke="#333"/>`,
  ];
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    const color = l >= 0 ? COLORS[l % COLORS.length]! : '#555555';
    parts.push(`<circle cx="${px(xy[2 * i]!).toFixed(1)}" cy="${py(xy[2 * i + 1]!).toFixed(1)}" r="2.2" fill="${color}" fill-opacity="0.75"/>`);
  }
  classes.forEach((c, k) => {
    parts.push(`<circle cx="${size + 12}" cy="${m + 8 + k * 18}" r="5" fill="${COLORS[k % COLORS.length]!}"/>`);
    parts.push(`<text x="${size + 24}" y="${m + 12 + k * 18}">${esc(c)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export async function writeScatterPng(path: string, xy: ArrayLike<number>, labels: ArrayLike<number>, classes: readonly string[], title: string): Promise<void> {
  const png = await sharp(Buffer.from(scatterSvg(xy, labels, classes, title))).png().toBuffer();
  writeFileAtomic(path, png);
}
