// Max and average 2-D pooling, forward and backward: OpenMP loops over (n, c) planes.
// Max pooling saves the flat h*W+w position of each max within its plane, so the backward is a plain scatter
// (the contract's Int32Array indices, PyTorch's return_indices layout).
//
// Legend: N batch, C channels, H W input size, OH OW output size, KH KW window, planes = N*C;
//   x, gx [N, C, H, W]; y, gy, indices [N, C, OH, OW].

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels.h"

namespace selfsup {

void maxpool2d_forward(float* out, int32_t* indices, const float* x, const PoolParams& p) {
  const int64_t planes = p.N * p.C, inPlane = p.H * p.W, outPlane = p.OH * p.OW;
  if (planes * outPlane == 0) return;
  parallel_range(planes, planes * outPlane * p.KH * p.KW, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
      const float* xs = x + q * inPlane;
      float* ys = out + q * outPlane;
      int32_t* is = indices + q * outPlane;
      for (int64_t oh = 0; oh < p.OH; oh++) {
        const int64_t h0 = oh * p.strideH - p.padH;
        const int64_t hb = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.KH, p.H);
        for (int64_t ow = 0; ow < p.OW; ow++) {
          const int64_t w0 = ow * p.strideW - p.padW;
          const int64_t wb = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.KW, p.W);
          float best = -std::numeric_limits<float>::infinity();
          int64_t bi = -1;  // stays -1 (and best -inf) for a window lying wholly in the padding
          for (int64_t h = hb; h < he; h++)
            for (int64_t w = wb; w < we; w++) {
              const float v = xs[h * p.W + w];
              if (v > best || bi < 0 || v != v) {  // first max wins ties; NaN propagates like PyTorch
                best = v;
                bi = h * p.W + w;
                if (v != v) goto done;
              }
            }
        done:
          ys[oh * p.OW + ow] = best;
          is[oh * p.OW + ow] = int32_t(bi);
        }
      }
    }
  });
}

void maxpool2d_backward(float* gx, const float* gy, const int32_t* indices, const PoolParams& p) {
  const int64_t planes = p.N * p.C, inPlane = p.H * p.W, outPlane = p.OH * p.OW;
  if (planes * inPlane == 0) return;
  parallel_range(planes, planes * (inPlane + outPlane), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
      float* g = gx + q * inPlane;
      std::memset(g, 0, size_t(inPlane) * sizeof(float));
      const float* dy = gy + q * outPlane;
      const int32_t* is = indices + q * outPlane;
      for (int64_t i = 0; i < outPlane; i++) {
        const int32_t k = is[i];
        if (k >= 0 && k < inPlane) g[k] += dy[i];  // guarded: indices come from JS
      }
    }
  });
}

namespace {
/** Divisor of one window: the full window with count_include_pad (clipped to the padded input), else the valid part. */
inline int64_t pool_divisor(const PoolParams& p, int64_t h0, int64_t w0, int64_t hb, int64_t he, int64_t wb,
                            int64_t we) {
  if (!p.countIncludePad) return (he - hb) * (we - wb);
  const int64_t hEnd = std::min<int64_t>(h0 + p.KH, p.H + p.padH), wEnd = std::min<int64_t>(w0 + p.KW, p.W + p.padW);
  return (hEnd - h0) * (wEnd - w0);
}
}  // namespace

void avgpool2d_forward(float* out, const float* x, const PoolParams& p) {
  const int64_t planes = p.N * p.C, inPlane = p.H * p.W, outPlane = p.OH * p.OW;
  if (planes * outPlane == 0) return;
  parallel_range(planes, planes * outPlane * p.KH * p.KW, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
      const float* xs = x + q * inPlane;
      float* ys = out + q * outPlane;
      for (int64_t oh = 0; oh < p.OH; oh++) {
        const int64_t h0 = oh * p.strideH - p.padH;
        const int64_t hb = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.KH, p.H);
        for (int64_t ow = 0; ow < p.OW; ow++) {
          const int64_t w0 = ow * p.strideW - p.padW;
          const int64_t wb = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.KW, p.W);
          float sum = 0;
          for (int64_t h = hb; h < he; h++)
            for (int64_t w = wb; w < we; w++) sum += xs[h * p.W + w];
          const int64_t div = pool_divisor(p, h0, w0, hb, he, wb, we);
          ys[oh * p.OW + ow] = div > 0 ? sum / float(div) : 0.f;
        }
      }
    }
  });
}

void avgpool2d_backward(float* gx, const float* gy, const PoolParams& p) {
  const int64_t planes = p.N * p.C, inPlane = p.H * p.W, outPlane = p.OH * p.OW;
  if (planes * inPlane == 0) return;
  parallel_range(planes, planes * (inPlane + outPlane * p.KH * p.KW), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
      float* g = gx + q * inPlane;
      std::memset(g, 0, size_t(inPlane) * sizeof(float));
      const float* dy = gy + q * outPlane;
      for (int64_t oh = 0; oh < p.OH; oh++) {
        const int64_t h0 = oh * p.strideH - p.padH;
        const int64_t hb = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.KH, p.H);
        for (int64_t ow = 0; ow < p.OW; ow++) {
          const int64_t w0 = ow * p.strideW - p.padW;
          const int64_t wb = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.KW, p.W);
          const int64_t div = pool_divisor(p, h0, w0, hb, he, wb, we);
          if (div <= 0) continue;
          const float v = dy[oh * p.OW + ow] / float(div);
          for (int64_t h = hb; h < he; h++)
            for (int64_t w = wb; w < we; w++) g[h * p.W + w] += v;
        }
      }
    }
  });
}

}  // namespace selfsup
