// Reference softmax and log-softmax over the last axis of [rows, D], with the max subtracted for stability.
import type { FloatArray } from '../backend.js';

export function softmax(out: FloatArray, x: FloatArray, rows: number, D: number, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mx = -Infinity;
    for (let i = 0; i < D; i++) if (x[o + i]! > mx) mx = x[o + i]!;
    let s = 0;
    for (let i = 0; i < D; i++) s += Math.exp(x[o + i]! - mx);
    if (log) {
      const lse = Math.log(s);
      for (let i = 0; i < D; i++) out[o + i] = x[o + i]! - mx - lse;
    } else {
      for (let i = 0; i < D; i++) out[o + i] = Math.exp(x[o + i]! - mx) / s;
    }
  }
}

export function softmaxBackward(gx: FloatArray, gy: FloatArray, y: FloatArray, rows: number, D: number, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    if (log) {
      // gx = gy - softmax * sum(gy)
      let s = 0;
      for (let i = 0; i < D; i++) s += gy[o + i]!;
      for (let i = 0; i < D; i++) gx[o + i] = gy[o + i]! - Math.exp(y[o + i]!) * s;
    } else {
      // gx = y * (gy - sum(gy * y))
      let s = 0;
      for (let i = 0; i < D; i++) s += gy[o + i]! * y[o + i]!;
      for (let i = 0; i < D; i++) gx[o + i] = y[o + i]! * (gy[o + i]! - s);
    }
  }
}
