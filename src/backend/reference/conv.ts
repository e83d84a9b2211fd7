// Reference conv2d forward, backward-data and backward-weight: direct loops over NCHW / OIHW.
import type { ConvParams, FloatArray } from '../backend.js';

export function conv2d(out: FloatArray, x: FloatArray, w: FloatArray, bias: FloatArray | null, p: ConvParams): void {
  const { N, C, H, W, O, KH, KW, OH, OW, groups } = p;
  const Cg = C / groups;
  const Og = O / groups;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let acc = bias === null ? 0 : bias[o]!;
          for (let c = 0; c < Cg; c++) {
            const ci = g * Cg + c;
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * p.strideH - p.padH + kh * p.dilationH;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * p.strideW - p.padW + kw * p.dilationW;
                if (iw < 0 || iw >= W) continue;
                acc += x[((n * C + ci) * H + ih) * W + iw]! * w[((o * Cg + c) * KH + kh) * KW + kw]!;
              }
            }
          }
          out[((n * O + o) * OH + oh) * OW + ow] = acc;
        }
      }
    }
  }
}

export function conv2dBackwardData(gx: FloatArray, gy: FloatArray, w: FloatArray, p: ConvParams): void {
  const { N, C, H, W, O, KH, KW, OH, OW, groups } = p;
  const Cg = C / groups;
  const Og = O / groups;
  gx.fill(0);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const gv = gy[((n * O + o) * OH + oh) * OW + ow]!;
          for (let c = 0; c < Cg; c++) {
            const ci = g * Cg + c;
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * p.strideH - p.padH + kh * p.dilationH;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * p.strideW - p.padW + kw * p.dilationW;
                if (iw < 0 || iw >= W) continue;
                const k = ((n * C + ci) * H + ih) * W + iw;
                gx[k] = gx[k]! + gv * w[((o * Cg + c) * KH + kh) * KW + kw]!;
              }
            }
          }
        }
      }
    }
  }
}

export function conv2dBackwardWeight(gw: FloatArray, gb: FloatArray | null, gy: FloatArray, x: FloatArray, p: ConvParams): void {
  const { N, C, H, W, O, KH, KW, OH, OW, groups } = p;
  const Cg = C / groups;
  const Og = O / groups;
  gw.fill(0);
  if (gb !== null) gb.fill(0);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const gv = gy[((n * O + o) * OH + oh) * OW + ow]!;
          if (gb !== null) gb[o] = gb[o]! + gv;
          for (let c = 0; c < Cg; c++) {
            const ci = g * Cg + c;
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * p.strideH - p.padH + kh * p.dilationH;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * p.strideW - p.padW + kw * p.dilationW;
                if (iw < 0 || iw >= W) continue;
                const k = ((o * Cg + c) * KH + kh) * KW + kw;
                gw[k] = gw[k]! + gv * x[((n * C + ci) * H + ih) * W + iw]!;
              }
            }
          }
        }
      }
    }
  }
}
