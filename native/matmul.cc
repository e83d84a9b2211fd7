// Batched matmul over the oneDNN matmul primitive: transposes and batch broadcasts are expressed as strides,
// so no operand is ever copied; the bias is fused. A Linear's backward (gx, gw, gb from one call) shares gy between
// its two products.
// In bf16 precision (autocast-style, on CPUs with native bf16 only: see precision.cc) a and b are reordered into bf16
// scratch copies and the primitive multiplies in bf16 with an f32 accumulator and f32 output.
//
// Legend: batch, M rows of out, N columns of out, K contraction;
//   a [batch|1, M, K] (strides [aBatchStride, 1, M] when transA), b [batch|1, K, N] (strides [.., 1, K] when transB),
//   bias [N], out [batch, M, N] contiguous.

#include <chrono>
#include <cstring>

#include "kernels.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace selfsup {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

/**
 * The binary post-op a matmul entry fuses into its product, elementwise with an operand laid out like out
 * ([batch, M, N]): mul, out = (a b) * operand (a gradient scaled by an activation's derivative); add, out = (a b) +
 * operand (a residual). bf16: the operand is a bf16 buffer (bf16 precision only), else f32.
 */
struct PostOp {
  enum Kind { none, mul, add } kind = none;
  bool bf16 = false;
};

struct MatmulEntry {
  dnnl::matmul prim;
  memory a, b, bias, out;
  PostOp post;
  memory postSrc;  // the post-op's operand, when post.kind is not none
  // bf16 only: the f32 operands as given (a, b above are then their bf16 copies) and the reorders between them
  memory aUser, bUser;
  dnnl::reorder toA, toB;
  int64_t aElems = 0, bElems = 0;
};
PrimitiveCache<MatmulEntry> matmulCache;

/** outBf16: out is a bf16 buffer (bf16 precision only), else f32. */
MatmulEntry make_matmul(int64_t batchA, int64_t batchB, int64_t batch, int64_t M, int64_t N, int64_t K, bool transA,
                        bool transB, int64_t aBatchStride, int64_t bBatchStride, bool hasBias, bool bf16,
                        PostOp post = {}, bool outBf16 = false) {
  const memory::desc aMd({batchA, M, K}, dt::f32,
                         memory::dims{batchA > 1 ? aBatchStride : M * K, transA ? 1 : K, transA ? M : 1});
  const memory::desc bMd({batchB, K, N}, dt::f32,
                         memory::dims{batchB > 1 ? bBatchStride : K * N, transB ? 1 : N, transB ? K : 1});
  const memory::desc outMd({batch, M, N}, outBf16 ? dt::bf16 : dt::f32, tag::abc);
  const memory::desc biasMd = hasBias ? memory::desc({1, 1, N}, dt::f32, tag::abc) : memory::desc();
  MatmulEntry e;
  dnnl::primitive_attr attr;
  e.post = post;
  if (post.kind != PostOp::none) {
    const memory::desc postMd({batch, M, N}, post.bf16 ? dt::bf16 : dt::f32, tag::abc);
    dnnl::post_ops po;
    po.append_binary(post.kind == PostOp::add ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul, postMd);
    attr.set_post_ops(po);
    e.postSrc = memory(postMd, engine(), nullptr);
  }
  if (bf16) {
    // the copies keep the operands' transposition (a K-major copy of a K-major operand is a straight conversion)
    const memory::desc aLow({batchA, M, K}, dt::bf16, transA ? tag::acb : tag::abc);
    const memory::desc bLow({batchB, K, N}, dt::bf16, transB ? tag::acb : tag::abc);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aLow, bLow, biasMd, outMd), attr, engine());
    e.prim = dnnl::matmul(pd);
    e.aUser = memory(aMd, engine(), nullptr);
    e.bUser = memory(bMd, engine(), nullptr);
    e.a = memory(aLow, engine(), nullptr);
    e.b = memory(bLow, engine(), nullptr);
    e.toA = dnnl::reorder(e.aUser, e.a);
    e.toB = dnnl::reorder(e.bUser, e.b);
    e.aElems = batchA * M * K;
    e.bElems = batchB * K * N;
  } else {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aMd, bMd, biasMd, outMd), attr, engine());
    e.prim = dnnl::matmul(pd);
    e.a = memory(aMd, engine(), nullptr);
    e.b = memory(bMd, engine(), nullptr);
  }
  e.out = memory(outMd, engine(), nullptr);
  if (hasBias) e.bias = memory(biasMd, engine(), nullptr);
  return e;
}

}  // namespace

