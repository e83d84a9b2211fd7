// 2-D convolution over oneDNN: forward (bias fused), backward-data, backward-weights (+ bias gradient).
// In "blocked" layout mode oneDNN picks its own layouts (format_tag::any): activations may arrive and leave in the
// channel-blocked layout the primitive itself works in (nChw16c with AVX-512, nChw8c with AVX2; asked of oneDNN at
// run time, see activation_block), and cached reorder primitives convert every other user buffer (NCHW, OIHW) at
// the edges. In "plain" mode the primitive runs on NCHW buffers directly. In bf16 precision (precision.cc) each pass
// reads its two inputs as bf16 copies (the same reorders convert them) and writes its f32 output directly. Weights are re-reordered every call: the
// optimizer updates them in place.
//
// Legend: N batch, C input channels, H W input size, O output channels, KH KW kernel size, OH OW output size,
//   G groups; x [N, C, H, W], w [O, C/G, KH, KW] (oneDNN: [G, O/G, C/G, KH, KW] when G > 1), bias [O], y [N, O, OH, OW].

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels.h"

namespace selfsup {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using dnnl::convolution_backward_data;
using dnnl::convolution_backward_weights;
using dnnl::convolution_forward;

namespace {

// "blocked" (oneDNN's preferred layouts) measured faster than "plain" on every conv of bench/ops.ts; the TypeScript
// side sets "plain" when SELFSUP_LAYOUT=plain.
std::string& layout_mode() {
  static std::string mode = "blocked";
  return mode;
}

struct Geom {
  memory::dims src, wei, bias, dst, strides, dilates, padL, padR;
  tag weiTag;
};

Geom geom(const ConvParams& p) {
  Geom g;
  g.src = {p.N, p.C, p.H, p.W};
  g.dst = {p.N, p.O, p.OH, p.OW};
  g.bias = {p.O};
  if (p.groups > 1) {
    g.wei = {p.groups, p.O / p.groups, p.C / p.groups, p.KH, p.KW};
    g.weiTag = tag::goihw;
  } else {
    g.wei = {p.O, p.C, p.KH, p.KW};
    g.weiTag = tag::oihw;
  }
  g.strides = {p.strideH, p.strideW};
  g.dilates = {p.dilationH - 1, p.dilationW - 1};
  g.padL = {p.padH, p.padW};
  // Right padding that makes oneDNN's output-size formula land on OH/OW (PyTorch floors, so it may be < padL).
  const int64_t extH = (p.KH - 1) * p.dilationH + 1, extW = (p.KW - 1) * p.dilationW + 1;
  g.padR = {(p.OH - 1) * p.strideH + extH - p.H - p.padH, (p.OW - 1) * p.strideW + extW - p.W - p.padW};
  return g;
}

/**
 * Scratch for the primitive-layout twins of user buffers, one growing buffer per slot (src, weights, dst; the GEMM
 * backward-weights path adds a 4th for its columns). Calls run one at a time, so every cached primitive shares them:
 * memory stays at a few buffers of the largest shape instead of several activation-sized buffers per cached conv shape.
 */
void* scratch(int slot, size_t bytes) {
  struct Slot {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  static Slot slots[4];
  Slot& s = slots[slot];
  if (s.bytes < bytes) {
    std::free(s.ptr);
    s.bytes = (bytes + 4095) / 4096 * 4096;
    s.ptr = std::aligned_alloc(64, s.bytes);
    if (!s.ptr) {
      s.bytes = 0;
      throw std::bad_alloc();
    }
  }
  return s.ptr;
}

/** A user buffer as oneDNN sees it, plus the primitive-layout twin and reorder when the two differ. */
struct Port {
  memory user, prim;
  dnnl::reorder reorder;
  bool direct = true;
  int slot = 0;
};

Port make_port(const memory::desc& userMd, const memory::desc& primMd, bool input, int slot) {
  Port p;
  p.user = memory(userMd, engine(), nullptr);
  p.direct = userMd == primMd;
  p.slot = slot;
  if (p.direct) {
    p.prim = p.user;
  } else {
    p.prim = memory(primMd, engine(), nullptr);
    p.reorder = input ? dnnl::reorder(p.user, p.prim) : dnnl::reorder(p.prim, p.user);
  }
  return p;
}

void port_in(Port& port, const float* ptr) {
  port.user.set_data_handle(const_cast<float*>(ptr));
  if (port.direct) return;
  port.prim.set_data_handle(scratch(port.slot, port.prim.get_desc().get_size()));
  port.reorder.execute(stream(), port.user, port.prim);
}
void port_out_bind(Port& port, float* ptr) {
  port.user.set_data_handle(ptr);
  if (!port.direct) port.prim.set_data_handle(scratch(port.slot, port.prim.get_desc().get_size()));
}
void port_out_finish(Port& port) {
  if (!port.direct) port.reorder.execute(stream(), port.prim, port.user);
}

struct Mds {
  memory::desc src, wei, bias, dst;
};
tag block_tag(int64_t block) { return block == 16 ? tag::nChw16c : tag::nChw8c; }

/** User buffers: NCHW, or the activation block layout for activations a previous layer left in it. */
Mds user_mds(const Geom& g, bool srcBlocked = false, bool dstBlocked = false) {
  const int64_t b = (srcBlocked || dstBlocked) ? activation_block() : 0;
  return {memory::desc(g.src, dt::f32, srcBlocked ? block_tag(b) : tag::nchw), memory::desc(g.wei, dt::f32, g.weiTag),
          memory::desc(g.bias, dt::f32, tag::x),
          memory::desc(g.dst, dt::f32, dstBlocked ? block_tag(b) : tag::nchw)};
}
/** Whether the primitive itself works in the activation block layout here, so a blocked output costs no reorder. */
bool prefers_blocked(const memory::desc& primMd, const memory::dims& dims) {
  const int64_t b = activation_block();
  return b > 0 && primMd == memory::desc(dims, dt::f32, block_tag(b));
}
void check_blocked(const char* kernel, const char* name, bool blocked, int64_t channels) {
  if (!blocked) return;
  const int64_t b = activation_block();
  if (b == 0) fail(kernel, std::string(name) + " is flagged blocked, but no blocked activation layout is in use");
  if (channels % b != 0)
    fail(kernel, std::string(name) + " has " + std::to_string(channels) + " channels; " + activation_layout() +
                     " needs a multiple of " + std::to_string(b));
}
/** Data types the primitive reads and writes: all f32, or (bf16 precision) bf16 inputs with f32 outputs. */
struct Types {
  dt src = dt::f32, wei = dt::f32, dst = dt::f32;
};
enum class Pass { fwd, bwdData, bwdWeights };
/** bf16 multiplies the pass's two inputs in bf16 and writes its output (y, gx or gw) in f32, as autocast does. */
Types types_of(Pass pass) {
  if (compute_precision() != Precision::bf16) return {};
  switch (pass) {
    case Pass::fwd: return {dt::bf16, dt::bf16, dt::f32};
    case Pass::bwdData: return {dt::f32, dt::bf16, dt::bf16};
    case Pass::bwdWeights: return {dt::bf16, dt::f32, dt::bf16};
  }
  return {};
}
Mds prim_mds(const Geom& g, bool blocked, Types t = {}) {
  if (!blocked)
    return {memory::desc(g.src, t.src, tag::nchw), memory::desc(g.wei, t.wei, g.weiTag),
            memory::desc(g.bias, dt::f32, tag::x), memory::desc(g.dst, t.dst, tag::nchw)};
  return {memory::desc(g.src, t.src, tag::any), memory::desc(g.wei, t.wei, tag::any),
          memory::desc(g.bias, dt::f32, tag::x), memory::desc(g.dst, t.dst, tag::any)};
}

convolution_forward::primitive_desc fwd_pd(const Geom& g, bool blocked, bool hasBias, Types t = {}) {
  const Mds m = prim_mds(g, blocked, t);
  const auto d = hasBias ? convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                     dnnl::algorithm::convolution_direct, m.src, m.wei, m.bias, m.dst,
                                                     g.strides, g.dilates, g.padL, g.padR)
                         : convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                     dnnl::algorithm::convolution_direct, m.src, m.wei, m.dst,
                                                     g.strides, g.dilates, g.padL, g.padR);
  return convolution_forward::primitive_desc(d, engine());
}
convolution_backward_data::primitive_desc bwd_data_pd(const Geom& g, bool blocked) {
  const Types t = types_of(Pass::bwdData);
  const Mds m = prim_mds(g, blocked, t);
  const convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, m.src, m.wei, m.dst, g.strides,
                                          g.dilates, g.padL, g.padR);
  return convolution_backward_data::primitive_desc(d, engine(), fwd_pd(g, blocked, false, types_of(Pass::fwd)));
}
convolution_backward_weights::primitive_desc bwd_weights_pd(const Geom& g, bool blocked, bool hasBias) {
  const Mds m = prim_mds(g, blocked, types_of(Pass::bwdWeights));
  const auto d = hasBias ? convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, m.src, m.wei,
                                                              m.bias, m.dst, g.strides, g.dilates, g.padL, g.padR)
                         : convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, m.src, m.wei, m.dst,
                                                              g.strides, g.dilates, g.padL, g.padR);
  return convolution_backward_weights::primitive_desc(d, engine(), fwd_pd(g, blocked, hasBias, types_of(Pass::fwd)));
}

