// Reference gather/scatter kernels over x viewed as [outer, dim, inner]. Indices are validated by the op layer.
import type { TypedArray } from '../backend.js';

export function gather(out: TypedArray, x: TypedArray, idx: Int32Array, outer: number, dim: number, inner: number,
  idxDim: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < idxDim; j++) {
      const row = (o * idxDim + j) * inner;
      for (let i = 0; i < inner; i++) out[row + i] = x[(o * dim + idx[row + i]!) * inner + i]!;
    }
  }
}

export function scatterAdd(out: TypedArray, idx: Int32Array, src: TypedArray, outer: number, dim: number,
  inner: number, idxDim: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < idxDim; j++) {
      const row = (o * idxDim + j) * inner;
      for (let i = 0; i < inner; i++) {
        const k = (o * dim + idx[row + i]!) * inner + i;
        out[k] = out[k]! + src[row + i]!;
      }
    }
  }
}

export function indexSelect(out: TypedArray, x: TypedArray, idx: Int32Array, outer: number, dim: number,
  inner: number, n: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const src = (o * dim + idx[j]!) * inner;
      const dst = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = x[src + i]!;
    }
  }
}

export function indexAdd(out: TypedArray, idx: Int32Array, src: TypedArray, outer: number, dim: number,
  inner: number, n: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const dst = (o * dim + idx[j]!) * inner;
      const s = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = out[dst + i]! + src[s + i]!;
    }
  }
}
