// Reference batched matmul with transposed operands read in place and a fused bias.
import type { FloatArray } from '../backend.js';

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
