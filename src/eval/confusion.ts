// What a kNN evaluation got wrong: the confusion matrix of its predictions, per-class accuracy, and the matrix as a
// PNG heat map (rows: true class, columns: predicted), as people read classification results.
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';
import { esc } from '../io/plot.js';

/** counts[t * classes + p]: test images of true class t predicted as p. */
export function confusionMatrix(predictions: ArrayLike<number>, labels: ArrayLike<number>, classes: number): Int32Array {
  if (predictions.length !== labels.length) {
    throw new Error(`[confusion] ${predictions.length} predictions for ${labels.length} labels`);
  }
  const counts = new Int32Array(classes * classes);
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i]!, p = predictions[i]!;
    if (!(t >= 0 && t < classes && p >= 0 && p < classes)) {
      throw new Error(`[confusion] sample ${i}: label ${t} or prediction ${p} outside [0, ${classes})`);
    }
    counts[t * classes + p]!++;
  }
  return counts;
}

export interface ClassAccuracy { index: number; total: number; correct: number; accuracy: number }

/** Recall of each class: the diagonal over the row sums (NaN for a class with no test images). */
export function perClassAccuracy(counts: Int32Array, classes: number): ClassAccuracy[] {
  return Array.from({ length: classes }, (_, c) => {
    let total = 0;
    for (let p = 0; p < classes; p++) total += counts[c * classes + p]!;
    const correct = counts[c * classes + c]!;
    return { index: c, total, correct, accuracy: total === 0 ? Number.NaN : correct / total };
  });
}


/** The matrix as an SVG heat map, each cell shaded by its share of the row and labelled with its count. */
export function confusionSvg(counts: Int32Array, classNames: readonly string[], title: string): string {
  const n = classNames.length;
  const cell = Math.max(28, Math.min(56, Math.floor(560 / Math.max(n, 1))));
  const left = 150, top = 70, bottom = 30;
  // wide enough for the title at 15 px (about 8 px a character)
  const W = Math.max(left + n * cell + 20, 8 * title.length + 40), H = top + n * cell + bottom + 90;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<text x="${left + (n * cell) / 2}" y="${top + n * cell + 80}" text-anchor="middle">predicted class</text>`,
    `<text transform="translate(14 ${top + (n * cell) / 2}) rotate(-90)" text-anchor="middle">true class</text>`,
  ];
  for (let t = 0; t < n; t++) {
    let row = 0;
    for (let p = 0; p < n; p++) row += counts[t * n + p]!;
    parts.push(`<text x="${left - 6}" y="${top + t * cell + cell / 2 + 4}" text-anchor="end">${esc(classNames[t]!)}</text>`);
    for (let p = 0; p < n; p++) {
      const v = counts[t * n + p]!;
      const share = row === 0 ? 0 : v / row;
      // diagonal in blue, errors in red; white when empty
      const [r, g, b] = t === p ? [255 - 200 * share, 255 - 120 * share, 255] : [255, 255 - 200 * share, 255 - 200 * share];
      const x = left + p * cell, y = top + t * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${r | 0},${g | 0},${b | 0})" stroke="#ccc"/>`);
      if (v > 0) {
        parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="${share > 0.6 ? 'white' : 'black'}">${v}</text>`);
      }
    }
  }
  for (let p = 0; p < n; p++) {
    const x = left + p * cell + cell / 2, y = top + n * cell + 8;
    parts.push(`<text transform="translate(${x} ${y}) rotate(45)" text-anchor="start">${esc(classNames[p]!)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes the confusion matrix as a PNG atomically. */
export async function writeConfusionPng(path: string, counts: Int32Array, classNames: readonly string[], title: string): Promise<void> {
  writeFileAtomic(path, await sharp(Buffer.from(confusionSvg(counts, classNames, title))).png().toBuffer());
}
