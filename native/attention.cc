// Fused multi-head self-attention, forward and backward: softmax(q k^T * scale) v for every (batch, head) pair,
// read straight from the qkv projection's output and written straight into the heads-merged layout, so neither the
// [B, N, 3, H, hd] -> [3, B, H, N, hd] permute nor the [B, H, N, hd] -> [B, N, C] merge is ever materialised, and
// the scores of one (batch, head) pair stay in L1 from q k^T through softmax to the product with v.
// Each (batch, head) pair is one task on one thread; its five small products run through one register-blocked kernel
// (gemm_small) on zero-padded local copies, with no horizontal sums.
//
// Legend: B batch, N tokens, H heads, hd head dim, C = H * hd;
//   qkv [B, N, 3, H, hd]  the qkv Linear's output as is (q, k, v of head h at row offsets h*hd, C + h*hd, 2C + h*hd)
//   out [B, N, H, hd]     = [B, N, C], heads merged (the input of the proj Linear)
//   probs [B, H, N, N]    softmax(q k^T * scale), saved for the backward
//   gqkv, gout            gradients of qkv and out, same layouts

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels.h"

namespace selfsup {

namespace {

// 16 floats in GCC/Clang vector extensions: one zmm with AVX-512, two ymm with AVX2, four xmm elsewhere; the
// compiler picks the instructions for the ISA it targets, so nothing here assumes one.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
constexpr int64_t V = 16;
constexpr int64_t R = 8;  // rows per register block: R accumulators of V floats

inline int64_t round_up(int64_t n) { return (n + V - 1) / V * V; }

/**
 * c[M, NP] (row stride ldc) = sum_k A(r, k) b[k, 0:NP], with A(r, k) = a[r * ars + k * acs] (so A may be read
 * transposed) and b rows of NP floats (stride ldb), NP a multiple of V: R rows x V columns of accumulators in registers.
 */
void gemm_small(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb,
                int64_t M, int64_t NP, int64_t K) {
  int64_t r = 0;
  for (; r + R <= M; r += R) {
    for (int64_t j = 0; j < NP; j += V) {
      v16 acc[R] = {};
      for (int64_t k = 0; k < K; k++) {
        const v16 bk = *reinterpret_cast<const v16u*>(b + k * ldb + j);
        const float* ak = a + r * ars + k * acs;
        for (int64_t rr = 0; rr < R; rr++) acc[rr] += ak[rr * ars] * bk;
      }
      for (int64_t rr = 0; rr < R; rr++) *reinterpret_cast<v16u*>(c + (r + rr) * ldc + j) = acc[rr];
    }
  }
  for (; r < M; r++) {
    for (int64_t j = 0; j < NP; j += V) {
      v16 acc = {};
      for (int64_t k = 0; k < K; k++) acc += a[r * ars + k * acs] * *reinterpret_cast<const v16u*>(b + k * ldb + j);
      *reinterpret_cast<v16u*>(c + r * ldc + j) = acc;
    }
  }
}

/** dst [rows, ld] = src rows (stride `stride`, `cols` each) with columns cols..ld zeroed. */
inline void copy_padded(float* dst, int64_t ld, const float* src, int64_t rows, int64_t cols, int64_t stride) {
  for (int64_t i = 0; i < rows; i++) {
    std::memcpy(dst + i * ld, src + i * stride, size_t(cols) * sizeof(float));
    std::fill(dst + i * ld + cols, dst + (i + 1) * ld, 0.f);
  }
}

/** dst [cols, ld] = the transpose of src rows (stride `stride`, `cols` each), columns rows..ld zeroed. */
inline void transpose_padded(float* dst, int64_t ld, const float* src, int64_t rows, int64_t cols, int64_t stride) {
  for (int64_t d = 0; d < cols; d++) std::fill(dst + d * ld + rows, dst + (d + 1) * ld, 0.f);
  for (int64_t j = 0; j < rows; j++)
    for (int64_t d = 0; d < cols; d++) dst[d * ld + j] = src[j * stride + d];
}

/** dst rows (stride `stride`, `cols` each) = src [rows, ld]. */
inline void copy_out(float* dst, int64_t stride, const float* src, int64_t ld, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i++) std::memcpy(dst + i * stride, src + i * ld, size_t(cols) * sizeof(float));
}

/** Per-thread scratch, grown on demand and kept. */
struct Scratch {
  std::vector<float> buf;
  float* get(int64_t n) {
    if (int64_t(buf.size()) < n) buf.resize(size_t(n));
    return buf.data();
  }
};

}  // namespace

