// Kernel entry points of the native backend, one block per layer family (see the matching .cc file).
// Signature order follows llm.c: outputs first, then saved state, then inputs and weights, then sizes; the order is
// written once in src/backend/kernels.ts and test/backend/signatures.test.ts checks these declarations against it.
// Backward kernels OVERWRITE their outputs (gx, gw, gb, ggamma, gbeta): callers allocate fresh gradients.
#pragma once

#include "common.h"

namespace selfsup {

// ---- elementwise.cc ----
enum class UnaryOp {
  neg, exp, log, sqrt, rsqrt, abs, sign, square, reciprocal, relu, gelu, sigmoid, tanh, erf,
  addScalar, mulScalar, powScalar, rsubScalar, rdivScalar, clamp, gtScalar
};
enum class UnaryGradOp { relu, gelu, sigmoid, tanh };
enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge };
enum class ReduceOp { sum, max, min };
inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

using Dims = std::vector<int64_t>;

void fill(const Buf& out, double value);
void cast(const Buf& out, const Buf& x);
void unary(UnaryOp op, const Buf& out, const Buf& x, double p0, double p1);
void unary_grad(UnaryGradOp op, const Buf& gx, const Buf& gy, const Buf& x, const Buf& y);
void binary(BinaryOp op, const Buf& out, const Buf& a, const Buf& b, const Dims& shape, const Dims& aStrides,
            const Dims& bStrides);
void where(const Buf& out, const Buf& cond, const Buf& a, const Buf& b, const Dims& shape, const Dims& condStrides,
           const Dims& aStrides, const Dims& bStrides);
void reduce(ReduceOp op, const Buf& out, const Buf& x, int64_t outer, int64_t r, int64_t inner);
void arg_reduce(bool isMax, const Buf& out, const Buf& x, int64_t outer, int64_t r, int64_t inner);
void strided(const Buf& out, int64_t outOffset, const Dims& outStrides, const Buf& x, int64_t xOffset,
             const Dims& xStrides, const Dims& shape, bool accumulate);
void gather(const Buf& out, const Buf& x, const int32_t* idx, int64_t outer, int64_t dim, int64_t inner,
            int64_t idxDim);
void scatter_add(const Buf& out, const int32_t* idx, const Buf& src, int64_t outer, int64_t dim, int64_t inner,
                 int64_t idxDim);
void index_select(const Buf& out, const Buf& x, const int32_t* idx, int64_t outer, int64_t dim, int64_t inner,
                  int64_t n);
void index_add(const Buf& out, const int32_t* idx, const Buf& src, int64_t outer, int64_t dim, int64_t inner,
               int64_t n);

// ---- precision.cc: autocast-style reduced precision for matmul (and, where wired, conv) ----
enum class Precision { f32, bf16 };
/** The precision conv and matmul multiply in; their inputs, outputs and accumulators stay f32. */
Precision compute_precision();
/** The precision set_compute_precision set, even while a ScopedPrecision runs one pass in another. */
Precision session_precision();
/** Sets it; bf16 fails with a message on CPUs without native bf16 (avx512_bf16 or AMX): emulated bf16 is slower. */
void set_compute_precision(Precision p);
/** oneDNN's effective ISA, spelled as ONEDNN_MAX_CPU_ISA takes it ("AVX512_CORE_AMX", "AVX2", ...). */
std::string cpu_isa_name();
/** Whether the CPU (as oneDNN may use it, ONEDNN_MAX_CPU_ISA included) computes bf16 natively. */
bool cpu_has_native_bf16();
/** Sets the precision for one kernel call's scope (a bf16 call running one pass in f32), restoring it after. */
struct ScopedPrecision {
  explicit ScopedPrecision(Precision p);
  ~ScopedPrecision();
  ScopedPrecision(const ScopedPrecision&) = delete;
  ScopedPrecision& operator=(const ScopedPrecision&) = delete;
  Precision old;
};
/** A reusable scratch buffer of at least `elems` bf16 values; slot picks one of a few independent buffers. */
void* low_scratch(int slot, int64_t elems);

// ---- matmul.cc ----
void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch, int64_t M,
                    int64_t N, int64_t K, bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride);

/**
 * A Linear's backward (y = x w^T + b, x [rows, I], w [O, I]): gx = gy w, gw = gy^T x, gb = sum of gy over rows; a
 * null output is skipped. In bf16 gy is converted once for both products.
 */
void linear_backward(float* gx, float* gw, float* gb, const float* gy, const float* x, const float* w, int64_t rows,
                     int64_t I, int64_t O);