struct FwdEntry {
  convolution_forward prim;
  Port src, wei, dst;
  memory bias;
  bool dstBlocked = false;
};
struct BwdDataEntry {
  convolution_backward_data prim;
  Port diffSrc, wei, diffDst;
  bool diffSrcBlocked = false;
};
struct BwdWeightsEntry {
  convolution_backward_weights prim;
  Port src, diffWei, diffDst;
  memory diffBias;
};
PrimitiveCache<FwdEntry> fwdCache;
PrimitiveCache<BwdDataEntry> bwdDataCache;
PrimitiveCache<BwdWeightsEntry> bwdWeightsCache;

// ---- backward-weights as im2col + GEMM ----
// gw^T [C*KH*KW, O] = cols [C*KH*KW, N*OH*OW] @ gy [N*OH*OW, O], summed over chunks of the batch so cols stays within
// kColsBudget; then one reorder to OIHW. Row (c, kh, kw) of cols holds, for every output pixel (n, oh, ow), the input
// value under that kernel tap (0 in the padding): Caffe's im2col over NCHW, the batch side by side. The long side of
// the product is C*KH*KW and the contraction is N*OH*OW: that orientation ran oneDNN's f32 matmul near its square-size
// speed here, where [O, rows] @ [rows, C*KH*KW] ran at half of it. oneDNN's direct backward-weights kernel runs far
// below matmul speed on small images with many channels and on strided convs; the GEMM has one long contraction.

