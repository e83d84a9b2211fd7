// Batch norm and layer norm: hand-written OpenMP loops (memory-bound; they let us save invstd/rstd directly
// and accept a missing affine). Statistics accumulate in double.
//
// Legend: batch norm x [N, C, HW] (y, residual, gy, gx alike), per-channel mean/invstd/gamma/beta [C], M = N*HW
//   values per channel;
//   layer norm x [rows, D], per-row mean/rstd [rows], gamma/beta [D].

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace selfsup {

// ---- batch norm ----
// The plain kernels and the fused ones (out = relu(bn(x) + residual), residual optional; oneDNN's fuse_norm_relu
// with the residual add of a ResNet block folded in) share one template each: kRelu adds the clamp in forward and
// the mask in backward. The fused backward reads the mask from y (the block's output, kept anyway as the next conv's
// input), so it needs no workspace; it also writes the masked gradient to gresidual for the shortcut branch.

namespace {

/** y = (x - mean) * scale + shift [+ r], clamped at 0 when kRelu. */
template <bool kRelu>
inline void bn_apply(float* ys, const float* xs, const float* rs, float m, float scale, float shift, int64_t len) {
  if (rs) {
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
      const float v = (xs[i] - m) * scale + shift + rs[i];
      ys[i] = kRelu ? (v > 0.f ? v : 0.f) : v;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
      const float v = (xs[i] - m) * scale + shift;
      ys[i] = kRelu ? (v > 0.f ? v : 0.f) : v;
    }
  }
}

/** y = (x - m) * scale + shift, per channel: subtracting first keeps precision when invstd is large. */
struct BnApplyCoeffs {
  float m, scale, shift;
};

/**
 * The per-channel terms of batch norm's forward from the channel's mean and centred sum of squares over its M values
 * (in double): writes mean[c] and invstd[c] = 1 / sqrt(var + eps) and returns the apply's coefficients.
 */
inline BnApplyCoeffs bn_forward_coeffs(int64_t c, double mu, double sq, int64_t M, double eps, const float* gamma,
                                       const float* beta, float* mean, float* invstd) {
  const double is = 1.0 / std::sqrt((M ? sq / double(M) : 0.0) + eps);
  mean[c] = float(mu);
  invstd[c] = float(is);
  return {float(mu), float((gamma ? gamma[c] : 1.0) * is), beta ? beta[c] : 0.f};
}

/**
 * Batch norm over [N, C] (HW = 1: a BatchNorm1d after a Linear, as in SimSiam's and MoCo v3's heads). The per-channel
 * loops of batchnorm_forward_t would read a column with a stride of C floats (15 ms for [256, 2048]); here each task
 * takes kChunk channels and walks the rows, so the inner loops run along contiguous channels and vectorise. Each
 * channel still sums its rows in order, in double, so the results are those of the per-channel loop bit for bit.
 */
constexpr int64_t kChunk = 64;

/**
 * ys[j] = (xs[j] - m[j]) * scale[j] + shift[j] [+ rs[j]], clamped at 0 when kRelu: len channels side by side. T is
 * the storage of xs, rs and ys: float, or bf16 bits (uint16_t; computed in float, rounded once on the store).
 */
template <bool kRelu, class T>
inline void bn_apply_lanes(T* ys, const T* xs, const T* rs, const float* m, const float* scale, const float* shift,
                           int64_t len) {
  if (rs) {
#pragma omp simd
    for (int64_t j = 0; j < len; j++) {
      const float v = (load(xs, j) - m[j]) * scale[j] + shift[j] + load(rs, j);
      store(ys, j, kRelu ? (v > 0.f ? v : 0.f) : v);
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < len; j++) {
      const float v = (load(xs, j) - m[j]) * scale[j] + shift[j];
      store(ys, j, kRelu ? (v > 0.f ? v : 0.f) : v);
    }
  }
}

template <bool kRelu>
void batchnorm_rows_forward_t(float* out, float* mean, float* invstd, const float* x, const float* r,
                              const float* gamma, const float* beta, int64_t N, int64_t C, double eps) {
  parallel_range((C + kChunk - 1) / kChunk, N * C, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
      const int64_t c0 = k * kChunk, L = std::min(kChunk, C - c0);
      double sum[kChunk] = {}, sq[kChunk] = {}, mu[kChunk];
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + n * C + c0;
#pragma omp simd
        for (int64_t j = 0; j < L; j++) sum[j] += xs[j];
      }
      for (int64_t j = 0; j < L; j++) mu[j] = N ? sum[j] / double(N) : 0.0;
      for (int64_t n = 0; n < N; n++) {
        const float* xs = x + n * C + c0;
#pragma omp simd
        for (int64_t j = 0; j < L; j++) sq[j] += (xs[j] - mu[j]) * (xs[j] - mu[j]);
      }
      float m[kChunk], scale[kChunk], shift[kChunk];
      for (int64_t j = 0; j < L; j++) {
        const BnApplyCoeffs t = bn_forward_coeffs(c0 + j, mu[j], sq[j], N, eps, gamma, beta, mean, invstd);
        m[j] = t.m, scale[j] = t.scale, shift[j] = t.shift;
      }
      for (int64_t n = 0; n < N; n++) {
        const int64_t o = n * C + c0;
        bn_apply_lanes<kRelu>(out + o, x + o, r ? r + o : nullptr, m, scale, shift, L);
      }
    }
  });
}

