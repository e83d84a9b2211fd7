// Softmax and log-softmax over the last axis, forward and backward, on oneDNN's softmax_v2 primitives
// (jit-vectorised exp; the backward needs only the forward output y).
//
// Legend: rows = product of the leading dims, D = softmax axis; x, y, gy, gx [rows, D].

#include "kernels.h"

namespace selfsup {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

struct SoftmaxFwdEntry {
  dnnl::softmax_v2_forward prim;
  memory src, dst;
};
struct SoftmaxBwdEntry {
  dnnl::softmax_v2_backward prim;
  memory diffSrc, diffDst, dst;
};
PrimitiveCache<SoftmaxFwdEntry> fwdCache;
PrimitiveCache<SoftmaxBwdEntry> bwdCache;

dnnl::algorithm alg(bool log) { return log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate; }

dnnl::softmax_v2_forward::primitive_desc fwd_pd(const memory::desc& md, bool log) {
  return dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_training, alg(log), md, md, 1), engine());
}

}  // namespace

void softmax_forward(float* out, const float* x, int64_t rows, int64_t D, bool log) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  if (rows * D == 0) return;
  SoftmaxFwdEntry& e = fwdCache.get(key("softmax", rows, D, log), [&] {
    const memory::desc md({rows, D}, dt::f32, tag::ab);
    SoftmaxFwdEntry e;
    e.prim = dnnl::softmax_v2_forward(fwd_pd(md, log));
    e.src = memory(md, engine(), nullptr);
    e.dst = memory(md, engine(), nullptr);
    return e;
  });
  e.src.set_data_handle(const_cast<float*>(x));
  e.dst.set_data_handle(out);
  e.prim.execute(stream(), {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst}});
  stream().wait();
}

void softmax_backward(float* gx, const float* gy, const float* y, int64_t rows, int64_t D, bool log) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  if (rows * D == 0) return;
  SoftmaxBwdEntry& e = bwdCache.get(key("softmax_bwd", rows, D, log), [&] {
    const memory::desc md({rows, D}, dt::f32, tag::ab);
    SoftmaxBwdEntry e;
    e.prim = dnnl::softmax_v2_backward(dnnl::softmax_v2_backward::primitive_desc(
        dnnl::softmax_v2_backward::desc(alg(log), md, md, md, 1), engine(), fwd_pd(md, log)));
    e.diffSrc = memory(md, engine(), nullptr);
    e.diffDst = memory(md, engine(), nullptr);
    e.dst = memory(md, engine(), nullptr);
    return e;
  });
  e.diffSrc.set_data_handle(gx);
  e.diffDst.set_data_handle(const_cast<float*>(gy));
  e.dst.set_data_handle(const_cast<float*>(y));
  e.prim.execute(stream(), {{DNNL_ARG_DIFF_SRC, e.diffSrc}, {DNNL_ARG_DIFF_DST, e.diffDst}, {DNNL_ARG_DST, e.dst}});
  stream().wait();
}

}  // namespace selfsup