/**
 * linear_backward with gx scaled elementwise: gx = (gy w) * gxScale [rows, I], the product fused into the matmul as
 * a post-op (a fused MLP's fc2 backward, gxScale = GELU's derivative saved by linear_gelu_forward).
 */
void linear_backward_scaled(float* gx, float* gw, float* gb, const float* gxScale, const float* gy, const float* x,
                            const float* w, int64_t rows, int64_t I, int64_t O);
/**
 * Linear + exact-erf GELU: out [rows, O] = gelu(x w^T + bias), deriv [rows, O] = gelu'(x w^T + bias) saved for the
 * backward (which then needs no erf and no pre-activation).
 */
void linear_gelu_forward(float* out, float* deriv, const float* x, const float* w, const float* bias, int64_t rows,
                         int64_t I, int64_t O);

/**
 * A Linear plus a residual (a transformer block's attention projection and skip connection): out [rows, O] = x w^T +
 * bias + residual, the sum a post-op of the matmul, so the projection's own output never exists apart from the sum.
 */
void linear_add_forward(float* out, const float* x, const float* residual, const float* w, const float* bias,
                        int64_t rows, int64_t I, int64_t O);
/**
 * The fused transformer MLP in bf16 precision (out = fc2(gelu(fc1(x))), like mlp's linearGelu + matmul): hidden =
 * gelu(x w1^T + b1) and deriv = gelu'(..) [rows, Hd] are kept in bf16 storage (uint16 bf16 bit patterns), as autocast
 * keeps the bf16 output of fc1, so they take half the memory and fc2 reads hidden without a conversion. residual
 * [rows, O] (nullable) is added to out inside fc2's matmul (a transformer block's skip connection), so the MLP's own
 * output never exists apart from the sum. Needs bf16 precision and non-empty sizes.
 */
void mlp_forward_bf16(float* out, uint16_t* hidden, uint16_t* deriv, const float* x, const float* residual,
                      const float* w1, const float* b1, const float* w2, const float* b2, int64_t rows, int64_t I,
                      int64_t Hd, int64_t O);
/**
 * Its backward: gpre = (gy w2) * deriv in bf16 (scratch), then gx = gpre w1, gw1 = gpre^T x, gb1 = sum of gpre,
 * gw2 = gy^T hidden, gb2 = sum of gy; a null output is skipped.
 */
void mlp_backward_bf16(float* gx, float* gw1, float* gb1, float* gw2, float* gb2, const float* gy,
                       const uint16_t* hidden, const uint16_t* deriv, const float* x, const float* w1,
                       const float* w2, int64_t rows, int64_t I, int64_t Hd, int64_t O);

// ---- conv.cc ----
struct ConvParams {
  int64_t N, C, H, W, O, KH, KW, OH, OW, strideH, strideW, padH, padW, dilationH, dilationW, groups;
};
/** The three passes of a conv: forward, backward-data (gx), backward-weights (gw, gb). */
enum class Pass { fwd, bwdData, bwdWeights };
// Activations may be NCHW or, flagged, in the activation block layout (activation_block(): nChw16c or nChw8c, channels
// a multiple of the block). The "may block" outputs are written blocked when the primitive itself works in that
// layout (no reorder); the return value says which was written.
// An activation may also be kept in bf16 storage (Act::bf16: bf16 bit patterns, 2 bytes a value), always blocked, as
// autocast keeps conv outputs in bf16: conv reads x and writes out that way, batch norm reads and writes it (norm.cc).
// A bf16-stored out is always written blocked (the return value is then true).
struct Act {
  void* data = nullptr;
  bool bf16 = false;
  Act(float* f) : data(f) {}
  Act(const float* f) : data(const_cast<float*>(f)) {}
  Act(void* d, bool b) : data(d), bf16(b) {}
};
bool conv2d_forward(Act out, Act x, const float* w, const float* bias, const ConvParams& p,
                    bool xBlocked = false, bool outMayBlock = false);
bool conv2d_backward_data(float* gx, const float* gy, const float* w, const ConvParams& p, bool gyBlocked = false,
                          bool gxMayBlock = false);
void conv2d_backward_weight(float* gw, float* gb, const float* gy, Act x, const ConvParams& p,
                            bool gyBlocked = false, bool xBlocked = false);
/** In place: an [N, C, H, W] float buffer from NCHW to the activation block layout (toBlocked) or back. */
void relayout_blocked(float* buf, int64_t N, int64_t C, int64_t H, int64_t W, bool toBlocked);
/**
 * A conv setting that takes one of a few names: the conv kernels read value (under onednn_mutex()), JS gets and sets
 * it through binding.cc. The three settings follow.
 */