namespace {

MatmulEntry& matmul_entry(int64_t batch, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
                          int64_t aBatchStride, int64_t bBatchStride, bool hasBias, int64_t& runBatch,
                          PostOp post = {}, bool outBf16 = false) {
  const int64_t batchA = aBatchStride == 0 ? 1 : batch, batchB = bBatchStride == 0 ? 1 : batch;
  // oneDNN broadcasts a batch of 1 only against a batch > 1 on the other side; when both broadcast,
  // compute one matrix and copy it.
  runBatch = (batchA == 1 && batchB == 1) ? 1 : batch;
  const bool bf16 = compute_precision() == Precision::bf16;
  const int64_t rb = runBatch;
  return matmulCache.get(
      key("mm", batchA, batchB, rb, M, N, K, transA, transB, aBatchStride, bBatchStride, hasBias, bf16,
          int(post.kind), post.bf16, outBf16),
      [&] {
        return make_matmul(batchA, batchB, rb, M, N, K, transA, transB, aBatchStride, bBatchStride, hasBias, bf16,
                           post, outBf16);
      });
}

/**
 * Runs a cached matmul. In bf16, a and b are converted into scratch slots 0 and 1 first, except an operand whose
 * bf16 copy is given (aLow, bLow: in the entry's physical layout; see linear_backward and mlp_*_bf16). postSrc: the
 * operand of the entry's post-op (read only when it has one); out and postSrc are bf16 buffers where the entry was
 * made so (outBf16, PostOp::bf16).
 */
void run_matmul(MatmulEntry& e, void* out, const float* a, const float* b, const float* bias,
                const void* aLow = nullptr, const void* postSrc = nullptr, const void* bLow = nullptr) {
  if (e.aElems > 0) {  // bf16
    if (aLow == nullptr) {
      e.aUser.set_data_handle(const_cast<float*>(a));
      e.a.set_data_handle(low_scratch(0, e.aElems));
      e.toA.execute(stream(), e.aUser, e.a);
    } else {
      e.a.set_data_handle(const_cast<void*>(aLow));
    }
    if (bLow == nullptr) {
      e.bUser.set_data_handle(const_cast<float*>(b));
      e.b.set_data_handle(low_scratch(1, e.bElems));
      e.toB.execute(stream(), e.bUser, e.b);
    } else {
      e.b.set_data_handle(const_cast<void*>(bLow));
    }
  } else {
    e.a.set_data_handle(const_cast<float*>(a));
    e.b.set_data_handle(const_cast<float*>(b));
  }
  e.out.set_data_handle(out);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.b}, {DNNL_ARG_DST, e.out}};
  if (bias) {
    e.bias.set_data_handle(const_cast<float*>(bias));
    args.emplace(DNNL_ARG_BIAS, e.bias);
  }
  if (e.post.kind != PostOp::none) {
    e.postSrc.set_data_handle(const_cast<void*>(postSrc));
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, e.postSrc);
  }
  e.prim.execute(stream(), args);
  stream().wait();
}

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch, int64_t M,
                    int64_t N, int64_t K, bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  if (batch * M * N == 0) return;
  if (K == 0) {  // an empty contraction: out = bias (or 0)
    for (int64_t i = 0; i < batch * M; i++)
      for (int64_t j = 0; j < N; j++) out[i * N + j] = bias ? bias[j] : 0.f;
    return;
  }
  int64_t runBatch = 0;
  MatmulEntry& e = matmul_entry(batch, M, N, K, transA, transB, aBatchStride, bBatchStride, bias != nullptr, runBatch);
  run_matmul(e, out, a, b, bias);
  for (int64_t i = runBatch; i < batch; i++) std::memcpy(out + i * M * N, out, size_t(M * N) * sizeof(float));
}

