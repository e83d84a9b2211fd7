// 2-D convolution over oneDNN: forward (bias fused), backward-data, backward-weights (+ bias gradient).
// In "blocked" layout mode oneDNN picks its own layouts (format_tag::any): activations may arrive and leave in the
// channel-blocked layout the primitive itself works in (nChw16c with AVX-512, nChw8c with AVX2; asked of oneDNN at
// run time, see activation_block), and cached reorder primitives convert every other user buffer (NCHW, OIHW) at
// the edges. In "plain" mode the primitive runs on NCHW buffers directly. In bf16 precision (precision.cc) each pass
// reads its two inputs as bf16 copies (the same reorders convert them) and writes its f32 output directly. Weights are re-reordered every call: the
// optimizer updates them in place.
// Algorithm (conv_set_algo): a pass that runs in f32 asks oneDNN, in "auto" mode (the default), for convolution_auto,
// which takes its Winograd F(4x4, 3x3) kernels (AVX-512 only) for the 3x3 stride-1 shapes its own fixed heuristic
// expects to beat the direct kernels (large enough batch and channels), and the direct kernels elsewhere: a choice by
// shape and ISA, never by timing, so a run's numbers repeat. "direct" never uses Winograd; "winograd" asks for it
// wherever oneDNN implements it (tests). bf16 passes always run direct (oneDNN 2.6 has no bf16 Winograd).
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

void ConvMode::set(const char* op, const std::string& name) {
  if (std::find(choices.begin(), choices.end(), name) == choices.end()) {
    std::string list;  // 'a', 'b' or 'c'
    for (size_t i = 0; i < choices.size(); i++)
      list += (i == 0 ? "'" : i + 1 < choices.size() ? ", '" : " or '") + choices[i] + "'";
    fail(op, std::string(what) + " must be " + list + ", got '" + name + "'");
  }
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  value = name;
}

// "blocked" (oneDNN's preferred layouts) measured faster than "plain" on every conv of bench/ops.ts; the TypeScript
// side sets "plain" when SELFSUP_LAYOUT=plain.
ConvMode convLayout{"layout", {"plain", "blocked"}, "blocked"};
ConvMode convAlgo{"algo", {"auto", "direct", "winograd"}, "auto"};
// "auto": the rule in pass_precision below, with its measurements
ConvMode convBf16Backward{"mode", {"auto", "bf16"}, "auto"};