struct ConvMode {
  const char* what;                  // what messages call it: "layout", "algo", "mode"
  std::vector<std::string> choices;  // the names it takes, in the order messages list them
  std::string value;                 // the current one
  /** Sets value under onednn_mutex(); another name fails "[op] layout must be 'plain' or 'blocked', got 'x'". */
  void set(const char* op, const std::string& name);
};
/**
 * "plain" runs conv on NCHW/OIHW directly; "blocked" (the default) lets oneDNN pick its layouts and reorders around
 * them.
 */
extern ConvMode convLayout;
/**
 * The oneDNN algorithm of conv passes that run in f32: "auto" (convolution_auto: Winograd where oneDNN's fixed shape
 * heuristic expects it faster and the ISA has it, else direct; the default), "direct", or "winograd" (wherever
 * oneDNN implements it, else direct).
 */
extern ConvMode convAlgo;
/**
 * bf16 precision only: "auto" (the default) runs a conv pass (forward or backward; the name predates the forward) in
 * f32 where oneDNN's bf16 kernel for that shape is the slower one (conv.cc pass_precision has the rule and its
 * measurements); "bf16" runs every pass in bf16.
 */
extern ConvMode convBf16Backward;
/** The oneDNN implementation a pass of p runs now. */
std::string conv_impl(Pass pass, const ConvParams& p);
/** The channel block oneDNN's conv prefers for activations on this CPU (16, 8, or 0: none), asked of oneDNN once. */
int64_t preferred_block();
/** preferred_block() in "blocked" layout mode, 0 in "plain" mode: the block activations are kept in between layers. */
int64_t activation_block();
/** "nChw16c", "nChw8c" or "plain": activation_block() as oneDNN names the layout. */
std::string activation_layout();

// ---- norm.cc ----
// The *_blocked variants take x, out, gy and gx in nChw{block}c (block 8 or 16, C a multiple of it). Each has a twin
// for bf16-stored activations (uint16_t bf16 bits: x, out, residual and y; statistics and gradients stay f32), which
// computes in f32 from the widened values and rounds once on the store.
void batchnorm_forward_blocked(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                               const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block);
void batchnorm_inference_blocked(float* out, const float* x, const float* mean, const float* variance,
                                 const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block);
void batchnorm_backward_blocked(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x,
                                const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C,
                                int64_t HW, int64_t block);
// Fused: out = relu(bn(x) + residual) (residual nullable); the backward masks gy by y > 0 and writes that masked
// gradient to gresidual (nullable) as the residual's gradient.
void batchnorm_relu_forward_blocked(float* out, float* mean, float* invstd, const float* x, const float* residual,
                                    const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps,
                                    int64_t block);
void batchnorm_relu_backward_blocked(float* gx, float* gresidual, float* ggamma, float* gbeta, const float* gy,
                                     const float* y, const float* x, const float* mean, const float* invstd,
                                     const float* gamma, int64_t N, int64_t C, int64_t HW, int64_t block);
void batchnorm_forward_blocked(uint16_t* out, float* mean, float* invstd, const uint16_t* x, const float* gamma,
                               const float* beta, int64_t N, int64_t C, int64_t HW, double eps, int64_t block);
void batchnorm_inference_blocked(uint16_t* out, const uint16_t* x, const float* mean, const float* variance,
                                 const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps,
                                 int64_t block);
void batchnorm_backward_blocked(float* gx, float* ggamma, float* gbeta, const float* gy, const uint16_t* x,
                                const float* mean, const float* invstd, const float* gamma, int64_t N, int64_t C,
                                int64_t HW, int64_t block);
void batchnorm_relu_forward_blocked(uint16_t* out, float* mean, float* invstd, const uint16_t* x,
                                    const uint16_t* residual, const float* gamma, const float* beta, int64_t N,
                                    int64_t C, int64_t HW, double eps, int64_t block);
void batchnorm_relu_backward_blocked(float* gx, float* gresidual, float* ggamma, float* gbeta, const float* gy,
                                     const uint16_t* y, const uint16_t* x, const float* mean, const float* invstd,
                                     const float* gamma, int64_t N, int64_t C, int64_t HW, int64_t block);
/** out[i] = x[i] widened from bf16 bits to f32 (n values; layout untouched). */
void bf16_to_f32(float* out, const uint16_t* x, int64_t n);
void batchnorm_relu_forward(float* out, float* mean, float* invstd, const float* x, const float* residual,
                            const float* gamma, const float* beta, int64_t N, int64_t C, int64_t HW, double eps);