namespace {

/** linear_backward and linear_backward_scaled: gx = (gy w) * gxScale when gxScale is given (a fused post-op). */
void linear_backward_impl(float* gx, float* gw, float* gb, const float* gxScale, const float* gy, const float* x,
                          const float* w, int64_t rows, int64_t I, int64_t O) {
  if (gb) reduce(ReduceOp::sum, Buf{gb, O, DType::f32}, Buf{const_cast<float*>(gy), rows * O, DType::f32}, 1, rows, O);
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  if (I * O == 0) return;
  if (rows == 0) {  // no rows: gw is an empty sum
    if (gw) std::fill(gw, gw + O * I, 0.f);
    return;
  }
  // gx [rows, I] = gy [rows, O] @ w [O, I]; gw [O, I] = gy^T @ x [rows, I]. In bf16 both read gy through one copy:
  // gy as a row-major [rows, O] and gy^T as a column-major [O, rows] are the same bytes.
  bool gyLow = false;
  int64_t runBatch = 0;
  if (gx) {
    run_matmul(matmul_entry(1, rows, I, O, false, false, 0, 0, false, runBatch,
                            gxScale ? PostOp{PostOp::mul} : PostOp{}),
               gx, gy, w, nullptr, nullptr, gxScale);
    gyLow = compute_precision() == Precision::bf16;
  }
  if (gw)
    run_matmul(matmul_entry(1, O, I, rows, true, false, 0, 0, false, runBatch), gw, gy, x, nullptr,
               gyLow ? low_scratch(0, rows * O) : nullptr);
}

constexpr float kSqrt1_2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f;

/** gelu(x) = x Phi(x) into out, gelu'(x) = Phi(x) + x phi(x) into deriv, for one x (the vector loop's tail). */
inline void gelu_and_derivative(float x, float& out, float& deriv) {
  const float t = 1.f / (1.f + 0.3275911f * std::fabs(x) * kSqrt1_2);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float g = fast_exp(-0.5f * x * x);  // exp(-z^2), z = |x| / sqrt(2)
  const float tail = 0.5f * poly * g;       // Phi(-|x|)
  const float phi = x < 0.f ? tail : 1.f - tail;
  out = x * phi;
  deriv = phi + x * kInvSqrt2Pi * g;
}

// 16 floats in GCC/Clang vector extensions (one zmm with AVX-512, two ymm with AVX2, four xmm elsewhere): the pass
// below is written once and the compiler lowers it for the ISA it targets.
typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

/** fast_exp (common.h) on 16 lanes; rounding to nearest by the 1.5 * 2^23 trick, exact for |x log2 e| < 2^22. */
inline vf16 exp16(vf16 x) {
  x = x < -87.33654f ? vf16{} - 87.33654f : x;
  x = x > 88.72283f ? vf16{} + 88.72283f : x;
  const vf16 n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const vf16 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  const vf16 p = exp_poly(r);
  return reinterpret_cast<vf16>(reinterpret_cast<vi16>(p) + (__builtin_convertvector(n, vi16) << 23));
}

/** gelu_and_derivative on 16 lanes: y = gelu(x), d = gelu'(x). */
inline void gelu16(vf16 x, vf16& y, vf16& d) {
  const vf16 ax = x < 0.f ? -x : x;
  const vf16 t = 1.f / (1.f + 0.3275911f * kSqrt1_2 * ax);
  const vf16 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const vf16 g = exp16(-0.5f * x * x);
  const vf16 tail = 0.5f * poly * g;
  const vf16 phi = x < 0.f ? tail : 1.f - tail;
  y = x * phi;
  d = phi + x * kInvSqrt2Pi * g;
}

/** Stores 16 floats at a 64-byte aligned p, bypassing the cache where the ISA can (the data is not read again soon). */
inline void stream16(float* p, vf16 v) {
#if defined(__AVX512F__)
  _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
#elif defined(__AVX__)
  _mm256_stream_ps(p, reinterpret_cast<const __m256*>(&v)[0]);
  _mm256_stream_ps(p + 8, reinterpret_cast<const __m256*>(&v)[1]);
#else
  std::memcpy(p, &v, sizeof v);
#endif
}

/**
 * In place over pre-activations v: out = gelu(v) = v Phi(v) and v <- gelu'(v) = Phi(v) + v phi(v), exact-erf GELU.
 * erf by Abramowitz-Stegun 7.1.26 (|error| <= 1.5e-7, the approximation oneDNN's gelu_erf uses); its exp(-z^2) is
 * phi's exp(-v^2/2), so one exp serves both. The tail term is computed directly, so Phi(v) for v << 0 keeps its
 * relative accuracy instead of cancelling in 1 - erf. Both outputs go around the cache (streaming stores): they are
 * as large as the pre-activation, the derivative is read only in the backward, and write-allocating them would read
 * them from memory first.
 */
void gelu_with_derivative(float* out, float* v, int64_t n) {
  parallel_range(n, n * 16, [&](int64_t b, int64_t e) {
    int64_t i = b;
    // scalar up to a 64-byte boundary of v; the vector loop needs out aligned the same way (it is, for tensors)
    while (i < e && (reinterpret_cast<uintptr_t>(v + i) & 63) != 0) { gelu_and_derivative(v[i], out[i], v[i]); i++; }
    if ((reinterpret_cast<uintptr_t>(out + i) & 63) == 0) {
      for (; i + kLanes <= e; i += kLanes) {
        vf16 y, d;
        gelu16(*reinterpret_cast<const vf16*>(v + i), y, d);
        stream16(out + i, y);
        stream16(v + i, d);
      }
#if defined(__AVX__)
      _mm_sfence();  // the streaming stores are visible to every thread before the pass returns
#endif
    }
    for (; i < e; i++) gelu_and_derivative(v[i], out[i], v[i]);
  });
}

// ---- bf16 storage (common.h has the scalar conversions): 16 values at a time ----
typedef uint32_t vu16 __attribute__((vector_size(64)));
typedef uint16_t vh16 __attribute__((vector_size(32)));

inline vh16 to_bf16(vf16 v) {
  const vu16 u = reinterpret_cast<vu16>(v);
  const vu16 r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const vu16 q = (u >> 16) | 0x40u;
  return __builtin_convertvector((u & 0x7fffffffu) > 0x7f800000u ? q : r, vh16);
}
using selfsup::to_bf16;  // the scalar one (common.h), hidden by the overload above

/** gelu_with_derivative writing bf16: out = gelu(v), deriv = gelu'(v), v [n] f32 pre-activations left as they are. */
void gelu_with_derivative_bf16(uint16_t* out, uint16_t* deriv, const float* v, int64_t n) {
  parallel_range(n, n * 16, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + kLanes <= e; i += kLanes) {
      vf16 x, y, d;
      std::memcpy(&x, v + i, sizeof x);
      gelu16(x, y, d);
      const vh16 yh = to_bf16(y), dh = to_bf16(d);
      std::memcpy(out + i, &yh, sizeof yh);
      std::memcpy(deriv + i, &dh, sizeof dh);
    }
    for (; i < e; i++) {
      float y, d;
      gelu_and_derivative(v[i], y, d);
      out[i] = to_bf16(y);
      deriv[i] = to_bf16(d);
    }
  });
}

}  // namespace

