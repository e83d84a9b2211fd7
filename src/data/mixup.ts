// Mixup and CutMix at the batch level, as timm's Mixup(mode='batch') that MAE's main_finetune.py uses: per batch,
// with probability `prob`, either CutMix (probability switchProb, lam ~ Beta(cutmixAlpha, cutmixAlpha), the box's
// area corrects lam) or Mixup (lam ~ Beta(mixupAlpha, mixupAlpha)), each image paired with the batch reversed;
// targets are label-smoothed one-hots mixed by the same lam.
import type { Rng } from '../tensor/rng.js';

export interface MixupOptions {
  /** Beta alpha of Mixup; 0 disables it (MAE fine-tuning: 0.8) */
  mixupAlpha: number;
  /** Beta alpha of CutMix; 0 disables it (MAE fine-tuning: 1.0) */
  cutmixAlpha: number;
  /** probability of mixing a batch at all */
  prob: number;
  /** probability of CutMix rather than Mixup when both are on */
  switchProb: number;
  labelSmoothing: number;
  numClasses: number;
}

export interface MixedBatch {
  /** [N, C, H, W] mixed images (a new array) */
  images: Float32Array;
  /** [N, numClasses] soft targets, rows summing to 1 */
  targets: Float32Array;
  /** weight of each image's own label */
  lam: number;
  mode: 'mixup' | 'cutmix' | 'none';
  /** CutMix's pasted box: rows [y0, y1), columns [x0, x1) */
  box?: [number, number, number, number];
}

/** Gamma(shape, 1) by Marsaglia and Tsang (shape < 1 boosted by U^(1/shape)). */
function sampleGamma(rng: Rng, shape: number): number {
  if (shape < 1) return sampleGamma(rng, shape + 1) * Math.pow(Math.max(rng.uniform(), 1e-300), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.uniform();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(Math.max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) as Ga / (Ga + Gb). */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new Error(`[mixup] Beta parameters must be positive, got ${a}, ${b}`);
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  return x + y > 0 ? x / (x + y) : 0.5;
}

/** timm's rand_bbox + correct_lam: a box of side sqrt(1 - lam) of the image, centred uniformly, clipped. */
export function cutmixBox(H: number, W: number, lam: number, rng: Rng): { box: [number, number, number, number]; lam: number } {
  const ratio = Math.sqrt(1 - lam);
  const cutH = Math.trunc(H * ratio);
  const cutW = Math.trunc(W * ratio);
  const cy = rng.int(H);
  const cx = rng.int(W);
  const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
  const y0 = clip(cy - Math.floor(cutH / 2), H), y1 = clip(cy + Math.floor(cutH / 2), H);
  const x0 = clip(cx - Math.floor(cutW / 2), W), x1 = clip(cx + Math.floor(cutW / 2), W);
  return { box: [y0, y1, x0, x1], lam: 1 - ((y1 - y0) * (x1 - x0)) / (H * W) };
}

/** Smoothed one-hot targets of labels mixed with those of the reversed batch: lam * y + (1 - lam) * y.flip(0). */
export function mixupTargets(labels: Int32Array, numClasses: number, lam: number, smoothing: number): Float32Array {
  const N = labels.length;
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const t = new Float32Array(N * numClasses).fill(off);
  for (let i = 0; i < N; i++) {
    const a = labels[i]!, b = labels[N - 1 - i]!;
    if (a < 0 || a >= numClasses || b < 0 || b >= numClasses) {
      throw new Error(`[mixup] label ${a < 0 || a >= numClasses ? a : b} is outside [0, ${numClasses})`);
    }
    t[i * numClasses + a]! += lam * (on - off);
    t[i * numClasses + b]! += (1 - lam) * (on - off);
  }
  return t;
}

/** Mixes one batch [N, C, H, W] (N even, as timm requires) and returns the images and soft targets. */
export function mixupBatch(images: Float32Array, shape: readonly [number, number, number, number], labels: Int32Array,
  o: MixupOptions, rng: Rng): MixedBatch {
  const [N, C, H, W] = shape;
  if (N % 2 !== 0) throw new Error(`[mixup] the batch size must be even to pair images with the reversed batch, got ${N}`);
  if (images.length !== N * C * H * W || labels.length !== N) {
    throw new Error(`[mixup] ${images.length} pixels and ${labels.length} labels for a batch of shape [${shape.join(', ')}]`);
  }
  let lam = 1;
  let cutmix = false;
  if ((o.mixupAlpha > 0 || o.cutmixAlpha > 0) && rng.uniform() < o.prob) {
    if (o.mixupAlpha > 0 && o.cutmixAlpha > 0) {
      cutmix = rng.uniform() < o.switchProb;
      lam = cutmix ? sampleBeta(rng, o.cutmixAlpha, o.cutmixAlpha) : sampleBeta(rng, o.mixupAlpha, o.mixupAlpha);
    } else if (o.mixupAlpha > 0) {
      lam = sampleBeta(rng, o.mixupAlpha, o.mixupAlpha);
    } else {
      cutmix = true;
      lam = sampleBeta(rng, o.cutmixAlpha, o.cutmixAlpha);
    }
  }
  const out = Float32Array.from(images);
  const plane = C * H * W;
  if (lam === 1) return { images: out, targets: mixupTargets(labels, o.numClasses, 1, o.labelSmoothing), lam, mode: 'none' };
  if (cutmix) {
    const r = cutmixBox(H, W, lam, rng);
    const [y0, y1, x0, x1] = r.box;
    for (let n = 0; n < N; n++) {
      const src = (N - 1 - n) * plane;
      for (let c = 0; c < C; c++) {
        for (let y = y0; y < y1; y++) {
          const row = c * H * W + y * W;
          out.set(images.subarray(src + row + x0, src + row + x1), n * plane + row + x0);
        }
      }
    }
    return { images: out, targets: mixupTargets(labels, o.numClasses, r.lam, o.labelSmoothing), lam: r.lam, mode: 'cutmix', box: r.box };
  }
  for (let n = 0; n < N; n++) {
    const a = n * plane, b = (N - 1 - n) * plane;
    for (let k = 0; k < plane; k++) out[a + k] = images[a + k]! * lam + images[b + k]! * (1 - lam);
  }
  return { images: out, targets: mixupTargets(labels, o.numClasses, lam, o.labelSmoothing), lam, mode: 'mixup' };
}
