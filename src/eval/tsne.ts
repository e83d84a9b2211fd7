// t-SNE maps of feature rows (van der Maaten & Hinton, 2008), exact O(n^2) form with sklearn's defaults:
// perplexity 30 calibrated per point by bisection on the entropy, symmetric P, PCA initialisation scaled to
// std 1e-4, early exaggeration 12 for 250 iterations, momentum 0.5 then 0.8, per-coordinate gains, learning rate
// max(n / 12 / 4, 50). Deterministic: nothing is drawn at random. Float64 throughout.
import { pca } from './embed.js';

export interface TsneOptions {
  perplexity?: number;
  iterations?: number;
  earlyExaggeration?: number;
  exaggerationIterations?: number;
  /** 'auto' = max(n / earlyExaggeration / 4, 50), as sklearn */
  learningRate?: number | 'auto';
  /** called every 50 iterations with the KL divergence of the current map */
  onProgress?: (iteration: number, kl: number) => void;
}

/** Exact t-SNE is quadratic in memory and time: beyond this many points use --limit. */
export const TSNE_MAX_POINTS = 5000;

/** Squared euclidean distances between the rows of x [n, d]. */
function squaredDistances(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k]! ** 2;
    norms[i] = s;
  }
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k]! * x[j * d + k]!;
      const v = Math.max(0, norms[i]! + norms[j]! - 2 * dot);
      D[i * n + j] = v;
      D[j * n + i] = v;
    }
  }
  return D;
}

/**
 * Conditional probabilities P[i, j] = p(j | i) with the Gaussian precision of row i set so that the entropy of the
 * row (in nats) is log(perplexity), to 1e-5. Rows sum to 1; the diagonal is 0.
 */
export function conditionalP(D: Float64Array, n: number, perplexity: number): Float64Array {
  const P = new Float64Array(n * n);
  const target = Math.log(perplexity);
  for (let i = 0; i < n; i++) {
    let beta = 1;
    let lo = -Infinity;
    let hi = Infinity;
    for (let step = 0; step < 100; step++) {
      let sum = 0;
      let sumDP = 0;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const p = Math.exp(-D[i * n + j]! * beta);
        P[i * n + j] = p;
        sum += p;
        sumDP += D[i * n + j]! * p;
      }
      if (sum === 0) sum = 1e-300;
      // H = log(sum) + beta * E[D]
      const H = Math.log(sum) + (beta * sumDP) / sum;
      for (let j = 0; j < n; j++) P[i * n + j]! /= sum;
      const diff = H - target;
      if (Math.abs(diff) <= 1e-5) break;
      if (diff > 0) {
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = lo === -Infinity ? beta / 2 : (beta + lo) / 2;
      }
    }
    P[i * n + i] = 0;
  }
  return P;
}

/** A 2-D t-SNE map of x [n, d]: positions [n, 2] and the final KL(P || Q). */
export function tsne(x: ArrayLike<number>, n: number, d: number, o: TsneOptions = {}): { embedding: Float64Array; kl: number } {
  if (x.length !== n * d) throw new Error(`[tsne] ${x.length} values for [${n}, ${d}]`);
  const perplexity = o.perplexity ?? 30;
  if (!(perplexity > 0) || perplexity >= n) {
    throw new Error(`[tsne] perplexity must be in (0, ${n}) for ${n} points, got ${perplexity}`);
  }
  if (n > TSNE_MAX_POINTS) throw new Error(`[tsne] ${n} points: exact t-SNE handles at most ${TSNE_MAX_POINTS} (embed fewer with --limit)`);
  const iterations = o.iterations ?? 1000;
  const exaggeration = o.earlyExaggeration ?? 12;
  const exaggerationIterations = o.exaggerationIterations ?? 250;
  const lr = o.learningRate === undefined || o.learningRate === 'auto' ? Math.max(n / exaggeration / 4, 50) : o.learningRate;

  // symmetric joint probabilities P = (P + P^T) / 2n
  const C = conditionalP(squaredDistances(x, n, d), n, perplexity);
  const P = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) P[i * n + j] = Math.max((C[i * n + j]! + C[j * n + i]!) / (2 * n), 1e-12);
  }
  for (let i = 0; i < n; i++) P[i * n + i] = 0;

  // PCA start, scaled so the first coordinate has standard deviation 1e-4
  const Y = pca(x, n, d, 2).projection;
  let m0 = 0;
  for (let i = 0; i < n; i++) m0 += Y[2 * i]! / n;
  let sd = 0;
  for (let i = 0; i < n; i++) sd += (Y[2 * i]! - m0) ** 2 / n;
  const scale = Math.sqrt(sd) > 0 ? 1e-4 / Math.sqrt(sd) : 1;
  for (let i = 0; i < 2 * n; i++) Y[i]! *= scale;

  const update = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  const grad = new Float64Array(2 * n);
  const num = new Float64Array(n * n);
  const klOf = (Z: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        const p = P[i * n + j]!;
        s += p * Math.log(p / Math.max(num[i * n + j]! / Z, 1e-300));
      }
    }
    return s;
  };
  /** Student-t kernel num = 1 / (1 + |yi - yj|^2) of the current map; returns Z, its sum over i != j. */
  const kernel = (): number => {
    let Z = 0;
    for (let i = 0; i < n; i++) {
      const yi0 = Y[2 * i]!, yi1 = Y[2 * i + 1]!;
      for (let j = i + 1; j < n; j++) {
        const a = yi0 - Y[2 * j]!, b = yi1 - Y[2 * j + 1]!;
        const q = 1 / (1 + a * a + b * b);
        num[i * n + j] = q;
        num[j * n + i] = q;
        Z += 2 * q;
      }
    }
    return Z;
  };
  for (let it = 0; it < iterations; it++) {
    const exag = it < exaggerationIterations ? exaggeration : 1;
    const momentum = it < exaggerationIterations ? 0.5 : 0.8;
    const Z = kernel();
    // dC/dy_i = 4 sum_j (exag p_ij - q_ij) num_ij (y_i - y_j)
    for (let i = 0; i < n; i++) {
      let g0 = 0, g1 = 0;
      const yi0 = Y[2 * i]!, yi1 = Y[2 * i + 1]!;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const q = num[i * n + j]!;
        const f = (exag * P[i * n + j]! - q / Z) * q;
        g0 += f * (yi0 - Y[2 * j]!);
        g1 += f * (yi1 - Y[2 * j + 1]!);
      }
      grad[2 * i] = 4 * g0;
      grad[2 * i + 1] = 4 * g1;
    }
    for (let k = 0; k < 2 * n; k++) {
      gains[k] = update[k]! * grad[k]! < 0 ? gains[k]! + 0.2 : Math.max(gains[k]! * 0.8, 0.01);
      update[k] = momentum * update[k]! - lr * gains[k]! * grad[k]!;
      Y[k]! += update[k]!;
    }
    if (o.onProgress !== undefined && (it + 1) % 50 === 0) o.onProgress(it + 1, klOf(kernel()));
  }
  return { embedding: Y, kl: klOf(kernel()) };
}