void attention_forward(float* out, float* probs, const float* qkv, int64_t B, int64_t N, int64_t H, int64_t hd,
                       double scale) {
  if (B * N * H * hd == 0) return;
  const int64_t C = H * hd, stride = 3 * C, NP = round_up(N), hdP = round_up(hd);
  const bool direct = hd == hdP;
  const float sc = float(scale);
  parallel_range(B * H, 2 * B * H * N * N * hd, [&](int64_t t0, int64_t t1) {
    thread_local Scratch scratch;
    float* kt = scratch.get(hd * NP + N * hdP + N * NP + N * hdP);  // [hd, NP] k transposed
    float* vp = kt + hd * NP;                                       // [N, hdP] v
    float* sbuf = vp + N * hdP;                                     // [N, NP] scores
    float* obuf = sbuf + N * NP;                                    // [N, hdP] out
    for (int64_t bh = t0; bh < t1; bh++) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * N * stride + h * hd;  // row i at q + i * stride
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* p = probs + bh * N * N;  // [N, N]
      transpose_padded(kt, NP, k, N, hd, stride);
      // with hd a multiple of V the rows of v and out are read and written in place; otherwise through padded copies
      if (!direct) copy_padded(vp, hdP, v, N, hd, stride);
      gemm_small(sbuf, NP, q, stride, 1, kt, NP, N, NP, hd);  // q k^T
      for (int64_t i = 0; i < N; i++) {
        const float* si = sbuf + i * NP;
        float* pi = p + i * N;
        float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < N; j++) mx = std::max(mx, si[j] * sc);
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < N; j++) {
          const float e = fast_exp(si[j] * sc - mx);
          pi[j] = e;
          sum += e;
        }
        const float inv = 1.f / sum;
#pragma omp simd
        for (int64_t j = 0; j < N; j++) pi[j] *= inv;
      }
      float* o = out + b * N * C + h * hd;  // row i at o + i * C
      if (direct) {
        gemm_small(o, C, p, N, 1, v, stride, N, hd, N);  // probs v
      } else {
        gemm_small(obuf, hdP, p, N, 1, vp, hdP, N, hdP, N);
        copy_out(o, C, obuf, hdP, N, hd);
      }
    }
  });
}

void attention_backward(float* gqkv, const float* gout, const float* qkv, const float* probs, int64_t B, int64_t N,
                        int64_t H, int64_t hd, double scale) {
  if (B * N * H * hd == 0) return;
  const int64_t C = H * hd, stride = 3 * C, NP = round_up(N), hdP = round_up(hd);
  const bool direct = hd == hdP;
  const float sc = float(scale);
  parallel_range(B * H, 4 * B * H * N * N * hd, [&](int64_t t0, int64_t t1) {
    thread_local Scratch scratch;
    float* vt = scratch.get(hd * NP + 3 * N * hdP + N * NP + N * N + N * hdP);  // [hd, NP] v transposed
    float* gop = vt + hd * NP;   // [N, hdP] gout of this head
    float* kp = gop + N * hdP;   // [N, hdP] k
    float* qp = kp + N * hdP;    // [N, hdP] q
    float* dp = qp + N * hdP;    // [N, NP] d loss / d probs
    float* ds = dp + N * NP;     // [N, N] d loss / d scores (scale included)
    float* obuf = ds + N * N;    // [N, hdP] one gradient block
    for (int64_t bh = t0; bh < t1; bh++) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * N * stride + h * hd;
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* gq = gqkv + b * N * stride + h * hd;
      const float* p = probs + bh * N * N;
      const float* go = gout + b * N * C + h * hd;
      transpose_padded(vt, NP, v, N, hd, stride);
      // with hd a multiple of V the rows of gout, k, q and gqkv are read and written in place
      if (!direct) {
        copy_padded(gop, hdP, go, N, hd, C);
        copy_padded(kp, hdP, k, N, hd, stride);
        copy_padded(qp, hdP, q, N, hd, stride);
      }
      gemm_small(dp, NP, go, C, 1, vt, NP, N, NP, hd);  // gout v^T
      // through the softmax: ds_ij = p_ij (dp_ij - sum_l p_il dp_il), times the scale of the scores
      for (int64_t i = 0; i < N; i++) {
        const float* pi = p + i * N;
        const float* dpi = dp + i * NP;
        float* dsi = ds + i * N;
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < N; j++) dot += pi[j] * dpi[j];
#pragma omp simd
        for (int64_t j = 0; j < N; j++) dsi[j] = pi[j] * (dpi[j] - dot) * sc;
      }
      if (direct) {
        gemm_small(gq + 2 * C, stride, p, 1, N, go, C, N, hd, N);  // gv = probs^T gout
        gemm_small(gq, stride, ds, N, 1, k, stride, N, hd, N);     // gq = ds k
        gemm_small(gq + C, stride, ds, 1, N, q, stride, N, hd, N); // gk = ds^T q
      } else {
        gemm_small(obuf, hdP, p, 1, N, gop, hdP, N, hdP, N);
        copy_out(gq + 2 * C, stride, obuf, hdP, N, hd);
        gemm_small(obuf, hdP, ds, N, 1, kp, hdP, N, hdP, N);
        copy_out(gq, stride, obuf, hdP, N, hd);
        gemm_small(obuf, hdP, ds, 1, N, qp, hdP, N, hdP, N);
        copy_out(gq + C, stride, obuf, hdP, N, hd);
      }
    }
  });
}

}  // namespace selfsup
