// Reference max and average pooling over NCHW; max pooling records the flat h*W+w index of each max.
import type { FloatArray, PoolParams } from '../backend.js';

export function maxPool2d(out: FloatArray, indices: Int32Array, x: FloatArray, p: PoolParams): void {
  const { N, C, H, W, OH, OW } = p;
  for (let nc = 0; nc < N * C; nc++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let best = -Infinity;
        let bi = -1;
        // first max wins ties; the first NaN wins outright (PyTorch propagates NaN)
        window: for (let kh = 0; kh < p.KH; kh++) {
          const ih = oh * p.strideH - p.padH + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < p.KW; kw++) {
            const iw = ow * p.strideW - p.padW + kw;
            if (iw < 0 || iw >= W) continue;
            const v = x[nc * H * W + ih * W + iw]!;
            if (v > best || bi < 0 || v !== v) { best = v; bi = ih * W + iw; if (v !== v) break window; }
          }
        }
        out[(nc * OH + oh) * OW + ow] = best;
        indices[(nc * OH + oh) * OW + ow] = bi;
      }
    }
  }
}

export function maxPool2dBackward(gx: FloatArray, gy: FloatArray, indices: Int32Array, p: PoolParams): void {
  const { N, C, H, W, OH, OW } = p;
  gx.fill(0);
  for (let nc = 0; nc < N * C; nc++) {
    for (let j = 0; j < OH * OW; j++) {
      const i = indices[nc * OH * OW + j]!;
      if (i < 0 || i >= H * W) continue;  // a window lying wholly in the padding has no input
      const k = nc * H * W + i;
      gx[k] = gx[k]! + gy[nc * OH * OW + j]!;
    }
  }
}

function windowCount(p: PoolParams, oh: number, ow: number): number {
  const h0 = oh * p.strideH - p.padH;
  const w0 = ow * p.strideW - p.padW;
  if (p.countIncludePad) {
    // PyTorch counts the padded window but not beyond the padded border
    const h1 = Math.min(h0 + p.KH, p.H + p.padH);
    const w1 = Math.min(w0 + p.KW, p.W + p.padW);
    return (h1 - h0) * (w1 - w0);
  }
  const h1 = Math.min(h0 + p.KH, p.H);
  const w1 = Math.min(w0 + p.KW, p.W);
  return (h1 - Math.max(h0, 0)) * (w1 - Math.max(w0, 0));
}

export function avgPool2d(out: FloatArray, x: FloatArray, p: PoolParams): void {
  const { N, C, H, W, OH, OW } = p;
  for (let nc = 0; nc < N * C; nc++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let s = 0;
        for (let kh = 0; kh < p.KH; kh++) {
          const ih = oh * p.strideH - p.padH + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < p.KW; kw++) {
            const iw = ow * p.strideW - p.padW + kw;
            if (iw < 0 || iw >= W) continue;
            s += x[nc * H * W + ih * W + iw]!;
          }
        }
        out[(nc * OH + oh) * OW + ow] = s / windowCount(p, oh, ow);
      }
    }
  }
}

export function avgPool2dBackward(gx: FloatArray, gy: FloatArray, p: PoolParams): void {
  const { N, C, H, W, OH, OW } = p;
  gx.fill(0);
  for (let nc = 0; nc < N * C; nc++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const g = gy[(nc * OH + oh) * OW + ow]! / windowCount(p, oh, ow);
        for (let kh = 0; kh < p.KH; kh++) {
          const ih = oh * p.strideH - p.padH + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < p.KW; kw++) {
            const iw = ow * p.strideW - p.padW + kw;
            if (iw < 0 || iw >= W) continue;
            const k = nc * H * W + ih * W + iw;
            gx[k] = gx[k]! + g;
          }
        }
      }
    }
  }
}