template <bool kRelu>
void batchnorm_forward_t(float* out, float* mean, float* invstd, const float* x, const float* r, const float* gamma,
                         const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  if (C == 0) return;
  if (HW == 1) return batchnorm_rows_forward_t<kRelu>(out, mean, invstd, x, r, gamma, beta, N, C, eps);
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
      const auto [m, scale, shift] = bn_forward_coeffs(c, mu, sq, M, eps, gamma, beta, mean, invstd);
      for (int64_t n = 0; n < N; n++) {
        const int64_t o = (n * C + c) * HW;
        bn_apply<kRelu>(out + o, x + o, r ? r + o : nullptr, m, scale, shift, HW);
      }
    }
  });
}

/**
 * gy, or gy masked by y > 0 (kRelu). A bit mask, not a select: GCC will not if-convert the select inside the double
 * reductions (it measured 10x slower), and gy * (y > 0) would turn an infinite gy at y <= 0 into NaN instead of 0.
 */
template <bool kRelu, class T>
inline float relu_grad(float gy, const T* y, int64_t i) {
  if constexpr (kRelu) {
    uint32_t bits;
    std::memcpy(&bits, &gy, sizeof bits);
    bits &= 0u - uint32_t(load(y, i) > 0.f);
    std::memcpy(&gy, &bits, sizeof bits);
  }
  return gy;
}

/** gx = a * (g - b - (x - mean) * k): batch norm's input gradient, per channel. */
struct BnGradCoeffs {
  float a, b, k;
};

/**
 * The per-channel terms of batch norm's backward from the channel's sums over its M values, sum(g) and
 * sum(g * (x - mean)): writes ggamma[c] = sum(g * xhat) and gbeta[c] = sum(g) where given, and returns gx's
 * coefficients, gx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = (x - mean) * invstd.
 */
inline BnGradCoeffs bn_grad_coeffs(int64_t c, double sumGy, double sumGyXc, const float* invstd, const float* gamma,
                                   int64_t M, float* ggamma, float* gbeta) {
  const double is = invstd[c], sumGyXhat = sumGyXc * is;
  if (ggamma) ggamma[c] = float(sumGyXhat);
  if (gbeta) gbeta[c] = float(sumGy);
  if (M == 0) return {0.f, 0.f, 0.f};
  return {float((gamma ? gamma[c] : 1.0) * is), float(sumGy / double(M)), float(sumGyXhat / double(M) * is)};
}

/**
 * gx = a * (g - b - (x - mean) * k) for len channels side by side starting at element o, each with its own
 * coefficients (bn_grad_coeffs), g = gy masked by y > 0 (kRelu).
 */
