// Batch norm and layer norm: hand-written OpenMP loops (memory-bound; they let us save invstd/rstd directly
// and accept a missing affine). Statistics accumulate in double.
//
// Legend: batch norm x [N, C, HW], per-channel mean/invstd/gamma/beta [C], M = N*HW values per channel;
//   layer norm x [rows, D], per-row mean/rstd [rows], gamma/beta [D].

#include <cmath>
#include <vector>

#include "kernels.h"

namespace selfsup {

// ---- batch norm ----

void batchnorm_forward(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                       const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  if (C == 0) return;
  const int64_t M = N * HW;
  parallel_range(C, N * C * HW, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      double sum = 0;
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + (n * C + c) * HW;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < HW; i++) sum += xs[i];
      }
      const double mu = M ? sum / double(M) : 0.0;
      double sq = 0;
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + (n * C + c) * HW;
#pragma omp simd reduction(+ : sq)
        for (int64_t i = 0; i < HW; i++) sq += (xs[i] - mu) * (xs[i] - mu);
      }
      const double is = 1.0 / std::sqrt((M ? sq / double(M) : 0.0) + eps);
      mean[c] = float(mu);
      invstd[c] = float(is);
      // y = (x - mean) * scale + beta: subtracting first keeps precision when invstd is large (tiny variance)
      const float m = float(mu), scale = float((gamma ? gamma[c] : 1.0) * is), shift = beta ? beta[c] : 0.f;
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + (n * C + c) * HW;
        float* ys = out + (n * C + c) * HW;
#pragma omp simd
        for (int64_t i = 0; i < HW; i++) ys[i] = (xs[i] - m) * scale + shift;
      }
    }
  });
}

void batchnorm_inference(float* out, const float* x, const float* mean, const float* variance, const float* gamma,
                         const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  if (N * C * HW == 0) return;
  std::vector<float> scale(C);
  for (int64_t c = 0; c < C; c++) scale[c] = float((gamma ? gamma[c] : 1.0) / std::sqrt(double(variance[c]) + eps));
  parallel_range(N * C, N * C * HW, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t c = p % C;
      const float m = mean[c], sc = scale[c], sh = beta ? beta[c] : 0.f;
      const float* xs = x + p * HW;
      float* ys = out + p * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; i++) ys[i] = (xs[i] - m) * sc + sh;
    }
  });
}

void batchnorm_backward(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x, const float* mean,
                        const float* invstd, const float* gamma, int64_t N, int64_t C, int64_t HW) {
  if (C == 0) return;
  const int64_t M = N * HW;
  parallel_range(C, N * C * HW, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const float mu = mean[c], is = invstd[c];
      // sumGy = sum(gy), sumGyXhat = sum(gy * xhat) with xhat = (x - mean) * invstd
      double sumGy = 0, sumGyXc = 0;
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + (n * C + c) * HW;
        const float* gs = gy + (n * C + c) * HW;
#pragma omp simd reduction(+ : sumGy, sumGyXc)
        for (int64_t i = 0; i < HW; i++) {
          sumGy += gs[i];
          sumGyXc += double(gs[i]) * (xs[i] - mu);
        }
      }
      const double sumGyXhat = sumGyXc * is;
      if (ggamma) ggamma[c] = float(sumGyXhat);
      if (gbeta) gbeta[c] = float(sumGy);
      if (M == 0) continue;
      // gx = gamma * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))
      const double g = gamma ? gamma[c] : 1.0;
      const float a = float(g * is);
      const float b = float(sumGy / double(M));
      const float k = float(sumGyXhat / double(M) * is);  // multiplies (x - mean)
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + (n * C + c) * HW;
        const float* gs = gy + (n * C + c) * HW;
        float* out = gx + (n * C + c) * HW;
#pragma omp simd
        for (int64_t i = 0; i < HW; i++) out[i] = a * (gs[i] - b - (xs[i] - mu) * k);
      }
    }
  });
}

// ---- batch norm on nChw{L}c (L = 16 or 8, the block oneDNN's conv picked): x [N, C/L, HW, L]; one L-channel block
// at a time, its lanes side by side. Templated on L so the lane loops keep a constant trip count to vectorise. ----