constexpr int64_t kColsBudget = int64_t(8) << 20;  // floats of cols per chunk (32 MB)

std::string& weights_algo() {
  static std::string algo = "auto";
  return algo;
}

/**
 * The shape rule for "auto" (deterministic, no run-time timing): the GEMM where measured faster than oneDNN's
 * direct kernel on the ResNet-18 CIFAR shapes at batch 128 (bench/conv.ts). f32 only, groups 1.
 */
bool gemm_weights_pays(const ConvParams& p) {
  return p.OH * p.OW <= 64 || p.strideH > 1 || p.strideW > 1;
}

bool use_gemm_weights(const ConvParams& p) {
  if (compute_precision() != Precision::f32 || p.groups != 1) return false;
  const std::string& a = weights_algo();
  return a == "gemm" || (a == "auto" && gemm_weights_pays(p));
}

/** Rows [k0, k1) of cols [C*KH*KW, images*OH*OW] from `images` NCHW images at x. */
void im2col_rows(float* cols, const float* x, const ConvParams& p, int64_t images, int64_t k0, int64_t k1) {
  const int64_t S = p.OH * p.OW, rows = images * S, taps = p.KH * p.KW;
  for (int64_t k = k0; k < k1; k++) {
    const int64_t c = k / taps, kh = k % taps / p.KW, kw = k % p.KW;
    // the output columns whose input column lies inside the image: [owLo, owHi)
    const int64_t off = kw * p.dilationW - p.padW;
    const int64_t owLo = std::min(p.OW, off >= 0 ? 0 : (-off + p.strideW - 1) / p.strideW);
    const int64_t owHi = std::max(owLo, std::min(p.OW, off >= p.W ? 0 : (p.W - 1 - off) / p.strideW + 1));
    float* dst = cols + k * rows;
    for (int64_t n = 0; n < images; n++) {
      const float* plane = x + (n * p.C + c) * p.H * p.W;
      for (int64_t oh = 0; oh < p.OH; oh++, dst += p.OW) {
        const int64_t ih = oh * p.strideH - p.padH + kh * p.dilationH;
        if (ih < 0 || ih >= p.H) {
          std::memset(dst, 0, size_t(p.OW) * sizeof(float));
          continue;
        }
        const float* src = plane + ih * p.W + off;
        for (int64_t ow = 0; ow < owLo; ow++) dst[ow] = 0.f;
        if (p.strideW == 1) {
          std::memcpy(dst + owLo, src + owLo, size_t(owHi - owLo) * sizeof(float));
        } else {
          for (int64_t ow = owLo; ow < owHi; ow++) dst[ow] = src[ow * p.strideW];
        }
        for (int64_t ow = owHi; ow < p.OW; ow++) dst[ow] = 0.f;
      }
    }
  }
  (void)rows;
}