template <bool kRelu, class T>
inline void bn_grad_apply_lanes(float* gx, const float* gy, const T* y, const T* x, const float* mu, const float* a,
                                const float* b, const float* k, int64_t o, int64_t len) {
#pragma omp simd
  for (int64_t j = 0; j < len; j++)
    gx[o + j] = a[j] * (relu_grad<kRelu>(gy[o + j], y, o + j) - b[j] - (load(x, o + j) - mu[j]) * k[j]);
}

/** Adds sum(g) and sum(g * (x - mu)) over len values, g = relu_grad(gy); writes g to gr when kGr. */
template <bool kRelu, bool kGr>
inline void bn_grad_sums(double& sumG, double& sumGXc, float* gr, const float* gy, const float* y, const float* x,
                         float mu, int64_t len) {
  double s0 = 0, s1 = 0;
#pragma omp simd reduction(+ : s0, s1)
  for (int64_t i = 0; i < len; i++) {
    const float g = relu_grad<kRelu>(gy[i], y, i);
    if constexpr (kGr) gr[i] = g;
    s0 += g;
    s1 += double(g) * (x[i] - mu);
  }
  sumG += s0;
  sumGXc += s1;
}

/** The backward of batchnorm_rows_forward_t: [N, C], kChunk contiguous channels per task, rows in order. */
template <bool kRelu>
void batchnorm_rows_backward_t(float* gx, float* gr, float* ggamma, float* gbeta, const float* gy, const float* y,
                               const float* x, const float* mean, const float* invstd, const float* gamma, int64_t N,
                               int64_t C) {
  parallel_range((C + kChunk - 1) / kChunk, N * C, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
      const int64_t c0 = k * kChunk, L = std::min(kChunk, C - c0);
      float mu[kChunk];
      double sumGy[kChunk] = {}, sumGyXc[kChunk] = {};
      for (int64_t j = 0; j < L; j++) mu[j] = mean[c0 + j];
      for (int64_t n = 0; n < N; n++) {
        const int64_t o = n * C + c0;
#pragma omp simd
        for (int64_t j = 0; j < L; j++) {
          const float g = relu_grad<kRelu>(gy[o + j], y, o + j);
          if (gr) gr[o + j] = g;
          sumGy[j] += g;
          sumGyXc[j] += double(g) * (x[o + j] - mu[j]);
        }
      }
      float a[kChunk], b[kChunk], kk[kChunk];
      for (int64_t j = 0; j < L; j++) {
        const BnGradCoeffs t = bn_grad_coeffs(c0 + j, sumGy[j], sumGyXc[j], invstd, gamma, N, ggamma, gbeta);
        a[j] = t.a, b[j] = t.b, kk[j] = t.k;
      }
      for (int64_t n = 0; n < N; n++) bn_grad_apply_lanes<kRelu>(gx, gy, y, x, mu, a, b, kk, n * C + c0, L);
    }
  });
}

template <bool kRelu>
void batchnorm_backward_t(float* gx, float* gr, float* ggamma, float* gbeta, const float* gy, const float* y,
                          const float* x, const float* mean, const float* invstd, const float* gamma, int64_t N,
                          int64_t C, int64_t HW) {
  if (C == 0) return;
  if (HW == 1) return batchnorm_rows_backward_t<kRelu>(gx, gr, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C);
  const int64_t M = N * HW;
  parallel_range(C, N * C * HW, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const float mu = mean[c];
      // with g = gy masked by y > 0 (kRelu): sumGy = sum(g), sumGyXc = sum(g * (x - mean))
      double sumGy = 0, sumGyXc = 0;
      for (int64_t n = 0; n < N; n++) {
        const int64_t o = (n * C + c) * HW;
        if (gr)
          bn_grad_sums<kRelu, true>(sumGy, sumGyXc, gr + o, gy + o, kRelu ? y + o : nullptr, x + o, mu, HW);
        else
          bn_grad_sums<kRelu, false>(sumGy, sumGyXc, nullptr, gy + o, kRelu ? y + o : nullptr, x + o, mu, HW);
      }
      const auto [a, b, k] = bn_grad_coeffs(c, sumGy, sumGyXc, invstd, gamma, M, ggamma, gbeta);
      if (M == 0) continue;
      for (int64_t n = 0; n < N; n++) {
        const int64_t o = (n * C + c) * HW;
        const float *xs = x + o, *gs = gy + o, *ys = kRelu ? y + o : nullptr;
        float* out = gx + o;
#pragma omp simd
        for (int64_t i = 0; i < HW; i++) out[i] = a * (relu_grad<kRelu>(gs[i], ys, i) - b - (xs[i] - mu) * k);
      }
    }
  });
}

}  // namespace

