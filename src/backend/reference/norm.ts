// Reference batch norm ([N, C, HW]) and layer norm ([rows, D]), forward and backward.
import type { FloatArray } from '../backend.js';

export function batchNormForward(out: FloatArray, mean: FloatArray, invstd: FloatArray, x: FloatArray,
  gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void {
  const m = N * HW;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[(n * C + c) * HW + i]!;
    const mu = s / m;
    let v = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) { const d = x[(n * C + c) * HW + i]! - mu; v += d * d; }
    const is = 1 / Math.sqrt(v / m + eps);
    mean[c] = mu;
    invstd[c] = is;
    const g = gamma === null ? 1 : gamma[c]!;
    const b = beta === null ? 0 : beta[c]!;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) {
      const k = (n * C + c) * HW + i;
      out[k] = (x[k]! - mu) * is * g + b;
    }
  }
}

export function batchNormInference(out: FloatArray, x: FloatArray, mean: FloatArray, variance: FloatArray,
  gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void {
  for (let c = 0; c < C; c++) {
    const is = 1 / Math.sqrt(variance[c]! + eps);
    const g = gamma === null ? 1 : gamma[c]!;
    const b = beta === null ? 0 : beta[c]!;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) {
      const k = (n * C + c) * HW + i;
      out[k] = (x[k]! - mean[c]!) * is * g + b;
    }
  }
}

export function batchNormBackward(gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
  x: FloatArray, mean: FloatArray, invstd: FloatArray, gamma: FloatArray | null, N: number, C: number, HW: number): void {
  const m = N * HW;
  for (let c = 0; c < C; c++) {
    const mu = mean[c]!;
    const is = invstd[c]!;
    let sg = 0;
    let sgx = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) {
      const k = (n * C + c) * HW + i;
      sg += gy[k]!;
      sgx += gy[k]! * (x[k]! - mu) * is;
    }
    if (ggamma !== null) ggamma[c] = sgx;
    if (gbeta !== null) gbeta[c] = sg;
    const g = gamma === null ? 1 : gamma[c]!;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) {
      const k = (n * C + c) * HW + i;
      const xhat = (x[k]! - mu) * is;
      gx[k] = (g * is / m) * (m * gy[k]! - sg - xhat * sgx);
    }
  }
}

/** out = relu(bn(x) + residual): batch norm, then the residual add and the clamp, as the unfused ops do them. */
export function batchNormReluForward(out: FloatArray, mean: FloatArray, invstd: FloatArray, x: FloatArray,
  residual: FloatArray | null, gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number,
  eps: number): void {
  batchNormForward(out, mean, invstd, x, gamma, beta, N, C, HW, eps);
  for (let k = 0; k < N * C * HW; k++) {
    const v = out[k]! + (residual === null ? 0 : residual[k]!);
    out[k] = v > 0 ? v : 0;
  }
}

/** The relu gradient (gy where the output y > 0, else 0) is the residual's gradient and batch norm's incoming one. */
export function batchNormReluBackward(gx: FloatArray, gresidual: FloatArray | null, ggamma: FloatArray | null,
  gbeta: FloatArray | null, gy: FloatArray, y: FloatArray, x: FloatArray, mean: FloatArray, invstd: FloatArray,
  gamma: FloatArray | null, N: number, C: number, HW: number): void {
  const g = gresidual ?? new (gy.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(gy.length);
  for (let k = 0; k < N * C * HW; k++) g[k] = y[k]! > 0 ? gy[k]! : 0;
  batchNormBackward(gx, ggamma, gbeta, g, x, mean, invstd, gamma, N, C, HW);
}

export function layerNormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, x: FloatArray,
  gamma: FloatArray | null, beta: FloatArray | null, rows: number, D: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let s = 0;
    for (let i = 0; i < D; i++) s += x[o + i]!;
    const mu = s / D;
    let v = 0;
    for (let i = 0; i < D; i++) { const d = x[o + i]! - mu; v += d * d; }
    const rs = 1 / Math.sqrt(v / D + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let i = 0; i < D; i++) {
      out[o + i] = (x[o + i]! - mu) * rs * (gamma === null ? 1 : gamma[i]!) + (beta === null ? 0 : beta[i]!);
    }
  }
}

export function layerNormBackward(gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
  x: FloatArray, mean: FloatArray, rstd: FloatArray, gamma: FloatArray | null, rows: number, D: number): void {
  if (ggamma !== null) ggamma.fill(0);
  if (gbeta !== null) gbeta.fill(0);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    const mu = mean[r]!;
    const rs = rstd[r]!;
    let sd = 0;
    let sdx = 0;
    for (let i = 0; i < D; i++) {
      const xhat = (x[o + i]! - mu) * rs;
      const dxhat = gy[o + i]! * (gamma === null ? 1 : gamma[i]!);
      sd += dxhat;
      sdx += dxhat * xhat;
      if (ggamma !== null) ggamma[i] = ggamma[i]! + gy[o + i]! * xhat;
      if (gbeta !== null) gbeta[i] = gbeta[i]! + gy[o + i]!;
    }
    for (let i = 0; i < D; i++) {
      const xhat = (x[o + i]! - mu) * rs;
      const dxhat = gy[o + i]! * (gamma === null ? 1 : gamma[i]!);
      gx[o + i] = (rs / D) * (D * dxhat - sd - xhat * sdx);
    }
  }
}