/**
 * The primitives of one batch-chunk size: gy to NHWC ([rows, O] row-major), x (when blocked) to NCHW, and the matmul
 * that sets or accumulates gw^T.
 */
struct GemmChunk {
  int64_t images = 0;
  dnnl::reorder gyToNhwc, xToNchw;
  memory gyUser, gyNhwc, xUser, xNchw;
  dnnl::matmul set, accumulate;
  memory cols, gyMat, gwT;
};
struct GemmWeightsEntry {
  GemmChunk full, tail;  // tail.images == 0 when the chunks divide the batch
  dnnl::reorder gwToUser;
  memory gwT, gwUser;
};
PrimitiveCache<GemmWeightsEntry> gemmWeightsCache;

GemmChunk make_gemm_chunk(const ConvParams& p, int64_t images, bool gyBlocked, bool xBlocked) {
  GemmChunk c;
  c.images = images;
  const int64_t rows = images * p.OH * p.OW, K2 = p.C * p.KH * p.KW;
  const int64_t b = activation_block();
  const memory::dims gyDims{images, p.O, p.OH, p.OW}, xDims{images, p.C, p.H, p.W};
  c.gyUser = memory(memory::desc(gyDims, dt::f32, gyBlocked ? block_tag(b) : tag::nchw), engine(), nullptr);
  c.gyNhwc = memory(memory::desc(gyDims, dt::f32, tag::nhwc), engine(), nullptr);
  c.gyToNhwc = dnnl::reorder(c.gyUser, c.gyNhwc);
  if (xBlocked) {
    c.xUser = memory(memory::desc(xDims, dt::f32, block_tag(b)), engine(), nullptr);
    c.xNchw = memory(memory::desc(xDims, dt::f32, tag::nchw), engine(), nullptr);
    c.xToNchw = dnnl::reorder(c.xUser, c.xNchw);
  }
  const memory::desc colsMd({K2, rows}, dt::f32, tag::ab), gyMd({rows, p.O}, dt::f32, tag::ab);
  const memory::desc gwTMd({K2, p.O}, dt::f32, tag::ab);
  c.set = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(colsMd, gyMd, gwTMd), engine()));
  dnnl::post_ops sum;
  sum.append_sum(1.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(sum);
  c.accumulate = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(colsMd, gyMd, gwTMd), attr, engine()));
  c.cols = memory(colsMd, engine(), nullptr);
  c.gyMat = memory(gyMd, engine(), nullptr);
  c.gwT = memory(gwTMd, engine(), nullptr);
  return c;
}

/** gb [O] += column sums of gy [rows, O]. */
void add_column_sums(float* gb, const float* gy, int64_t rows, int64_t O) {
  parallel_range(O, rows * O, [&](int64_t o0, int64_t o1) {
    for (int64_t r = 0; r < rows; r++) {
      const float* row = gy + r * O;
      for (int64_t o = o0; o < o1; o++) gb[o] += row[o];
    }
  });
}