void linear_backward(float* gx, float* gw, float* gb, const float* gy, const float* x, const float* w, int64_t rows,
                     int64_t I, int64_t O) {
  linear_backward_impl(gx, gw, gb, nullptr, gy, x, w, rows, I, O);
}

void linear_backward_scaled(float* gx, float* gw, float* gb, const float* gxScale, const float* gy, const float* x,
                            const float* w, int64_t rows, int64_t I, int64_t O) {
  linear_backward_impl(gx, gw, gb, gxScale, gy, x, w, rows, I, O);
}

void linear_gelu_forward(float* out, float* deriv, const float* x, const float* w, const float* bias, int64_t rows,
                         int64_t I, int64_t O) {
  if (rows * O == 0) return;
  matmul_forward(deriv, x, w, bias, 1, rows, O, I, false, true, 0, 0);  // the pre-activation, bias fused
  gelu_with_derivative(out, deriv, rows * O);
}

void linear_add_forward(float* out, const float* x, const float* residual, const float* w, const float* bias,
                        int64_t rows, int64_t I, int64_t O) {
  if (rows * O == 0) return;
  if (I == 0) fail("linear_add_forward", "an empty contraction goes through the unfused ops");
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  int64_t runBatch = 0;
  run_matmul(matmul_entry(1, rows, O, I, false, true, 0, 0, bias != nullptr, runBatch, PostOp{PostOp::add}), out, x,
             w, bias, nullptr, residual);
}