void batchnorm_relu_backward(float* gx, float* gresidual, float* ggamma, float* gbeta, const float* gy, const float* y,
                             const float* x, const float* mean, const float* invstd, const float* gamma, int64_t N,
                             int64_t C, int64_t HW);
void batchnorm_forward(float* out, float* mean, float* invstd, const float* x, const float* gamma,
                       const float* beta, int64_t N, int64_t C, int64_t HW, double eps);
void batchnorm_inference(float* out, const float* x, const float* mean, const float* variance, const float* gamma,
                         const float* beta, int64_t N, int64_t C, int64_t HW, double eps);
void batchnorm_backward(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x, const float* mean,
                        const float* invstd, const float* gamma, int64_t N, int64_t C, int64_t HW);
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                       int64_t rows, int64_t D, double eps);
void layernorm_backward(float* gx, float* ggamma, float* gbeta, const float* gy, const float* x, const float* mean,
                        const float* rstd, const float* gamma, int64_t rows, int64_t D);

// ---- softmax.cc ----
void softmax_forward(float* out, const float* x, int64_t rows, int64_t D, bool log);
void softmax_backward(float* gx, const float* gy, const float* y, int64_t rows, int64_t D, bool log);

// ---- attention.cc: fused multi-head self-attention over the qkv projection's output ----
// qkv [B, N, 3, H, hd], out [B, N, H, hd], probs [B, H, N, N] = softmax(q k^T * scale) (saved for the backward).
void attention_forward(float* out, float* probs, const float* qkv, int64_t B, int64_t N, int64_t H, int64_t hd,
                       double scale);
/** Overwrites gqkv [B, N, 3, H, hd] from gout [B, N, H, hd]. */
void attention_backward(float* gqkv, const float* gout, const float* qkv, const float* probs, int64_t B, int64_t N,
                        int64_t H, int64_t hd, double scale);

// ---- pool.cc ----
struct PoolParams {
  int64_t N, C, H, W, OH, OW, KH, KW, strideH, strideW, padH, padW;
  bool countIncludePad;
};
void maxpool2d_forward(float* out, int32_t* indices, const float* x, const PoolParams& p);
void maxpool2d_backward(float* gx, const float* gy, const int32_t* indices, const PoolParams& p);
void avgpool2d_forward(float* out, const float* x, const PoolParams& p);
void avgpool2d_backward(float* gx, const float* gy, const PoolParams& p);

// ---- optim.cc: multi-tensor optimizer steps (one call per parameter group) ----
// first[t]: the momentum buffer is new (SGD copies the first decayed gradient into it); b[t] null: no momentum.
void sgd_step(const std::vector<float*>& w, const std::vector<const float*>& g, const std::vector<float*>& b,
              const std::vector<uint8_t>& first, const std::vector<int64_t>& n, double lr, double momentum,
              double dampening, double wd, bool nesterov);
// stepSize[t] = lr / (1 - beta1^step), bc2Sqrt[t] = sqrt(1 - beta2^step), decay = 1 - lr * wd.
void adamw_step(const std::vector<float*>& w, const std::vector<const float*>& g, const std::vector<float*>& m1,
                const std::vector<float*>& m2, const std::vector<double>& stepSize,
                const std::vector<double>& bc2Sqrt, const std::vector<int64_t>& n, double decay, double beta1,
                double beta2, double eps);
// adapt[t]: the layer-wise trust ratio applies (parameters with more than one dim).
void lars_step(const std::vector<float*>& w, const std::vector<const float*>& g, const std::vector<float*>& mu,
               const std::vector<uint8_t>& adapt, const std::vector<int64_t>& n, double lr, double momentum,
               double wd, double trust);

/** k = k * m + q * (1 - m) over every tensor pair, in float (MoCo's momentum encoder update). */
void ema_update(const std::vector<float*>& k, const std::vector<const float*>& q, const std::vector<int64_t>& n,
                double momentum);

// ---- benchmarks (matmul.cc, conv.cc): seconds per iteration of the bare oneDNN primitive ----
double bench_matmul(int64_t M, int64_t N, int64_t K, int iters, bool bf16 = false);
/** layout "any" (oneDNN's choice), "plain", or "any+reorder" (oneDNN's choice plus the reorders from and to NCHW). */
double bench_conv(Pass pass, const ConvParams& p, const std::string& layout, int iters);

}  // namespace selfsup