void gemm_backward_weight(float* gw, float* gb, const float* gy, const float* x, const ConvParams& p, bool gyBlocked,
                          bool xBlocked) {
  const int64_t S = p.OH * p.OW, K2 = p.C * p.KH * p.KW;
  // equal chunks of whole images, as few as the budget allows
  const int64_t chunks = std::min(p.N, std::max(int64_t(1), (p.N * S * K2 + kColsBudget - 1) / kColsBudget));
  const int64_t images = (p.N + chunks - 1) / chunks, tailImages = p.N % images;
  GemmWeightsEntry& e = gemmWeightsCache.get(
      key("gemm_weights", p.N, p.C, p.H, p.W, p.O, p.KH, p.KW, p.OH, p.OW, p.strideH, p.strideW, p.padH, p.padW,
          p.dilationH, p.dilationW, gyBlocked, xBlocked, activation_block()),
      [&] {
        GemmWeightsEntry e;
        e.full = make_gemm_chunk(p, images, gyBlocked, xBlocked);
        if (tailImages > 0) e.tail = make_gemm_chunk(p, tailImages, gyBlocked, xBlocked);
        // gw^T [C*KH*KW, O] is gw [O, C, KH, KW] with strides (1, KH*KW*O, KW*O, O)
        const memory::dims wDims{p.O, p.C, p.KH, p.KW};
        e.gwT = memory(memory::desc(wDims, dt::f32, memory::dims{1, p.KH * p.KW * p.O, p.KW * p.O, p.O}), engine(),
                       nullptr);
        e.gwUser = memory(memory::desc(wDims, dt::f32, tag::oihw), engine(), nullptr);
        e.gwToUser = dnnl::reorder(e.gwT, e.gwUser);
        return e;
      });
  float* gwT = static_cast<float*>(scratch(1, size_t(K2 * p.O) * sizeof(float)));
  if (gb) std::memset(gb, 0, size_t(p.O) * sizeof(float));
  for (int64_t n0 = 0; n0 < p.N; n0 += images) {
    GemmChunk& c = p.N - n0 >= images ? e.full : e.tail;
    const int64_t rows = c.images * S;
    float* gyNhwc = static_cast<float*>(scratch(2, size_t(rows * p.O) * sizeof(float)));
    c.gyUser.set_data_handle(const_cast<float*>(gy + n0 * p.O * S));
    c.gyNhwc.set_data_handle(gyNhwc);
    c.gyToNhwc.execute(stream(), c.gyUser, c.gyNhwc);
    const float* xChunk = x + n0 * p.C * p.H * p.W;
    if (xBlocked) {
      float* xNchw = static_cast<float*>(scratch(0, size_t(c.images * p.C * p.H * p.W) * sizeof(float)));
      c.xUser.set_data_handle(const_cast<float*>(xChunk));
      c.xNchw.set_data_handle(xNchw);
      c.xToNchw.execute(stream(), c.xUser, c.xNchw);
      xChunk = xNchw;
    }
    stream().wait();
    float* cols = static_cast<float*>(scratch(3, size_t(rows * K2) * sizeof(float)));
    parallel_range(K2, rows * K2, [&](int64_t k0, int64_t k1) { im2col_rows(cols, xChunk, p, c.images, k0, k1); });
    if (gb) add_column_sums(gb, gyNhwc, rows, p.O);
    c.cols.set_data_handle(cols);
    c.gyMat.set_data_handle(gyNhwc);
    c.gwT.set_data_handle(gwT);
    (n0 == 0 ? c.set : c.accumulate)
        .execute(stream(), {{DNNL_ARG_SRC, c.cols}, {DNNL_ARG_WEIGHTS, c.gyMat}, {DNNL_ARG_DST, c.gwT}});
  }
  e.gwT.set_data_handle(gwT);
  e.gwUser.set_data_handle(gw);
  e.gwToUser.execute(stream(), e.gwT, e.gwUser);
  stream().wait();
}

}  // namespace

void conv_set_weights_algo(const std::string& algo) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  weights_algo() = algo;
}
std::string conv_weights_algo() { return weights_algo(); }
bool conv_weights_uses_gemm(const ConvParams& p) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  return use_gemm_weights(p);
}

namespace {

std::string conv_key(const char* kind, const ConvParams& p, bool hasBias, int layouts) {
  return key(kind, p.N, p.C, p.H, p.W, p.O, p.KH, p.KW, p.OH, p.OW, p.strideH, p.strideW, p.padH, p.padW,
             p.dilationH, p.dilationW, p.groups, hasBias, layouts, int(compute_precision())) +
         layout_mode();
}

}  // namespace

void conv_set_layout(const std::string& layout) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  layout_mode() = layout;
}
std::string conv_layout() { return layout_mode(); }

int64_t preferred_block() {
  // What oneDNN's forward conv picks for a typical mid-network activation (64 -> 64 channels, 3x3, 14x14, batch 8)
  // when left free (format_tag::any): nChw16c with AVX-512, nChw8c with AVX2 / SSE4.1, something else elsewhere.
  // The ISA cannot change once oneDNN has generated code, so the answer holds for the process.
  static const int64_t block = [] {
    ConvParams p{8, 64, 14, 14, 64, 3, 3, 14, 14, 1, 1, 1, 1, 1, 1, 1};
    const Geom g = geom(p);
    const memory::desc src = fwd_pd(g, true, false).src_desc();
    if (src == memory::desc(g.src, dt::f32, tag::nChw16c)) return int64_t(16);
    if (src == memory::desc(g.src, dt::f32, tag::nChw8c)) return int64_t(8);
    return int64_t(0);
  }();
  return block;
}
int64_t activation_block() { return layout_mode() == "blocked" ? preferred_block() : 0; }
std::string activation_layout() {
  const int64_t b = activation_block();
  return b == 0 ? "plain" : "nChw" + std::to_string(b) + "c";
}