void batchnorm_forward(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                       const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  batchnorm_forward_t<false>(out, mean, invstd, x, nullptr, gamma, beta, N, C, HW, eps);
}
void batchnorm_relu_forward(float* out, float* mean, float* invstd, const float* x, const float* residual,
                            const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  batchnorm_forward_t<true>(out, mean, invstd, x, residual, gamma, beta, N, C, HW, eps);
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
  batchnorm_backward_t<false>(gx, nullptr, ggamma, gbeta, gy, nullptr, x, mean, invstd, gamma, N, C, HW);
}
void batchnorm_relu_backward(float* gx, float* gresidual, float* ggamma, float* gbeta, const float* gy, const float* y,
                             const float* x, const float* mean, const float* invstd, const float* gamma, int64_t N,
                             int64_t C, int64_t HW) {
  batchnorm_backward_t<true>(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW);
}

// ---- batch norm on nChw{L}c (L = 16 or 8, the block oneDNN's conv picked): x [N, C/L, HW, L]; one L-channel block
// at a time, its lanes side by side. Templated on L so the lane loops keep a constant trip count to vectorise. ----

namespace {
/** Element (n, block cb, position i, lane 0) of an nChw{L}c buffer. */
template <int64_t kLanes>
inline int64_t blk(int64_t n, int64_t cb, int64_t i, int64_t CB, int64_t HW) { return ((n * CB + cb) * HW + i) * kLanes; }

/**
 * How many shares of the batch each channel block's sums are split into: one block per task left a single thread
 * working where a network is narrow (16 channels are one nChw16c block) and idle threads on many-core machines. At
 * least 16 (block, share) tasks where the batch allows; a function of the shape alone, so the sums (added share by
 * share, in order) come out the same on any number of threads.
 */
inline int64_t batch_shares(int64_t blocks, int64_t N) {
  return blocks >= 16 ? 1 : std::max<int64_t>(1, std::min<int64_t>(N, (16 + blocks - 1) / blocks));
}

/** part[(cb * S + s) * kLanes + j] summed over s in order, for every channel cb * kLanes + j. */
template <int64_t kLanes>
void add_shares(double* out, const std::vector<double>& part, int64_t CB, int64_t S) {
  for (int64_t cb = 0; cb < CB; cb++)
    for (int64_t j = 0; j < kLanes; j++) {
      double v = 0;
      for (int64_t s = 0; s < S; s++) v += part[size_t((cb * S + s) * kLanes + j)];
      out[cb * kLanes + j] = v;
    }
}

/**
 * The forward's shares: batch_shares, raised until one share of a channel block (its images' HW x L floats) is at
 * most kShareBytes, so a task's second statistics pass reads what its first left in the core's L2 cache, not memory.
 * A function of the shape alone (never of the machine), like batch_shares.
 */
constexpr int64_t kShareBytes = 256 << 10;
inline int64_t stat_shares(int64_t blocks, int64_t N, int64_t bytesPerImage) {
  const int64_t bySize = (N * bytesPerImage + kShareBytes - 1) / kShareBytes;
  return std::max(batch_shares(blocks, N), std::min(N, bySize));
}

// T: the storage of x, r and out (float, or bf16 bits in uint16_t); everything else is float.
template <int64_t kLanes, bool kRelu, class T>
void batchnorm_forward_blocked_t(T* out, float* mean, float* invstd, const T* x, const T* r, const float* gamma,
                                 const float* beta, int64_t N, int64_t C, int64_t HW, double eps) {
  if (C == 0) return;
  const int64_t CB = C / kLanes, M = N * HW, work = N * C * HW;
  // shares sized as for f32 storage whatever T is, so bf16 data sums in the order its f32 twin would
  const int64_t S = stat_shares(CB, N, HW * kLanes * int64_t(sizeof(float)));
  // per (channel block, share of the batch), in one task: the share's mean, then its centred sum of squares (two
  // passes over data still in cache, in double); the shares are then merged in order (Chan, Golub and LeVeque)
  std::vector<double> pmean(CB * S * kLanes), pm2(CB * S * kLanes), mu(C), sq(C);
  parallel_range(CB * S, work, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t cb = t / S, s = t % S, n0 = N * s / S, n1 = N * (s + 1) / S, cnt = (n1 - n0) * HW;
      double acc[kLanes] = {}, m[kLanes], q[kLanes] = {};
      for (int64_t n = n0; n < n1; n++) {
        const T* xs = x + blk<kLanes>(n, cb, 0, CB, HW);
        for (int64_t i = 0; i < HW * kLanes; i += kLanes) {
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) acc[j] += load(xs, i + j);
        }
      }
      for (int64_t j = 0; j < kLanes; j++) m[j] = cnt ? acc[j] / double(cnt) : 0.0;
      for (int64_t n = n0; n < n1; n++) {
        const T* xs = x + blk<kLanes>(n, cb, 0, CB, HW);
        for (int64_t i = 0; i < HW * kLanes; i += kLanes) {
#pragma omp simd
          for (int64_t j = 0; j < kLanes; j++) q[j] += (load(xs, i + j) - m[j]) * (load(xs, i + j) - m[j]);
        }
      }
      for (int64_t j = 0; j < kLanes; j++) {
        pmean[t * kLanes + j] = m[j];
        pm2[t * kLanes + j] = q[j];
      }
    }
  });
  const auto count = [&](int64_t s) { return double((N * (s + 1) / S - N * s / S) * HW); };  // values in share s
  for (int64_t cb = 0; cb < CB; cb++)
    for (int64_t j = 0; j < kLanes; j++) {
      const double* pm = pmean.data() + cb * S * kLanes + j;  // share s at pm[s * kLanes]
      const double* p2 = pm2.data() + cb * S * kLanes + j;
      double total = 0;
      for (int64_t s = 0; s < S; s++) total += count(s) * pm[s * kLanes];
      const double mc = M ? total / double(M) : 0.0;
      double m2 = 0;
      for (int64_t s = 0; s < S; s++) m2 += p2[s * kLanes] + count(s) * (pm[s * kLanes] - mc) * (pm[s * kLanes] - mc);
      mu[cb * kLanes + j] = mc;
      sq[cb * kLanes + j] = m2;
    }
  std::vector<float> m(C), scale(C), shift(C);
  for (int64_t c = 0; c < C; c++) {
    const BnApplyCoeffs t = bn_forward_coeffs(c, mu[c], sq[c], M, eps, gamma, beta, mean, invstd);
    m[c] = t.m, scale[c] = t.scale, shift[c] = t.shift;
  }
  // y = (x - mean) * scale + shift [+ r], per (image, channel block)
  parallel_range(N * CB, work, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t c0 = (p % CB) * kLanes;
      const float *mm = m.data() + c0, *sc = scale.data() + c0, *sh = shift.data() + c0;
      for (int64_t i = 0; i < HW; i++) {
        const int64_t o = (p * HW + i) * kLanes;
        bn_apply_lanes<kRelu>(out + o, x + o, r ? r + o : nullptr, mm, sc, sh, kLanes);
      }
    }
  });
}

