// Reference batched matmul with transposed operands read in place and a fused bias.
import type { FloatArray } from '../backend.js';
import { erf } from './elementwise.js';

export function matmul(out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray | null,
  batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean,
  aBatchStride: number, bBatchStride: number): void {
  // element (i, k) of op(a) and (k, j) of op(b)
  const ars = transA ? 1 : K;
  const acs = transA ? M : 1;
  const brs = transB ? 1 : N;
  const bcs = transB ? K : 1;
  for (let p = 0; p < batch; p++) {
    const ao = p * aBatchStride;
    const bo = p * bBatchStride;
    const oo = p * M * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let acc = bias === null ? 0 : bias[j]!;
        for (let k = 0; k < K; k++) acc += a[ao + i * ars + k * acs]! * b[bo + k * brs + j * bcs]!;
        out[oo + i * N + j] = acc;
      }
    }
  }
}

/** The backward of y = x w^T + b: gx = gy w, gw = gy^T x, gb = gy summed over rows (null outputs skipped). */
export function linearBackward(gx: FloatArray | null, gw: FloatArray | null, gb: FloatArray | null, gy: FloatArray,
  x: FloatArray, w: FloatArray, rows: number, I: number, O: number): void {
  if (gx !== null) {
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < I; i++) {
        let acc = 0;
        for (let o = 0; o < O; o++) acc += gy[r * O + o]! * w[o * I + i]!;
        gx[r * I + i] = acc;
      }
    }
  }
  if (gw !== null) {
    for (let o = 0; o < O; o++) {
      for (let i = 0; i < I; i++) {
        let acc = 0;
        for (let r = 0; r < rows; r++) acc += gy[r * O + o]! * x[r * I + i]!;
        gw[o * I + i] = acc;
      }
    }
  }
  if (gb !== null) {
    for (let o = 0; o < O; o++) {
      let acc = 0;
      for (let r = 0; r < rows; r++) acc += gy[r * O + o]!;
      gb[o] = acc;
    }
  }
}

/** Linear + exact GELU: out = gelu(x w^T + bias), deriv = gelu'(x w^T + bias) (GELU's derivative, saved for the backward). */
export function linearGelu(out: FloatArray, deriv: FloatArray, x: FloatArray, w: FloatArray, bias: FloatArray | null,
  rows: number, I: number, O: number): void {
  matmul(deriv, x, w, bias, 1, rows, O, I, false, true, 0, 0);
  for (let i = 0; i < rows * O; i++) {
    const v = deriv[i]!;
    const cdf = 0.5 * (1 + erf(v * Math.SQRT1_2));
    out[i] = v * cdf;
    deriv[i] = cdf + v * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
  }
}

/** linearBackward with gx scaled elementwise by gxScale [rows, I]. */
export function linearBackwardScaled(gx: FloatArray | null, gw: FloatArray | null, gb: FloatArray | null,
  gxScale: FloatArray | null, gy: FloatArray, x: FloatArray, w: FloatArray, rows: number, I: number, O: number): void {
  if (gx !== null && gxScale === null) throw new Error('[linearBackwardScaled] gxScale is null but gx is requested');
  linearBackward(gx, gw, gb, gy, x, w, rows, I, O);
  if (gx !== null) for (let i = 0; i < rows * I; i++) gx[i] = gx[i]! * gxScale![i]!;
}