namespace {

/** conv2d_forward with the oneDNN lock held. */
bool forward_locked(float* out, const float* x, const float* w, const float* bias, const ConvParams& p, bool xBlocked,
                    bool outMayBlock) {
  check_blocked("conv2d", "x", xBlocked, p.C);
  if (p.N * p.O * p.OH * p.OW == 0) return false;
  const bool blocked = layout_mode() == "blocked";
  outMayBlock = outMayBlock && blocked && activation_block() > 0 && p.O % activation_block() == 0;
  FwdEntry& e = fwdCache.get(conv_key("fwd", p, bias, xBlocked + 2 * outMayBlock), [&] {
    const Geom g = geom(p);
    const auto pd = fwd_pd(g, blocked, bias, types_of(Pass::fwd));
    FwdEntry e;
    e.dstBlocked = outMayBlock && prefers_blocked(pd.dst_desc(), g.dst);
    const Mds u = user_mds(g, xBlocked, e.dstBlocked);
    e.prim = convolution_forward(pd);
    e.src = make_port(u.src, pd.src_desc(), true, 0);
    e.wei = make_port(u.wei, pd.weights_desc(), true, 1);
    e.dst = make_port(u.dst, pd.dst_desc(), false, 2);
    if (bias) e.bias = memory(u.bias, engine(), nullptr);
    return e;
  });
  port_in(e.src, x);
  port_in(e.wei, w);
  port_out_bind(e.dst, out);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.src.prim}, {DNNL_ARG_WEIGHTS, e.wei.prim},
                                       {DNNL_ARG_DST, e.dst.prim}};
  if (bias) {
    e.bias.set_data_handle(const_cast<float*>(bias));
    args.emplace(DNNL_ARG_BIAS, e.bias);
  }
  e.prim.execute(stream(), args);
  port_out_finish(e.dst);
  stream().wait();
  return e.dstBlocked;
}

// ---- backward-data as a forward convolution ----
// At stride 1, gx = conv(gy, w') with w' [C, O, KH, KW] = w [O, C, KH, KW] transposed and flipped in both spatial
// axes, padding d (K - 1) - pad and the same dilation: oneDNN's forward kernel is its best-tuned one.

std::string& data_algo() {
  static std::string algo = "auto";
  return algo;
}

bool data_as_forward_fits(const ConvParams& p) {
  return p.groups == 1 && p.strideH == 1 && p.strideW == 1 && p.padH <= p.dilationH * (p.KH - 1) &&
         p.padW <= p.dilationW * (p.KW - 1);
}

/** The shape rule for "auto": measured faster than oneDNN's backward-data kernel (bench/conv.ts). */
bool data_as_forward_pays(const ConvParams& p) { return compute_precision() == Precision::f32 && p.KH * p.KW > 1; }

bool use_data_as_forward(const ConvParams& p) {
  if (!data_as_forward_fits(p)) return false;
  const std::string& a = data_algo();
  return a == "forward" || (a == "auto" && data_as_forward_pays(p));
}

bool data_as_forward(float* gx, const float* gy, const float* w, const ConvParams& p, bool gyBlocked,
                     bool gxMayBlock) {
  const int64_t taps = p.KH * p.KW;
  float* wf = static_cast<float*>(scratch(3, size_t(p.O * p.C * taps) * sizeof(float)));  // [C, O, KH, KW]
  parallel_range(p.C, p.C * p.O * taps, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++)
      for (int64_t o = 0; o < p.O; o++) {
        const float* src = w + (o * p.C + c) * taps;
        float* dst = wf + (c * p.O + o) * taps;
        for (int64_t t = 0; t < taps; t++) dst[t] = src[taps - 1 - t];
      }
  });
  ConvParams q = p;
  q.C = p.O;
  q.O = p.C;
  q.H = p.OH;
  q.W = p.OW;
  q.OH = p.H;
  q.OW = p.W;
  q.padH = p.dilationH * (p.KH - 1) - p.padH;
  q.padW = p.dilationW * (p.KW - 1) - p.padW;
  return forward_locked(gx, gy, wf, nullptr, q, gyBlocked, gxMayBlock);
}

}  // namespace