template <int64_t kLanes, class T>
void batchnorm_inference_blocked_t(T* out, const T* x, const float* mean, const float* variance,
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
        for (int64_t j = 0; j < kLanes; j++) store(out, o + j, (load(x, o + j) - m[j]) * sc[j] + sh[j]);
      }
    }
  });
}

/** bn_grad_sums over the HW positions of one image's L-channel block starting at element o, per lane. */
template <int64_t kLanes, bool kRelu, bool kGr, class T>
inline void bn_grad_sums_blocked(double* sumG, double* sumGXc, float* gr, const float* gy, const T* y, const T* x,
                                 const float* mu, int64_t o, int64_t HW) {
  for (int64_t i = 0; i < HW; i++, o += kLanes) {
#pragma omp simd
    for (int64_t j = 0; j < kLanes; j++) {
      const float g = relu_grad<kRelu>(gy[o + j], y, o + j);
      if constexpr (kGr) gr[o + j] = g;
      sumG[j] += g;
      sumGXc[j] += double(g) * (load(x, o + j) - mu[j]);
    }
  }
}

// T: the storage of y and x (float, or bf16 bits); the gradients are float.
template <int64_t kLanes, bool kRelu, class T>
void batchnorm_backward_blocked_t(float* gx, float* gr, float* ggamma, float* gbeta, const float* gy, const T* y,
                                  const T* x, const float* mean, const float* invstd, const float* gamma, int64_t N,
                                  int64_t C, int64_t HW) {
  if (C == 0) return;
  const int64_t CB = C / kLanes, M = N * HW, S = batch_shares(CB, N), work = N * C * HW;
  // per (channel block, share of the batch): sum(g) and sum(g * (x - mean)), g = gy masked by y > 0 (kRelu); the
  // masked g also goes to gr
  std::vector<double> part0(CB * S * kLanes), part1(CB * S * kLanes), sumGy(C), sumGyXc(C);
  parallel_range(CB * S, work, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t cb = t / S, s = t % S;
      float mu[kLanes];
      for (int64_t j = 0; j < kLanes; j++) mu[j] = mean[cb * kLanes + j];
      double s0[kLanes] = {}, s1[kLanes] = {};
      for (int64_t n = N * s / S; n < N * (s + 1) / S; n++) {
        if (gr)
          bn_grad_sums_blocked<kLanes, kRelu, true>(s0, s1, gr, gy, y, x, mu, blk<kLanes>(n, cb, 0, CB, HW), HW);
        else
          bn_grad_sums_blocked<kLanes, kRelu, false>(s0, s1, gr, gy, y, x, mu, blk<kLanes>(n, cb, 0, CB, HW), HW);
      }
      for (int64_t j = 0; j < kLanes; j++) {
        part0[t * kLanes + j] = s0[j];
        part1[t * kLanes + j] = s1[j];
      }
    }
  });
  add_shares<kLanes>(sumGy.data(), part0, CB, S);
  add_shares<kLanes>(sumGyXc.data(), part1, CB, S);
  // gx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), per (image, channel block)
  std::vector<float> a(C), b(C), k(C);
  for (int64_t c = 0; c < C; c++) {
    const BnGradCoeffs t = bn_grad_coeffs(c, sumGy[c], sumGyXc[c], invstd, gamma, M, ggamma, gbeta);
    a[c] = t.a, b[c] = t.b, k[c] = t.k;
  }
  parallel_range(N * CB, work, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t c0 = (p % CB) * kLanes;
      const float *aa = a.data() + c0, *bb = b.data() + c0, *kk = k.data() + c0, *mu = mean + c0;
      for (int64_t i = 0; i < HW; i++)
        bn_grad_apply_lanes<kRelu>(gx, gy, y, x, mu, aa, bb, kk, (p * HW + i) * kLanes, kLanes);
    }
  });
}

}  // namespace

