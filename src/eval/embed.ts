// Embedding maps: a 2-D PCA projection of feature rows (subspace iteration on the centred data, never forming
// the D x D covariance, so ResNet-50's 2048-d features cost O(N * D) per iteration), and the CSV beside the file.

/**
 * The top-`k` principal components of x [n, d] (row-major): returns the projections [n, k] and the fraction of
 * variance each explains. Deterministic (fixed start), float64 throughout.
 */
export function pca(x: ArrayLike<number>, n: number, d: number, k = 2, iters = 200): { projection: Float64Array; explained: number[] } {
  if (x.length !== n * d) throw new Error(`[pca] ${x.length} values for [${n}, ${d}]`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += x[i * d + j]! / n;
  const c = new Float64Array(n * d);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j]! - mean[j]!;
      c[i * d + j] = v;
      total += v * v;
    }
  }
  // V [k, d]: start from a fixed, non-degenerate basis
  const V = new Float64Array(k * d);
  for (let a = 0; a < k; a++) for (let j = 0; j < d; j++) V[a * d + j] = Math.sin(1 + a * 7.3 + j * 1.7) + (j % (a + 2) === 0 ? 1 : 0);
  const xv = new Float64Array(n);
  const W = new Float64Array(k * d);
  const orthonormalise = (M: Float64Array): void => {
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < a; b++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += M[a * d + j]! * M[b * d + j]!;
        for (let j = 0; j < d; j++) M[a * d + j]! -= dot * M[b * d + j]!;
      }
      let norm = 0;
      for (let j = 0; j < d; j++) norm += M[a * d + j]! ** 2;
      norm = Math.sqrt(norm) || 1;
      for (let j = 0; j < d; j++) M[a * d + j]! /= norm;
    }
  };
  orthonormalise(V);
  for (let it = 0; it < iters; it++) {
    W.fill(0);
    for (let a = 0; a < k; a++) {
      // W_a = C^T (C V_a)
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += c[i * d + j]! * V[a * d + j]!;
        xv[i] = s;
      }
      for (let i = 0; i < n; i++) {
        const s = xv[i]!;
        for (let j = 0; j < d; j++) W[a * d + j]! += c[i * d + j]! * s;
      }
    }
    orthonormalise(W);
    V.set(W);
  }
  const projection = new Float64Array(n * k);
  const explained: number[] = [];
  for (let a = 0; a < k; a++) {
    let ss = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += c[i * d + j]! * V[a * d + j]!;
      projection[i * k + a] = s;
      ss += s * s;
    }
    explained.push(total > 0 ? ss / total : 0);
  }
  return { projection, explained };
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** index,path,label,class: one row per embedding (label -1 and an empty class for unlabelled images). */
export function embeddingsCsv(paths: readonly string[], labels: ArrayLike<number>, classes: readonly string[]): string {
  const lines = ['index,path,label,class'];
  for (let i = 0; i < paths.length; i++) {
    const l = labels[i]!;
    lines.push(`${i},${csvField(paths[i]!)},${l},${csvField(l >= 0 ? (classes[l] ?? '') : '')}`);
  }
  return `${lines.join('\n')}\n`;
}