void mlp_forward_bf16(float* out, uint16_t* hidden, uint16_t* deriv, const float* x, const float* residual,
                      const float* w1, const float* b1, const float* w2, const float* b2, int64_t rows, int64_t I,
                      int64_t Hd, int64_t O) {
  if (compute_precision() != Precision::bf16) fail("mlp_forward_bf16", "needs bf16 precision (setPrecision('bf16'))");
  if (rows * I * Hd * O == 0) fail("mlp_forward_bf16", "empty sizes go through the fp32 kernels");
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  int64_t runBatch = 0;
  // pre [rows, Hd] f32 = x w1^T + b1, in scratch: only gelu and gelu' of it are kept, both in bf16
  float* pre = static_cast<float*>(low_scratch(3, 2 * rows * Hd));
  run_matmul(matmul_entry(1, rows, Hd, I, false, true, 0, 0, b1 != nullptr, runBatch), pre, x, w1, b1);
  gelu_with_derivative_bf16(hidden, deriv, pre, rows * Hd);
  // out [rows, O] = hidden w2^T + b2 (+ residual, a post-op), hidden read as it is
  run_matmul(matmul_entry(1, rows, O, Hd, false, true, 0, 0, b2 != nullptr, runBatch,
                          residual ? PostOp{PostOp::add} : PostOp{}),
             out, nullptr, w2, b2, hidden, residual);
}

void mlp_backward_bf16(float* gx, float* gw1, float* gb1, float* gw2, float* gb2, const float* gy,
                       const uint16_t* hidden, const uint16_t* deriv, const float* x, const float* w1,
                       const float* w2, int64_t rows, int64_t I, int64_t Hd, int64_t O) {
  if (compute_precision() != Precision::bf16) fail("mlp_backward_bf16", "needs bf16 precision (setPrecision('bf16'))");
  if (rows * I * Hd * O == 0) fail("mlp_backward_bf16", "empty sizes go through the fp32 kernels");
  if (gb2) reduce(ReduceOp::sum, Buf{gb2, O, DType::f32}, Buf{const_cast<float*>(gy), rows * O, DType::f32}, 1, rows, O);
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  int64_t runBatch = 0;
  const bool needPre = gx || gw1 || gb1;
  // gpre [rows, Hd] bf16 (scratch slot 2) = (gy w2) * gelu'; gy's bf16 copy lands in slot 0 and serves gw2 too
  uint16_t* gpre = needPre ? static_cast<uint16_t*>(low_scratch(2, rows * Hd)) : nullptr;
  if (needPre)
    run_matmul(matmul_entry(1, rows, Hd, O, false, false, 0, 0, false, runBatch, PostOp{PostOp::mul, true},
                            /*outBf16=*/true),
               gpre, gy, w2, nullptr, nullptr, deriv);
  // gw2 [O, Hd] = gy^T hidden
  if (gw2)
    run_matmul(matmul_entry(1, O, Hd, rows, true, false, 0, 0, false, runBatch), gw2, gy, nullptr, nullptr,
               needPre ? low_scratch(0, rows * O) : nullptr, nullptr, hidden);
  if (!needPre) return;
  // gb1 [Hd] = column sums of gpre, accumulated in double, the rows split over the threads (one when few)
  if (gb1) {
    const int nt = rows * Hd >= kParallelThreshold ? omp_get_max_threads() : 1;
    split_column_sums<double>(gb1, gpre, rows, Hd, nt, [](uint16_t h) { return double(from_bf16(h)); });
  }
  // gx [rows, I] = gpre w1; gw1 [Hd, I] = gpre^T x
  if (gx) run_matmul(matmul_entry(1, rows, I, Hd, false, false, 0, 0, false, runBatch), gx, nullptr, w1, nullptr, gpre);
  if (gw1) run_matmul(matmul_entry(1, Hd, I, rows, true, false, 0, 0, false, runBatch), gw1, nullptr, x, nullptr, gpre);
}

double bench_matmul(int64_t M, int64_t N, int64_t K, int iters, bool bf16) {
  const dt in = bf16 ? dt::bf16 : dt::f32;
  const memory::desc aMd({M, K}, in, tag::ab), bMd({K, N}, in, tag::ab), outMd({M, N}, dt::f32, tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aMd, bMd, outMd), engine());
  dnnl::matmul prim(pd);
  memory a(aMd, engine()), b(bMd, engine()), out(outMd, engine());
  std::memset(a.get_data_handle(), 0, aMd.get_size());
  std::memset(b.get_data_handle(), 0, bMd.get_size());
  const std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, out}};
  prim.execute(stream(), args);
  stream().wait();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; i++) prim.execute(stream(), args);
  stream().wait();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
}

}  // namespace selfsup
