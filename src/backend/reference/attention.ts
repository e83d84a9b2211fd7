// Reference fused multi-head self-attention: softmax(q k^T * scale) v per (batch, head), q, k, v read from the qkv
// projection's output [B, N, 3, H, hd] and the result written heads-merged [B, N, H, hd]; probs [B, H, N, N].
import type { FloatArray } from '../backend.js';

export function attentionForward(out: FloatArray, probs: FloatArray, qkv: FloatArray, B: number, N: number, H: number,
  hd: number, scale: number): void {
  const C = H * hd;
  const stride = 3 * C;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const q0 = b * N * stride + h * hd;
      const p0 = (b * H + h) * N * N;
      for (let i = 0; i < N; i++) {
        let mx = -Infinity;
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += qkv[q0 + i * stride + d]! * qkv[q0 + C + j * stride + d]!;
          s *= scale;
          probs[p0 + i * N + j] = s;
          if (s > mx) mx = s;
        }
        let sum = 0;
        for (let j = 0; j < N; j++) {
          const e = Math.exp(probs[p0 + i * N + j]! - mx);
          probs[p0 + i * N + j] = e;
          sum += e;
        }
        for (let j = 0; j < N; j++) probs[p0 + i * N + j] = probs[p0 + i * N + j]! / sum;
        for (let d = 0; d < hd; d++) {
          let o = 0;
          for (let j = 0; j < N; j++) o += probs[p0 + i * N + j]! * qkv[q0 + 2 * C + j * stride + d]!;
          out[b * N * C + i * C + h * hd + d] = o;
        }
      }
    }
  }
}

export function attentionBackward(gqkv: FloatArray, gout: FloatArray, qkv: FloatArray, probs: FloatArray, B: number,
  N: number, H: number, hd: number, scale: number): void {
  const C = H * hd;
  const stride = 3 * C;
  gqkv.fill(0);
  const ds = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const q0 = b * N * stride + h * hd;
      const p0 = (b * H + h) * N * N;
      const o0 = b * N * C + h * hd;
      for (let i = 0; i < N; i++) {
        // d loss / d probs_ij = gout_i . v_j; gv_j += probs_ij gout_i
        for (let j = 0; j < N; j++) {
          let dp = 0;
          for (let d = 0; d < hd; d++) {
            dp += gout[o0 + i * C + d]! * qkv[q0 + 2 * C + j * stride + d]!;
            gqkv[q0 + 2 * C + j * stride + d] = gqkv[q0 + 2 * C + j * stride + d]! + probs[p0 + i * N + j]! * gout[o0 + i * C + d]!;
          }
          ds[j] = dp;
        }
        // through the softmax, then the scale
        let dot = 0;
        for (let j = 0; j < N; j++) dot += probs[p0 + i * N + j]! * ds[j]!;
        for (let j = 0; j < N; j++) ds[j] = probs[p0 + i * N + j]! * (ds[j]! - dot) * scale;
        // scores_ij = q_i . k_j
        for (let j = 0; j < N; j++) {
          for (let d = 0; d < hd; d++) {
            gqkv[q0 + i * stride + d] = gqkv[q0 + i * stride + d]! + ds[j]! * qkv[q0 + C + j * stride + d]!;
            gqkv[q0 + C + j * stride + d] = gqkv[q0 + C + j * stride + d]! + ds[j]! * qkv[q0 + i * stride + d]!;
          }
        }
      }
    }
  }
}