namespace {

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
 * Scratch for the primitive-layout twins of user buffers, one growing buffer per slot (src, weights, dst).
 * Calls run one at a time, so every cached primitive shares them: memory stays at 3 buffers of the largest
 * shape instead of several activation-sized buffers per cached conv shape.
 */
void* scratch(int slot, size_t bytes) {
  struct Slot {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  static Slot slots[3];
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

void port_in(Port& port, const void* ptr) {
  port.user.set_data_handle(const_cast<void*>(ptr));
  if (port.direct) return;
  port.prim.set_data_handle(scratch(port.slot, port.prim.get_desc().get_size()));
  port.reorder.execute(stream(), port.user, port.prim);
}
void port_out_bind(Port& port, void* ptr) {
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

/**
 * User buffers: NCHW, or the activation block layout for activations a previous layer left in it; in f32, or bf16
 * storage (srcBf16, dstBf16: blocked activations only) where the caller keeps the activation in bf16.
 */
Mds user_mds(const Geom& g, bool srcBlocked = false, bool dstBlocked = false, bool srcBf16 = false,
             bool dstBf16 = false) {
  const int64_t b = (srcBlocked || dstBlocked) ? activation_block() : 0;
  return {memory::desc(g.src, srcBf16 ? dt::bf16 : dt::f32, srcBlocked ? block_tag(b) : tag::nchw),
          memory::desc(g.wei, dt::f32, g.weiTag), memory::desc(g.bias, dt::f32, tag::x),
          memory::desc(g.dst, dstBf16 ? dt::bf16 : dt::f32, dstBlocked ? block_tag(b) : tag::nchw)};
}
/** A bf16-stored activation must be in the activation block layout (the only layout bf16 storage takes). */
void check_bf16(const char* kernel, const char* name, const Act& a, bool blocked) {
  if (!a.bf16) return;
  if (!blocked || activation_block() == 0)
    fail(kernel, std::string(name) + " is in bf16 storage, which needs the activation block layout (" +
                     activation_layout() + "), but it is not flagged blocked");
}
/**
 * Whether an output the primitive writes as primMd should reach the caller in the activation block layout: when the
 * primitive works in that layout itself (no reorder), and also when it works in some third layout, because it then
 * costs one reorder either way. A bf16 pass (AMX) writes its f32 output channels-last; converting that to NCHW left
 * its tensor out of step with its blocked neighbours (the f32 passes, the residual), and every mixed pair was turned
 * NCHW in place by a relayout (78 of SimSiam's 89 ms of relayouts per bf16 step). NCHW stays where the primitive
 * writes NCHW itself.
 */
bool block_output(const memory::desc& primMd, const memory::dims& dims) {
  const int64_t b = activation_block();
  return b > 0 && primMd != memory::desc(dims, dt::f32, tag::nchw);
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

using Alg = dnnl::algorithm;
/** A network's first layer (RGB or grey in): fewer than 16 input channels. conv_alg and pass_precision treat it apart. */
bool is_stem(const ConvParams& p) { return p.C < 16; }

/**
 * The oneDNN algorithm a pass of conv p asks for now (see the header): direct for bf16 passes and in "direct" mode.
 * "auto" keeps convs with fewer than 16 input channels (a network's first layer, RGB in) direct: convolution_auto
 * takes Winograd for ResNet's 3 -> 64 3x3 stem, and there it ran 11x slower forward and 3x slower backward-weights
 * than direct (6.9 vs 75.8 ms, 11.6 vs 35.9 ms at batch 128, 32x32; bench/conv.ts). In a bf16 session the backward
 * passes that run in f32 (pass_precision) take the same choice as in an f32 session.
 */
Alg conv_alg(const ConvParams& p) {
  if (compute_precision() != Precision::f32 || convAlgo.value == "direct") return Alg::convolution_direct;
  if (convAlgo.value == "winograd") return Alg::convolution_winograd;
  return is_stem(p) ? Alg::convolution_direct : Alg::convolution_auto;
}
/** make(alg), or make(direct) where oneDNN has no kernel for alg (Winograd asked for a shape or ISA it lacks). */
template <class Make>
auto with_alg(Alg alg, Make make) -> decltype(make(alg)) {
  if (alg != Alg::convolution_winograd) return make(alg);
  try {
    return make(alg);
  } catch (const dnnl::error&) {
    return make(Alg::convolution_direct);
  }
}

convolution_forward::primitive_desc fwd_pd(const Geom& g, bool blocked, bool hasBias, Types t = {},
                                           Alg alg = Alg::convolution_direct) {
  const Mds m = prim_mds(g, blocked, t);
  const auto d = hasBias ? convolution_forward::desc(dnnl::prop_kind::forward_training, alg, m.src, m.wei, m.bias,
                                                     m.dst, g.strides, g.dilates, g.padL, g.padR)
                         : convolution_forward::desc(dnnl::prop_kind::forward_training, alg, m.src, m.wei, m.dst,
                                                     g.strides, g.dilates, g.padL, g.padR);
  return convolution_forward::primitive_desc(d, engine());
}
convolution_backward_data::primitive_desc bwd_data_pd(const Geom& g, bool blocked, Alg alg = Alg::convolution_direct) {
  const Types t = types_of(Pass::bwdData);
  const Mds m = prim_mds(g, blocked, t);
  const convolution_backward_data::desc d(alg, m.src, m.wei, m.dst, g.strides, g.dilates, g.padL, g.padR);
  return convolution_backward_data::primitive_desc(d, engine(), fwd_pd(g, blocked, false, types_of(Pass::fwd), alg));
}
convolution_backward_weights::primitive_desc bwd_weights_pd(const Geom& g, bool blocked, bool hasBias,
                                                            Alg alg = Alg::convolution_direct) {
  const Mds m = prim_mds(g, blocked, types_of(Pass::bwdWeights));
  const auto d = hasBias ? convolution_backward_weights::desc(alg, m.src, m.wei, m.bias, m.dst, g.strides, g.dilates,
                                                              g.padL, g.padR)
                         : convolution_backward_weights::desc(alg, m.src, m.wei, m.dst, g.strides, g.dilates, g.padL,
                                                              g.padR);
  return convolution_backward_weights::primitive_desc(d, engine(),
                                                      fwd_pd(g, blocked, hasBias, types_of(Pass::fwd), alg));
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

std::string conv_key(const char* kind, const ConvParams& p, bool hasBias, int layouts) {
  return key(kind, p.N, p.C, p.H, p.W, p.O, p.KH, p.KW, p.OH, p.OW, p.strideH, p.strideW, p.padH, p.padW,
             p.dilationH, p.dilationW, p.groups, hasBias, layouts, int(compute_precision()), int(session_precision())) +
         convLayout.value + "," + convAlgo.value;
}

// The precision a pass of conv p runs in now, by convBf16Backward's rule.
// bf16 precision, "auto" (the default): a pass runs in f32 where oneDNN 2.6's bf16 kernel for it loses to the f32 one
// (the f32 one being Winograd where conv_alg picks it). Measured with `npm run bench:conv -- --precision bf16` on the
// ResNet-18 CIFAR convs at batch 128 (Sapphire Rapids, 2 threads, AMX, caches flushed; ms bf16 vs f32):
// - the RGB stem (3 -> 64 3x3 at 32x32): forward 8.5 vs 2.2, backward-weights 5.2 vs 2.6;
// - 1x1 stride-2 shortcuts: forward 6.1 vs 3.1, 3.2 vs 2.6, 2.5 vs 2.4; backward-data 11.1 vs 4.5, 6.1 vs 3.2, 3.9 vs
//   2.9; backward-weights 8.8 vs 3.5, 6.9 vs 2.7, 8.1 vs 3.0;
// - backward-weights with 16 output pixels or fewer: 512 -> 512 3x3 at 4x4 37.0 vs 17.8 (Winograd), 256 -> 512 3x3/2
//   29.8 vs 23.4;
// - everywhere else bf16 wins or ties: 64 -> 64 3x3 at 32x32 forward 13.9 vs 16.8, backward-data 13.8 vs 15.9,
//   backward-weights 12.4 vs 16.7 (Winograd); 128 -> 256 3x3/2 backward-data 10.9 vs 18.0, backward-weights 16.8 vs
//   19.8; 512 -> 512 at 4x4 backward-data 18.5 vs 17.4.
// "bf16" keeps every pass in bf16.
Precision pass_precision(const ConvParams& p, Pass pass) {
  const Precision now = compute_precision();
  if (now != Precision::bf16 || convBf16Backward.value == "bf16") return now;
  const bool strided1x1 = p.KH * p.KW == 1 && (p.strideH > 1 || p.strideW > 1);
  const bool stem = is_stem(p);
  bool f32 = false;
  switch (pass) {
    case Pass::fwd: f32 = stem || strided1x1; break;
    case Pass::bwdData: f32 = strided1x1; break;
    case Pass::bwdWeights: f32 = stem || strided1x1 || p.OH * p.OW <= 16; break;
  }
  return f32 ? Precision::f32 : now;
}

}  // namespace

std::string conv_impl(Pass pass, const ConvParams& p) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  const Geom g = geom(p);
  const bool blocked = convLayout.value == "blocked";
  // the precision the pass itself runs in: a pass may run in f32 in a bf16 session (pass_precision)
  const ScopedPrecision scoped(pass_precision(p, pass));
  const Alg alg = conv_alg(p);
  switch (pass) {
    case Pass::fwd:
      return with_alg(alg, [&](Alg a) { return fwd_pd(g, blocked, false, types_of(Pass::fwd), a); }).impl_info_str();
    case Pass::bwdData: return with_alg(alg, [&](Alg a) { return bwd_data_pd(g, blocked, a); }).impl_info_str();
    case Pass::bwdWeights:
      return with_alg(alg, [&](Alg a) { return bwd_weights_pd(g, blocked, false, a); }).impl_info_str();
  }
  fail("convImpl", "unknown pass " + std::to_string(int(pass)));
}

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
int64_t activation_block() { return convLayout.value == "blocked" ? preferred_block() : 0; }
std::string activation_layout() {
  const int64_t b = activation_block();
  return b == 0 ? "plain" : "nChw" + std::to_string(b) + "c";
}

bool conv2d_forward(Act out, Act x, const float* w, const float* bias, const ConvParams& p, bool xBlocked,
                    bool outMayBlock) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  check_blocked("conv2d", "x", xBlocked, p.C);
  check_bf16("conv2d", "x", x, xBlocked);
  const bool blocked = convLayout.value == "blocked";
  outMayBlock = outMayBlock && blocked && activation_block() > 0 && p.O % activation_block() == 0;
  if (out.bf16 && !outMayBlock)
    fail("conv2d", "out is in bf16 storage, which needs the activation block layout (" + activation_layout() +
                       ") and output channels in multiples of its block, got " + std::to_string(p.O));
  if (p.N * p.O * p.OH * p.OW == 0) return out.bf16;
  const ScopedPrecision pass(pass_precision(p, Pass::fwd));
  FwdEntry& e = fwdCache.get(conv_key("fwd", p, bias, xBlocked + 2 * outMayBlock + 4 * x.bf16 + 8 * out.bf16), [&] {
    const Geom g = geom(p);
    // a bf16 pass writing a bf16-stored output writes bf16 itself (as autocast's conv does): the reorder to the block
    // layout then moves half the bytes, and the values are the ones a reorder from f32 would round to
    Types t = types_of(Pass::fwd);
    if (out.bf16 && t.src == dt::bf16) t.dst = dt::bf16;
    const auto pd = with_alg(conv_alg(p), [&](Alg a) { return fwd_pd(g, blocked, bias, t, a); });
    FwdEntry e;
    e.dstBlocked = out.bf16 || (outMayBlock && block_output(pd.dst_desc(), g.dst));
    const Mds u = user_mds(g, xBlocked, e.dstBlocked, x.bf16, out.bf16);
    e.prim = convolution_forward(pd);
    e.src = make_port(u.src, pd.src_desc(), true, 0);
    e.wei = make_port(u.wei, pd.weights_desc(), true, 1);
    e.dst = make_port(u.dst, pd.dst_desc(), false, 2);
    if (bias) e.bias = memory(u.bias, engine(), nullptr);
    return e;
  });
  port_in(e.src, x.data);
  port_in(e.wei, w);
  port_out_bind(e.dst, out.data);
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

bool conv2d_backward_data(float* gx, const float* gy, const float* w, const ConvParams& p, bool gyBlocked,
                          bool gxMayBlock) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  const ScopedPrecision pass(pass_precision(p, Pass::bwdData));
  check_blocked("conv2d_backward_data", "gy", gyBlocked, p.O);
  if (p.N * p.C * p.H * p.W == 0) return false;
  if (p.O * p.OH * p.OW == 0 || p.KH * p.KW == 0) {
    std::memset(gx, 0, size_t(p.N * p.C * p.H * p.W) * sizeof(float));
    return false;
  }
  const bool blocked = convLayout.value == "blocked";
  gxMayBlock = gxMayBlock && blocked && activation_block() > 0 && p.C % activation_block() == 0;
  BwdDataEntry& e = bwdDataCache.get(conv_key("bwd_data", p, false, gyBlocked + 2 * gxMayBlock), [&] {
    const Geom g = geom(p);
    const auto pd = with_alg(conv_alg(p), [&](Alg a) { return bwd_data_pd(g, blocked, a); });
    BwdDataEntry e;
    e.diffSrcBlocked = gxMayBlock && block_output(pd.diff_src_desc(), g.src);
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

void conv2d_backward_weight(float* gw, float* gb, const float* gy, Act x, const ConvParams& p, bool gyBlocked,
                            bool xBlocked) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  const ScopedPrecision pass(pass_precision(p, Pass::bwdWeights));
  check_blocked("conv2d_backward_weight", "gy", gyBlocked, p.O);
  check_blocked("conv2d_backward_weight", "x", xBlocked, p.C);
  check_bf16("conv2d_backward_weight", "x", x, xBlocked);
  const int64_t wSize = p.O * (p.groups ? p.C / p.groups : 0) * p.KH * p.KW;
  if (wSize == 0) return;
  if (p.N * p.OH * p.OW == 0) {
    std::memset(gw, 0, size_t(wSize) * sizeof(float));
    if (gb) std::memset(gb, 0, size_t(p.O) * sizeof(float));
    return;
  }
  const bool blocked = convLayout.value == "blocked";
  BwdWeightsEntry& e = bwdWeightsCache.get(conv_key("bwd_weights", p, gb, xBlocked + 2 * gyBlocked + 4 * x.bf16), [&] {
    const Geom g = geom(p);
    const Mds u = user_mds(g, xBlocked, gyBlocked, x.bf16);
    const auto pd = with_alg(conv_alg(p), [&](Alg a) { return bwd_weights_pd(g, blocked, gb, a); });
    BwdWeightsEntry e;
    e.prim = convolution_backward_weights(pd);
    e.src = make_port(u.src, pd.src_desc(), true, 0);
    e.diffWei = make_port(u.wei, pd.diff_weights_desc(), false, 1);
    e.diffDst = make_port(u.dst, pd.diff_dst_desc(), true, 2);
    if (gb) e.diffBias = memory(u.bias, engine(), nullptr);
    return e;
  });
  port_in(e.src, x.data);
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

double bench_conv(Pass pass, const ConvParams& p, const std::string& layout, int iters) {
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
  if (pass == Pass::fwd) {
    const auto pd = fwd_pd(g, blocked, false);
    prim = convolution_forward(pd);
    arg(DNNL_ARG_SRC, pd.src_desc(), u.src, true);
    arg(DNNL_ARG_WEIGHTS, pd.weights_desc(), u.wei, true);
    arg(DNNL_ARG_DST, pd.dst_desc(), u.dst, false);
  } else if (pass == Pass::bwdData) {
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
