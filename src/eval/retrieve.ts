// Image retrieval with a pretrained encoder: the k training images nearest to a query by cosine similarity of the
// features the kNN monitor uses, and a captioned PNG grid of them (query first) for people to look at.
import sharp from 'sharp';
import * as T from '../tensor/index.js';
import type { RgbImage } from '../data/image.js';
import { writeFileAtomic } from '../io/atomic.js';
import { esc } from '../io/plot.js';

export interface Neighbour { index: number; similarity: number }

/**
 * The k rows of bank [N, D] most similar to query [D] (both L2-normalised: the dot product is the cosine), best
 * first; ties keep the lower index.
 */
export function nearestNeighbours(bank: T.Tensor, query: T.Tensor, k: number): Neighbour[] {
  if (bank.ndim !== 2 || query.ndim !== 2 || query.shape[0] !== 1 || bank.shape[1] !== query.shape[1]) {
    throw new Error(`[retrieve] bank [N, D] and query [1, D] must share D, got [${bank.shape}] and [${query.shape}]`);
  }
  const sims = T.tidy(() => Float64Array.from(T.matmul(query, bank, { transB: true }).data as ArrayLike<number>));
  const order = Array.from(sims.keys()).sort((a, b) => sims[b]! - sims[a]! || a - b);
  return order.slice(0, Math.min(k, order.length)).map((index) => ({ index, similarity: sims[index]! }));
}

async function pngDataUri(img: RgbImage, size: number): Promise<string> {
  const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(size, size, { fit: 'contain', kernel: 'nearest', background: '#ffffff' }).png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}


export interface CaptionedCell { image: RgbImage; caption: string; sub?: string }

/** One row of captioned cells (query first, then its neighbours) as a PNG. */
export async function captionedRowPng(cells: readonly CaptionedCell[], title: string, px = 112): Promise<Uint8Array> {
  const gap = 10, top = 34, captionH = 36;
  const W = gap + cells.length * (px + gap), H = top + px + captionH + gap;
  const uris = await Promise.all(cells.map((c) => pngDataUri(c.image, px)));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${gap}" y="20" font-size="13">${esc(title)}</text>`,
  ];
  cells.forEach((c, i) => {
    const x = gap + i * (px + gap);
    parts.push(`<image x="${x}" y="${top}" width="${px}" height="${px}" xlink:href="${uris[i]}"/>`);
    if (i === 0) parts.push(`<rect x="${x - 2}" y="${top - 2}" width="${px + 4}" height="${px + 4}" fill="none" stroke="#d62728" stroke-width="2"/>`);
    parts.push(`<text x="${x + px / 2}" y="${top + px + 14}" text-anchor="middle">${esc(c.caption)}</text>`);
    if (c.sub !== undefined) parts.push(`<text x="${x + px / 2}" y="${top + px + 28}" text-anchor="middle" fill="#555">${esc(c.sub)}</text>`);
  });
  parts.push('</svg>');
  return sharp(Buffer.from(parts.join('\n'))).png().toBuffer();
}

export async function writeCaptionedRowPng(path: string, cells: readonly CaptionedCell[], title: string): Promise<void> {
  writeFileAtomic(path, await captionedRowPng(cells, title));
}