// The exported entry points, for f32 storage and for bf16 storage (uint16_t bits) of the activations.
namespace {
template <class T>
void bn_forward_blocked(T* out, float* mean, float* invstd, const T* x, const T* r, const float* gamma,
                        const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block, bool relu) {
  if (block == 16)
    (relu ? batchnorm_forward_blocked_t<16, true, T> : batchnorm_forward_blocked_t<16, false, T>)(
        out, mean, invstd, x, r, gamma, beta, N, C, HW, eps);
  else
    (relu ? batchnorm_forward_blocked_t<8, true, T> : batchnorm_forward_blocked_t<8, false, T>)(
        out, mean, invstd, x, r, gamma, beta, N, C, HW, eps);
}
template <class T>
void bn_backward_blocked(float* gx, float* gr, float* ggamma, float* gbeta, const float* gy, const T* y, const T* x,
                         const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C, int64_t HW,
                         int64_t block, bool relu) {
  if (block == 16)
    (relu ? batchnorm_backward_blocked_t<16, true, T> : batchnorm_backward_blocked_t<16, false, T>)(
        gx, gr, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW);
  else
    (relu ? batchnorm_backward_blocked_t<8, true, T> : batchnorm_backward_blocked_t<8, false, T>)(
        gx, gr, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW);
}
}  // namespace