namespace {
/** Element (n, block cb, position i, lane 0) of an nChw{L}c buffer. */
template <int64_t kLanes>
inline int64_t blk(int64_t n, int64_t cb, int64_t i, int64_t CB, int64_t HW) { return ((n * CB + cb) * HW + i) * kLanes; }

template <int64_t kLanes>
void batchnorm_forward_blocked_t(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                               const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  if (C == 0) return;
  const int64_t CB = C / kLanes, M = N * HW;
  parallel_range(CB, N * C * HW, [&](int64_t b0, int64_t b1) {
    for (int64_t cb = b0; cb < b1; cb++) {
      double sum[kLanes] = {}, sq[kLanes] = {};
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
          const float* xs = x + blk<kLanes>(n, cb, i, CB, HW);
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) sum[j] += xs[j];
        }
      double mu[kLanes];
      for (int64_t j = 0; j < kLanes; j++) mu[j] = M ? sum[j] / double(M) : 0.0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
          const float* xs = x + blk<kLanes>(n, cb, i, CB, HW);
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) sq[j] += (xs[j] - mu[j]) * (xs[j] - mu[j]);
        }
      float m[kLanes], scale[kLanes], shift[kLanes];
      for (int64_t j = 0; j < kLanes; j++) {
        const int64_t c = cb * kLanes + j;
        const double is = 1.0 / std::sqrt((M ? sq[j] / double(M) : 0.0) + eps);
        mean[c] = float(mu[j]);
        invstd[c] = float(is);
        m[j] = float(mu[j]);
        scale[j] = float((gamma ? gamma[c] : 1.0) * is);
        shift[j] = beta ? beta[c] : 0.f;
      }
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
          const int64_t o = blk<kLanes>(n, cb, i, CB, HW);
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) out[o + j] = (x[o + j] - m[j]) * scale[j] + shift[j];
        }
    }
  });
}

template <int64_t kLanes>
void batchnorm_inference_blocked_t(float* out, const float* x, const float* mean, const float* variance,
                                 const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  if (N * C * HW == 0) return;
  const int64_t CB = C / kLanes;
  std::vector<float> scale(C);
  for (int64_t c = 0; c < C; c++) scale[c] = float((gamma ? gamma[c] : 1.0) / std::sqrt(double(variance[c]) + eps));
  parallel_range(N * CB, N * C * HW, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t c0 = (p % CB) * kLanes;
      float m[kLanes], sc[kLanes], sh[kLanes];
      for (int64_t j = 0; j < kLanes; j++) {
        m[j] = mean[c0 + j];
        sc[j] = scale[c0 + j];
        sh[j] = beta ? beta[c0 + j] : 0.f;
      }
      for (int64_t i = 0; i < HW; i++) {
        const int64_t o = (p * HW + i) * kLanes;
#pragma omp simd
        for (int64_t j = 0; j < kLanes; j++) out[o + j] = (x[o + j] - m[j]) * sc[j] + sh[j];
      }
    }
  });
}

template <int64_t kLanes>
void batchnorm_backward_blocked_t(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x,
                                const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C,
                                int64_t HW) {
  if (C == 0) return;
  const int64_t CB = C / kLanes, M = N * HW;
  parallel_range(CB, N * C * HW, [&](int64_t b0, int64_t b1) {
    for (int64_t cb = b0; cb < b1; cb++) {
      const int64_t c0 = cb * kLanes;
      float mu[kLanes];
      for (int64_t j = 0; j < kLanes; j++) mu[j] = mean[c0 + j];
      double sumGy[kLanes] = {}, sumGyXc[kLanes] = {};
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
          const int64_t o = blk<kLanes>(n, cb, i, CB, HW);
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) {
            sumGy[j] += gy[o + j];
            sumGyXc[j] += double(gy[o + j]) * (x[o + j] - mu[j]);
          }
        }
      float a[kLanes], b[kLanes], k[kLanes];
      for (int64_t j = 0; j < kLanes; j++) {
        const int64_t c = c0 + j;
        const double is = invstd[c], sumGyXhat = sumGyXc[j] * is;
        if (ggamma) ggamma[c] = float(sumGyXhat);
        if (gbeta) gbeta[c] = float(sumGy[j]);
        a[j] = float((gamma ? gamma[c] : 1.0) * is);
        b[j] = M ? float(sumGy[j] / double(M)) : 0.f;
        k[j] = M ? float(sumGyXhat / double(M) * is) : 0.f;
      }
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
          const int64_t o = blk<kLanes>(n, cb, i, CB, HW);
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) gx[o + j] = a[j] * (gy[o + j] - b[j] - (x[o + j] - mu[j]) * k[j]);
        }
    }
  });
}

}  // namespace

