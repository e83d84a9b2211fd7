// Weighted kNN classifier on L2-normalised features, the official MoCo CIFAR demo's rule: cosine similarity, the k
// nearest bank features vote with weight exp(sim / t). Which features it gets is the caller's choice (knn.feature:
// the demo normalises the 128-d head output; the default is the pooled backbone features).
import * as T from '../tensor/index.js';

export interface KnnOptions {
  /** neighbours (the demo's knn_k) */
  k?: number;
  /** temperature of the vote weights (knn_t) */
  t?: number;
  /** query rows per similarity block, to bound memory */
  chunk?: number;
}

export interface KnnResult { top1: number; top5: number; predictions: Int32Array }

/**
 * bank [N, D] and queries [B, D] must be L2-normalised features; bankLabels [N] in [0, classes).
 * Returns top-1/top-5 accuracy of queries against queryLabels.
 */
export function knnClassify(bank: T.Tensor, bankLabels: Int32Array, queries: T.Tensor, queryLabels: Int32Array,
  classes: number, opts: KnnOptions = {}): KnnResult {
  const k = Math.min(opts.k ?? 200, bank.shape[0]!);
  const t = opts.t ?? 0.1;
  const chunk = opts.chunk ?? 256;
  if (bank.ndim !== 2 || queries.ndim !== 2 || bank.shape[1] !== queries.shape[1]) {
    throw new Error(`[knn] bank [N, D] and queries [B, D] must share D, got [${bank.shape}] and [${queries.shape}]`);
  }
  const N = bank.shape[0]!;
  const B = queries.shape[0]!;
  if (bankLabels.length !== N) throw new Error(`[knn] ${bankLabels.length} bank labels for ${N} bank features`);
  if (queryLabels.length !== B) throw new Error(`[knn] ${queryLabels.length} query labels for ${B} queries`);
  for (const l of bankLabels) {
    if (l < 0 || l >= classes) throw new Error(`[knn] bank label ${l} outside [0, ${classes})`);
  }
  let hit1 = 0;
  let hit5 = 0;
  const predictions = new Int32Array(B);
  const scores = new Float64Array(classes);
  const topSim = new Float64Array(k);
  const topIdx = new Int32Array(k);
  for (let s = 0; s < B; s += chunk) {
    const e = Math.min(B, s + chunk);
    T.tidy(() => {
      const q = T.slice(queries, 0, s, e);
      const sim = T.matmul(q, bank, { transB: true }).data; // [b, N]
      for (let r = 0; r < e - s; r++) {
        // top-k by a bounded min-heap kept as a sorted insertion buffer (k is small against N)
        let filled = 0;
        const row = r * N;
        for (let j = 0; j < N; j++) {
          const v = sim[row + j]!;
          if (filled < k) {
            let p = filled++;
            while (p > 0 && topSim[p - 1]! < v) { topSim[p] = topSim[p - 1]!; topIdx[p] = topIdx[p - 1]!; p--; }
            topSim[p] = v;
            topIdx[p] = j;
          } else if (v > topSim[k - 1]!) {
            let p = k - 1;
            while (p > 0 && topSim[p - 1]! < v) { topSim[p] = topSim[p - 1]!; topIdx[p] = topIdx[p - 1]!; p--; }
            topSim[p] = v;
            topIdx[p] = j;
          }
        }
        scores.fill(0);
        for (let j = 0; j < filled; j++) scores[bankLabels[topIdx[j]!]!]! += Math.exp(topSim[j]! / t);
        const label = queryLabels[s + r]!;
        const target = scores[label]!;
        let above = 0;
        let best = 0;
        for (let c = 0; c < classes; c++) {
          if (scores[c]! > target || (scores[c] === target && c < label)) above++;
          if (scores[c]! > scores[best]!) best = c;
        }
        predictions[s + r] = best;
        if (above === 0) hit1++;
        if (above < 5) hit5++;
      }
    });
  }
  return { top1: B === 0 ? 0 : hit1 / B, top5: B === 0 ? 0 : hit5 / B, predictions };
}