void conv_set_data_algo(const std::string& algo) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  data_algo() = algo;
}
std::string conv_data_algo() { return data_algo(); }
bool conv_data_uses_forward(const ConvParams& p) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  return use_data_as_forward(p);
}

bool conv2d_forward(float* out, const float* x, const float* w, const float* bias, const ConvParams& p, bool xBlocked,
                    bool outMayBlock) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  return forward_locked(out, x, w, bias, p, xBlocked, outMayBlock);
}

bool conv2d_backward_data(float* gx, const float* gy, const float* w, const ConvParams& p, bool gyBlocked,
                          bool gxMayBlock) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  check_blocked("conv2d_backward_data", "gy", gyBlocked, p.O);
  if (p.N * p.C * p.H * p.W == 0) return false;
  if (p.O * p.OH * p.OW == 0 || p.KH * p.KW == 0) {
    std::memset(gx, 0, size_t(p.N * p.C * p.H * p.W) * sizeof(float));
    return false;
  }
  if (use_data_as_forward(p)) return data_as_forward(gx, gy, w, p, gyBlocked, gxMayBlock);
  const bool blocked = layout_mode() == "blocked";
  gxMayBlock = gxMayBlock && blocked && activation_block() > 0 && p.C % activation_block() == 0;
  BwdDataEntry& e = bwdDataCache.get(conv_key("bwd_data", p, false, gyBlocked + 2 * gxMayBlock), [&] {
    const Geom g = geom(p);
    const auto pd = bwd_data_pd(g, blocked);
    BwdDataEntry e;
    e.diffSrcBlocked = gxMayBlock && prefers_blocked(pd.diff_src_desc(), g.src);
    const Mds u = user_mds(g, e.diffSrcBlocked, gyBlocked);
    e.prim = convolution_backward_data(pd);
    e.diffSrc = make_port(u.src, pd.diff_src_desc(), false, 0);
    e.wei = make_port(u.wei, pd.weights_desc(), true, 1);
    e.diffDst = make_port(u.dst, pd.diff_dst_desc(), true, 2);
    return e;
  });
  port_in(e.diffDst, gy);
  port_in(e.wei, w);
  port_out_bind(e.diffSrc, gx);
  e.prim.execute(stream(), {{DNNL_ARG_DIFF_DST, e.diffDst.prim}, {DNNL_ARG_WEIGHTS, e.wei.prim},
                            {DNNL_ARG_DIFF_SRC, e.diffSrc.prim}});
  port_out_finish(e.diffSrc);
  stream().wait();
  return e.diffSrcBlocked;
}

void conv2d_backward_weight(float* gw, float* gb, const float* gy, const float* x, const ConvParams& p, bool gyBlocked,
                            bool xBlocked) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  check_blocked("conv2d_backward_weight", "gy", gyBlocked, p.O);
  check_blocked("conv2d_backward_weight", "x", xBlocked, p.C);
  const int64_t wSize = p.O * (p.groups ? p.C / p.groups : 0) * p.KH * p.KW;
  if (wSize == 0) return;
  if (p.N * p.OH * p.OW == 0) {
    std::memset(gw, 0, size_t(wSize) * sizeof(float));
    if (gb) std::memset(gb, 0, size_t(p.O) * sizeof(float));
    return;
  }
  if (use_gemm_weights(p)) {
    gemm_backward_weight(gw, gb, gy, x, p, gyBlocked, xBlocked);
    return;
  }
  const bool blocked = layout_mode() == "blocked";
  BwdWeightsEntry& e = bwdWeightsCache.get(conv_key("bwd_weights", p, gb, xBlocked + 2 * gyBlocked), [&] {
    const Geom g = geom(p);
    const Mds u = user_mds(g, xBlocked, gyBlocked);
    const auto pd = bwd_weights_pd(g, blocked, gb);
    BwdWeightsEntry e;
    e.prim = convolution_backward_weights(pd);
    e.src = make_port(u.src, pd.src_desc(), true, 0);
    e.diffWei = make_port(u.wei, pd.diff_weights_desc(), false, 1);
    e.diffDst = make_port(u.dst, pd.diff_dst_desc(), true, 2);
    if (gb) e.diffBias = memory(u.bias, engine(), nullptr);
    return e;
  });
  port_in(e.src, x);
  port_in(e.diffDst, gy);
  port_out_bind(e.diffWei, gw);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.src.prim}, {DNNL_ARG_DIFF_DST, e.diffDst.prim},
                                       {DNNL_ARG_DIFF_WEIGHTS, e.diffWei.prim}};
  if (gb) {
    e.diffBias.set_data_handle(gb);
    args.emplace(DNNL_ARG_DIFF_BIAS, e.diffBias);
  }
  e.prim.execute(stream(), args);
  port_out_finish(e.diffWei);
  stream().wait();
}