void batchnorm_forward_blocked(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                               const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block) {
  bn_forward_blocked<float>(out, mean, invstd, x, nullptr, gamma, beta, N, C, HW, eps, block, false);
}
void batchnorm_forward_blocked(uint16_t* out, float* mean, float* invstd, const uint16_t* x, const float* gamma,
                               const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block) {
  bn_forward_blocked<uint16_t>(out, mean, invstd, x, nullptr, gamma, beta, N, C, HW, eps, block, false);
}
void batchnorm_relu_forward_blocked(float* out, float* mean, float* invstd, const float* x, const float* residual,
                                    const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps,
                                    int64_t block) {
  bn_forward_blocked<float>(out, mean, invstd, x, residual, gamma, beta, N, C, HW, eps, block, true);
}
void batchnorm_relu_forward_blocked(uint16_t* out, float* mean, float* invstd, const uint16_t* x,
                                    const uint16_t* residual, const float* gamma, const float* beta, int64_t N,
                                    int64_t C, int64_t HW, double eps, int64_t block) {
  bn_forward_blocked<uint16_t>(out, mean, invstd, x, residual, gamma, beta, N, C, HW, eps, block, true);
}
void batchnorm_inference_blocked(float* out, const float* x, const float* mean, const float* variance,
                                 const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps,
                                 int64_t block) {
  (block == 16 ? batchnorm_inference_blocked_t<16, float> : batchnorm_inference_blocked_t<8, float>)(
      out, x, mean, variance, gamma, beta, N, C, HW, eps);
}
void batchnorm_inference_blocked(uint16_t* out, const uint16_t* x, const float* mean, const float* variance,
                                 const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps,
                                 int64_t block) {
  (block == 16 ? batchnorm_inference_blocked_t<16, uint16_t> : batchnorm_inference_blocked_t<8, uint16_t>)(
      out, x, mean, variance, gamma, beta, N, C, HW, eps);
}
void batchnorm_backward_blocked(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x,
                                const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C,
                                int64_t HW, int64_t block) {
  bn_backward_blocked<float>(gx, nullptr, ggamma, gbeta, gy, nullptr, x, mean, invstd, gamma, N, C, HW, block, false);
}
void batchnorm_backward_blocked(float* gx, float* ggamma, float* gbeta, const float* gy, const uint16_t* x,
                                const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C,
                                int64_t HW, int64_t block) {
  bn_backward_blocked<uint16_t>(gx, nullptr, ggamma, gbeta, gy, nullptr, x, mean, invstd, gamma, N, C, HW, block,
                                false);
}
void batchnorm_relu_backward_blocked(float* gx, float* gresidual, float* ggamma, float* gbeta, const float* gy,
                                     const float* y, const float* x, const float* mean, const float* invstd,
                                     const float* gamma, int64_t N, int64_t C, int64_t HW, int64_t block) {
  bn_backward_blocked<float>(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW, block, true);
}
void batchnorm_relu_backward_blocked(float* gx, float* gresidual, float* ggamma, float* gbeta, const float* gy,
                                     const uint16_t* y, const uint16_t* x, const float* mean, const float* invstd,
                                     const float* gamma, int64_t N, int64_t C, int64_t HW, int64_t block) {
  bn_backward_blocked<uint16_t>(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW, block, true);
}

void bf16_to_f32(float* out, const uint16_t* x, int64_t n) {
  parallel_range(n, n, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; i++) out[i] = from_bf16(x[i]);
  });
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