void batchnorm_forward_blocked(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                               const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block) {
  (block == 16 ? batchnorm_forward_blocked_t<16> : batchnorm_forward_blocked_t<8>)(out, mean, invstd, x, gamma, beta,
                                                                                    N, C, HW, eps);
}
void batchnorm_inference_blocked(float* out, const float* x, const float* mean, const float* variance,
                                 const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps,
                                 int64_t block) {
  (block == 16 ? batchnorm_inference_blocked_t<16> : batchnorm_inference_blocked_t<8>)(out, x, mean, variance, gamma,
                                                                                        beta, N, C, HW, eps);
}
void batchnorm_backward_blocked(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x,
                                const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C,
                                int64_t HW, int64_t block) {
  (block == 16 ? batchnorm_backward_blocked_t<16> : batchnorm_backward_blocked_t<8>)(gx, ggamma, gbeta, gy, x, mean,
                                                                                      invstd, gamma, N, C, HW);
}

// ---- layer norm ----

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                       int64_t rows, int64_t D, double eps) {
  if (rows == 0) return;
  parallel_range(rows, rows * D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xs = x + r * D;
      float* ys = out + r * D;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < D; i++) sum += xs[i];
      const double mu = D ? sum / double(D) : 0.0;
      double sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < D; i++) sq += (xs[i] - mu) * (xs[i] - mu);
      const double rs = 1.0 / std::sqrt((D ? sq / double(D) : 0.0) + eps);
      mean[r] = float(mu);
      rstd[r] = float(rs);
      const float m = float(mu), s = float(rs);
      if (gamma && beta) {
#pragma omp simd
        for (int64_t i = 0; i < D; i++) ys[i] = (xs[i] - m) * s * gamma[i] + beta[i];
      } else {
        for (int64_t i = 0; i < D; i++)
          ys[i] = (xs[i] - m) * s * (gamma ? gamma[i] : 1.f) + (beta ? beta[i] : 0.f);
      }
    }
  });
}

void layernorm_backward(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x, const float* mean,
                        const float* rstd, const float* gamma, int64_t rows, int64_t D) {
  if (D == 0) return;
  // ggamma/gbeta sum over rows: each thread keeps its own partial row, combined at the end. Every loop below is a
  // plain simd loop (no branch inside), so the compiler vectorises it; gamma == null is a row of ones.
  const bool params = ggamma || gbeta;
  const int nt = (rows * D >= kParallelThreshold && rows >= 2) ? omp_get_max_threads() : 1;
  std::vector<double> partial(params ? size_t(nt) * 2 * D : 0, 0.0);
  std::vector<float> ones(gamma ? 0 : size_t(D), 1.f);
  const float* gam = gamma ? gamma : ones.data();
  parallel_range(rows, rows * D, [&](int64_t r0, int64_t r1) {
    const int t = omp_in_parallel() ? omp_get_thread_num() : 0;
    double* pg = params ? partial.data() + size_t(t) * 2 * D : nullptr;
    double* pb = params ? pg + D : nullptr;
    for (int64_t r = r0; r < r1; r++) {
      const float* xs = x + r * D;
      const float* gs = gy + r * D;
      float* out = gx + r * D;
      const float m = mean[r], s = rstd[r];
      // dxhat = gy * gamma; gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      double sumD = 0, sumDX = 0;
#pragma omp simd reduction(+ : sumD, sumDX)
      for (int64_t i = 0; i < D; i++) {
        const float xhat = (xs[i] - m) * s;
        const float dxhat = gs[i] * gam[i];
        sumD += dxhat;
        sumDX += double(dxhat * xhat);
      }
      if (params) {
#pragma omp simd
        for (int64_t i = 0; i < D; i++) {
          pg[i] += double(gs[i] * ((xs[i] - m) * s));
          pb[i] += double(gs[i]);
        }
      }
      const float meanD = float(sumD / double(D)), meanDX = float(sumDX / double(D));
#pragma omp simd
      for (int64_t i = 0; i < D; i++) {
        const float xhat = (xs[i] - m) * s;
        out[i] = s * (gs[i] * gam[i] - meanD - xhat * meanDX);
      }
    }
  });
  if (!params) return;
  for (int64_t i = 0; i < D; i++) {
    double g = 0, b = 0;
    for (int t = 0; t < nt; t++) {
      g += partial[size_t(t) * 2 * D + i];
      b += partial[size_t(t) * 2 * D + D + i];
    }
    if (ggamma) ggamma[i] = float(g);
    if (gbeta) gbeta[i] = float(b);
  }
}

}  // namespace selfsup