void relayout_blocked(float* buf, int64_t N, int64_t C, int64_t H, int64_t W, bool toBlocked) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  const int64_t b = activation_block();
  if (b == 0) fail("relayout", "no blocked activation layout is in use (layout: plain)");
  if (C % b != 0)
    fail("relayout", activation_layout() + " needs channels in multiples of " + std::to_string(b) + ", got " +
                         std::to_string(C));
  if (N * C * H * W == 0) return;
  struct Entry {
    dnnl::reorder reorder;
    memory from, to;
  };
  static PrimitiveCache<Entry> cache;
  Entry& e = cache.get(key("relayout", N, C, H, W, toBlocked, b), [&] {
    const memory::dims d{N, C, H, W};
    const memory::desc plain(d, dt::f32, tag::nchw), blocked(d, dt::f32, block_tag(b));
    Entry e;
    e.from = memory(toBlocked ? plain : blocked, engine(), nullptr);
    e.to = memory(toBlocked ? blocked : plain, engine(), nullptr);
    e.reorder = dnnl::reorder(e.from, e.to);
    return e;
  });
  const size_t bytes = size_t(N * C * H * W) * sizeof(float);
  void* tmp = scratch(0, bytes);
  std::memcpy(tmp, buf, bytes);
  e.from.set_data_handle(tmp);
  e.to.set_data_handle(buf);
  e.reorder.execute(stream(), e.from, e.to);
  stream().wait();
}

double bench_conv(int kind, const ConvParams& p, const std::string& layout, int iters) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  const Geom g = geom(p);
  const Mds u = user_mds(g);
  // "any": oneDNN's preferred layouts, no reorders; "plain": NCHW primitive; "any+reorder": preferred layouts plus
  // the reorders from and to NCHW user buffers that a plain-layout caller needs (what our kernels do).
  const bool blocked = layout != "plain", withReorders = layout == "any+reorder";
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  std::vector<std::pair<dnnl::reorder, std::pair<memory, memory>>> before, after;
  auto arg = [&](int id, const memory::desc& primMd, const memory::desc& userMd, bool input) {
    memory m(primMd, engine());
    std::memset(m.get_data_handle(), 0, primMd.get_size());
    args.emplace(id, m);
    if (!withReorders || primMd == userMd) return;
    memory user(userMd, engine());
    std::memset(user.get_data_handle(), 0, userMd.get_size());
    if (input) before.push_back({dnnl::reorder(user, m), {user, m}});
    else after.push_back({dnnl::reorder(m, user), {m, user}});
  };
  if (kind == 0) {
    const auto pd = fwd_pd(g, blocked, false);
    prim = convolution_forward(pd);
    arg(DNNL_ARG_SRC, pd.src_desc(), u.src, true);
    arg(DNNL_ARG_WEIGHTS, pd.weights_desc(), u.wei, true);
    arg(DNNL_ARG_DST, pd.dst_desc(), u.dst, false);
  } else if (kind == 1) {
    const auto pd = bwd_data_pd(g, blocked);
    prim = convolution_backward_data(pd);
    arg(DNNL_ARG_DIFF_DST, pd.diff_dst_desc(), u.dst, true);
    arg(DNNL_ARG_WEIGHTS, pd.weights_desc(), u.wei, true);
    arg(DNNL_ARG_DIFF_SRC, pd.diff_src_desc(), u.src, false);
  } else {
    const auto pd = bwd_weights_pd(g, blocked, false);
    prim = convolution_backward_weights(pd);
    arg(DNNL_ARG_SRC, pd.src_desc(), u.src, true);
    arg(DNNL_ARG_DIFF_DST, pd.diff_dst_desc(), u.dst, true);
    arg(DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc(), u.wei, false);
  }
  auto once = [&] {
    for (auto& [r, io] : before) r.execute(stream(), io.first, io.second);
    prim.execute(stream(), args);
    for (auto& [r, io] : after) r.execute(stream(), io.first, io.second);
  };
  once();
  stream().wait();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; i++) once();
  stream().wait();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
}

}  // namespace selfsup
