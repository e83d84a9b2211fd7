// Elementwise, reduction, strided-copy and indexing kernels: OpenMP loops, generic over dtype.
//
// Legend:
//   n                       element count of a flat buffer
//   shape, *Strides         broadcast layout: element strides of each operand laid over the output shape
//                           (0 on broadcast dims); the output of binary/where is contiguous
//   [outer, r, inner]       reduce/argReduce view of x; out is [outer, inner]
//   [outer, dim, inner]     indexing view; idxDim (gather/scatterAdd) or n (indexSelect/indexAdd) index count

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels.h"

namespace selfsup {

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::u8: return "uint8";
  }
  return "?";
}

namespace {

/** Calls f(T{}) with T the C++ type of dt. */
template <class F>
void dispatch(DType dt, F f) {
  switch (dt) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}

/** Float math type for T: float for float32, double for everything else. */
template <class T> using Math = std::conditional_t<std::is_same_v<T, float>, float, double>;

// ---- broadcast layouts ----

/**
 * A shape with one stride vector per operand, simplified: size-1 dims dropped and adjacent dims merged where
 * every operand is contiguous across them. A contiguous same-shape op becomes one dim.
 */
struct Layout {
  Dims shape;
  std::vector<Dims> strides;  // [operand][dim]
  int64_t rows() const {
    int64_t r = 1;
    for (size_t d = 0; d + 1 < shape.size(); d++) r *= shape[d];
    return r;
  }
  int64_t inner() const { return shape.back(); }
};

Layout coalesce(const Dims& shape, const std::vector<const Dims*>& strides) {
  Layout L;
  L.strides.resize(strides.size());
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (!L.shape.empty()) {
      bool merge = true;
      for (size_t k = 0; k < strides.size(); k++)
        if (L.strides[k].back() != (*strides[k])[d] * shape[d]) merge = false;
      if (merge) {
        L.shape.back() *= shape[d];
        for (size_t k = 0; k < strides.size(); k++) L.strides[k].back() = (*strides[k])[d];
        continue;
      }
    }
    L.shape.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); k++) L.strides[k].push_back((*strides[k])[d]);
  }
  if (L.shape.empty()) {  // a scalar
    L.shape.push_back(1);
    for (auto& s : L.strides) s.push_back(0);
  }
  return L;
}

Dims contiguous_strides(const Dims& shape) {
  Dims s(shape.size());
  int64_t acc = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

int64_t numel(const Dims& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

/** Checks that offset + sum(i * strides) stays inside [0, len) for every index i over shape (shape non-empty). */
void check_extent(const char* kernel, const char* what, int64_t len, int64_t offset, const Dims& shape,
                  const Dims& strides) {
  if (strides.size() != shape.size())
    fail(kernel, std::string(what) + " has " + std::to_string(strides.size()) + " strides for a " +
                     std::to_string(shape.size()) + "-D shape");
  int64_t lo = offset, hi = offset;
  for (size_t d = 0; d < shape.size(); d++) {
    const int64_t span = (shape[d] - 1) * strides[d];
    if (span > 0) hi += span; else lo += span;
  }
  if (lo < 0 || hi >= len)
    fail(kernel, std::string(what) + " strides reach element " + std::to_string(lo < 0 ? lo : hi) +
                     " of a buffer with " + std::to_string(len) + " elements");
}

/** Walks the rows (all dims but the last) of a Layout, tracking one offset per operand. */
template <int K>
struct RowWalker {
  const Layout& L;
  int64_t idx[32] = {0};
  int64_t off[K] = {0};
  explicit RowWalker(const Layout& layout, int64_t row, const int64_t* base) : L(layout) {
    for (int k = 0; k < K; k++) off[k] = base[k];
    const int nd = int(L.shape.size());
    for (int d = nd - 2; d >= 0; d--) {
      idx[d] = row % L.shape[d];
      row /= L.shape[d];
      for (int k = 0; k < K; k++) off[k] += idx[d] * L.strides[k][d];
    }
  }
  void next() {
    for (int d = int(L.shape.size()) - 2; d >= 0; d--) {
      idx[d]++;
      for (int k = 0; k < K; k++) off[k] += L.strides[k][d];
      if (idx[d] < L.shape[d]) return;
      for (int k = 0; k < K; k++) off[k] -= L.strides[k][d] * L.shape[d];
      idx[d] = 0;
    }
  }
};

/**
 * Runs f(offsets, innerStrides, count) over every row of L, in parallel. f sees each element once; where there are
 * fewer rows than threads can share evenly (a contiguous tensor coalesces into a single row), rows are cut into
 * pieces of at least kPiece elements, so f may get a part of a row (its offsets moved to the part's start).
 */
template <int K, class F>
void for_rows(const Layout& L, const int64_t* base, F f) {
  if (L.shape.size() > 30) fail("strided", "more than 30 non-mergeable dims");
  const int64_t rows = L.rows(), inner = L.inner();
  int64_t st[K];
  for (int k = 0; k < K; k++) st[k] = L.strides[k].back();
  constexpr int64_t kPiece = 16384;  // elements; a multiple of 64 keeps pieces on whole cache lines of f32 output
  const int64_t threads = omp_get_max_threads(), want = 4 * threads;  // 4 shares per thread: balance when rows are few
  const int64_t pieces =
      threads < 2 || rows >= want ? 1 : std::max<int64_t>(1, std::min((want + rows - 1) / rows, inner / kPiece));
  if (pieces == 1) {
    parallel_range(rows, rows * inner, [&](int64_t b, int64_t e) {
      RowWalker<K> w(L, b, base);
      for (int64_t r = b; r < e; r++) {
        f(w.off, st, inner);
        w.next();
      }
    });
    return;
  }
  const int64_t piece = ((inner + pieces - 1) / pieces + 63) & ~int64_t(63);
  parallel_range(rows * pieces, rows * inner, [&](int64_t b, int64_t e) {
    int64_t r = b / pieces;
    RowWalker<K> w(L, r, base);
    for (int64_t t = b; t < e; t++) {
      for (; r < t / pieces; r++) w.next();
      const int64_t start = (t % pieces) * piece, n = std::min(piece, inner - start);
      if (n <= 0) continue;
      int64_t off[K];
      for (int k = 0; k < K; k++) off[k] = w.off[k] + start * st[k];
      f(off, st, n);
    }
  });
}

// ---- binary op functors ----
template <class T> inline T safe_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;  // integer division by zero would raise SIGFPE
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return T(0u - uint32_t(a));  // INT_MIN / -1 overflows
    }
    return a / b;
  } else {
    return a / b;
  }
}
template <class T> inline bool isnan_(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v; else return false;
}

template <BinaryOp OP, class T>
inline auto apply(T a, T b) {
  if constexpr (OP == BinaryOp::add) return T(a + b);
  else if constexpr (OP == BinaryOp::sub) return T(a - b);
  else if constexpr (OP == BinaryOp::mul) return T(a * b);
  else if constexpr (OP == BinaryOp::div) return safe_div(a, b);
  else if constexpr (OP == BinaryOp::pow) return T(std::pow(Math<T>(a), Math<T>(b)));
  else if constexpr (OP == BinaryOp::maximum) return isnan_(a) ? a : isnan_(b) ? b : (a > b ? a : b);
  else if constexpr (OP == BinaryOp::minimum) return isnan_(a) ? a : isnan_(b) ? b : (a < b ? a : b);
  else if constexpr (OP == BinaryOp::eq) return a == b;
  else if constexpr (OP == BinaryOp::ne) return a != b;
  else if constexpr (OP == BinaryOp::lt) return a < b;
  else if constexpr (OP == BinaryOp::le) return a <= b;
  else if constexpr (OP == BinaryOp::gt) return a > b;
  else return a >= b;
}

template <BinaryOp OP, class T, class U>
void binary_run(U* out, const T* a, const T* b, const Layout& L) {
  const int64_t base[3] = {0, 0, 0};
  for_rows<3>(L, base, [&](const int64_t* off, const int64_t* st, int64_t n) {
    U* o = out + off[0];
    const T* x = a + off[1];
    const T* y = b + off[2];
    const int64_t sa = st[1], sb = st[2];
    // out's inner stride is always 1; the common cases get loops the compiler vectorises.
    if (sa == 1 && sb == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; i++) o[i] = U(apply<OP>(x[i], y[i]));
    } else if (sa == 1 && sb == 0) {
      const T s = y[0];
#pragma omp simd
      for (int64_t i = 0; i < n; i++) o[i] = U(apply<OP>(x[i], s));
    } else if (sa == 0 && sb == 1) {
      const T s = x[0];
#pragma omp simd
      for (int64_t i = 0; i < n; i++) o[i] = U(apply<OP>(s, y[i]));
    } else {
      for (int64_t i = 0; i < n; i++) o[i] = U(apply<OP>(x[i * sa], y[i * sb]));
    }
  });
}

template <class T, class U>
void binary_typed(BinaryOp op, U* out, const T* a, const T* b, const Layout& L) {
  switch (op) {
#define CASE(name) case BinaryOp::name: binary_run<BinaryOp::name, T, U>(out, a, b, L); break;
    CASE(add) CASE(sub) CASE(mul) CASE(div) CASE(pow) CASE(maximum) CASE(minimum)
    CASE(eq) CASE(ne) CASE(lt) CASE(le) CASE(gt) CASE(ge)
#undef CASE
  }
}

// ---- unary ----
template <class T, class F>
void map1(T* out, const T* x, int64_t n, F f) {
  parallel_range(n, n, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; i++) out[i] = T(f(Math<T>(x[i])));
  });
}

template <class T>
void unary_typed(UnaryOp op, T* out, const T* x, int64_t n, double p0d, double p1d) {
  using M = Math<T>;
  const M p0 = M(p0d), p1 = M(p1d);
  const M half = M(0.5), one = M(1), zero = M(0), rsqrt2 = M(0.70710678118654752440);
  switch (op) {
    case UnaryOp::neg: map1(out, x, n, [](M v) { return -v; }); break;
    case UnaryOp::exp: map1(out, x, n, [](M v) { return std::exp(v); }); break;
    case UnaryOp::log: map1(out, x, n, [](M v) { return std::log(v); }); break;
    case UnaryOp::sqrt: map1(out, x, n, [](M v) { return std::sqrt(v); }); break;
    case UnaryOp::rsqrt: map1(out, x, n, [=](M v) { return one / std::sqrt(v); }); break;
    case UnaryOp::abs: map1(out, x, n, [](M v) { return std::abs(v); }); break;
    case UnaryOp::sign: map1(out, x, n, [=](M v) { return v > zero ? one : v < zero ? -one : v; }); break;
    case UnaryOp::square: map1(out, x, n, [](M v) { return v * v; }); break;
    case UnaryOp::reciprocal: map1(out, x, n, [=](M v) { return one / v; }); break;
    case UnaryOp::relu: map1(out, x, n, [=](M v) { return v > zero ? v : (v != v ? v : zero); }); break;
    case UnaryOp::gelu: map1(out, x, n, [=](M v) { return half * v * (one + std::erf(v * rsqrt2)); }); break;
    case UnaryOp::sigmoid: map1(out, x, n, [=](M v) { return one / (one + std::exp(-v)); }); break;
    case UnaryOp::tanh: map1(out, x, n, [](M v) { return std::tanh(v); }); break;
    case UnaryOp::erf: map1(out, x, n, [](M v) { return std::erf(v); }); break;
    case UnaryOp::addScalar: map1(out, x, n, [=](M v) { return v + p0; }); break;
    case UnaryOp::mulScalar: map1(out, x, n, [=](M v) { return v * p0; }); break;
    case UnaryOp::powScalar:
      if (p0 == M(2)) map1(out, x, n, [](M v) { return v * v; });
      else if (p0 == M(1)) map1(out, x, n, [](M v) { return v; });
      else map1(out, x, n, [=](M v) { return std::pow(v, p0); });
      break;
    case UnaryOp::rsubScalar: map1(out, x, n, [=](M v) { return p0 - v; }); break;
    case UnaryOp::rdivScalar: map1(out, x, n, [=](M v) { return p0 / v; }); break;
    case UnaryOp::clamp: map1(out, x, n, [=](M v) { return std::min(std::max(v, p0), p1); }); break;
    case UnaryOp::gtScalar: map1(out, x, n, [=](M v) { return v > p0 ? one : zero; }); break;
  }
}

/**
 * Float -> int conversion that truncates toward zero and wraps modulo 2^bits like a JS typed-array store
 * (NaN -> 0), so it matches the reference backend and never hits C++'s undefined out-of-range conversion.
 */
template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (!(std::abs(v) < From(9.2e18))) return To(0);  // NaN, infinities, beyond int64
    return To(int64_t(v));
  } else {
    return To(v);
  }
}

// ---- oneDNN eltwise for float32 transcendentals ----
// gcc does not vectorise expf/erff/tanhf without -ffast-math; oneDNN's jit eltwise does (gelu 0.1 -> 0.8 Gelem/s).
// Not log: oneDNN's log is off by ~3e-6 absolute near 1, too coarse for log-probabilities.
// Used only above kEltwiseMin elements, where the primitive call cost (a few microseconds) is amortised.

constexpr int64_t kEltwiseMin = 4096;

struct EltwiseEntry {
  dnnl::primitive prim;
  dnnl::memory a, b, c;  // forward: src, dst; backward: src, diff_dst, diff_src
};
PrimitiveCache<EltwiseEntry> eltwiseCache;

bool eltwise_alg(UnaryOp op, double p0, dnnl::algorithm& alg, float& alpha, float& beta) {
  using A = dnnl::algorithm;
  alpha = 0.f;
  beta = 0.f;
  switch (op) {
    case UnaryOp::exp: alg = A::eltwise_exp; return true;
    case UnaryOp::sqrt: alg = A::eltwise_sqrt; return true;
    case UnaryOp::tanh: alg = A::eltwise_tanh; return true;
    case UnaryOp::gelu: alg = A::eltwise_gelu_erf; return true;
    case UnaryOp::sigmoid: alg = A::eltwise_logistic; return true;
    case UnaryOp::rsqrt: alg = A::eltwise_pow; alpha = 1.f; beta = -0.5f; return true;
    case UnaryOp::powScalar:
      if (p0 == 2.0) return false;  // x*x in our loop is exact
      alg = A::eltwise_pow; alpha = 1.f; beta = float(p0); return true;
    default: return false;
  }
}

/** out = op(x) through oneDNN; false when the op has no eltwise algorithm. */
bool eltwise_forward(UnaryOp op, float* out, const float* x, int64_t n, double p0) {
  dnnl::algorithm alg;
  float alpha, beta;
  if (!eltwise_alg(op, p0, alg, alpha, beta)) return false;
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  EltwiseEntry& e = eltwiseCache.get(key("eltwise", int(alg), n, double(alpha), double(beta)), [&] {
    const dnnl::memory::desc md({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
    EltwiseEntry e;
    e.prim = dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, alg, md, alpha, beta), engine()));
    e.a = dnnl::memory(md, engine(), nullptr);
    e.b = dnnl::memory(md, engine(), nullptr);
    return e;
  });
  e.a.set_data_handle(const_cast<float*>(x));
  e.b.set_data_handle(out);
  e.prim.execute(stream(), {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_DST, e.b}});
  stream().wait();
  return true;
}

/** gx = gy * gelu'(x) through oneDNN's exact-erf gelu backward. */
void eltwise_gelu_backward(float* gx, const float* gy, const float* x, int64_t n) {
  const std::lock_guard<std::mutex> lock(onednn_mutex());
  EltwiseEntry& e = eltwiseCache.get(key("eltwise_bwd_gelu", n), [&] {
    const dnnl::memory::desc md({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
    const auto alg = dnnl::algorithm::eltwise_gelu_erf;
    const dnnl::eltwise_forward::primitive_desc hint(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, md), engine());
    EltwiseEntry e;
    e.prim = dnnl::eltwise_backward(
        dnnl::eltwise_backward::primitive_desc(dnnl::eltwise_backward::desc(alg, md, md), engine(), hint));
    e.a = dnnl::memory(md, engine(), nullptr);
    e.b = dnnl::memory(md, engine(), nullptr);
    e.c = dnnl::memory(md, engine(), nullptr);
    return e;
  });
  e.a.set_data_handle(const_cast<float*>(x));
  e.b.set_data_handle(const_cast<float*>(gy));
  e.c.set_data_handle(gx);
  e.prim.execute(stream(), {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_DIFF_DST, e.b}, {DNNL_ARG_DIFF_SRC, e.c}});
  stream().wait();
}

}  // namespace

// ---- fill / cast ----

void fill(const Buf& out, double value) {
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T v = convert<T>(value);
    parallel_range(out.size, out.size, [&](int64_t b, int64_t e) { std::fill(o + b, o + e, v); });
  });
}

void cast(const Buf& out, const Buf& x) {
  if (out.size != x.size)
    fail("cast", "out has " + std::to_string(out.size) + " elements, x has " + std::to_string(x.size));
  dispatch(out.dtype, [&](auto to) {
    dispatch(x.dtype, [&](auto from) {
      using To = decltype(to);
      using From = decltype(from);
      To* o = out.as<To>();
      const From* s = x.as<From>();
      parallel_range(x.size, x.size, [&](int64_t b, int64_t e) {
#pragma omp simd
        for (int64_t i = b; i < e; i++) o[i] = convert<To>(s[i]);
      });
    });
  });
}

// ---- unary ----

void unary(UnaryOp op, const Buf& out, const Buf& x, double p0, double p1) {
  if (out.dtype != x.dtype) fail("unary", std::string("out is ") + dtype_name(out.dtype) + ", x is " + dtype_name(x.dtype));
  if (out.size != x.size)
    fail("unary", "out has " + std::to_string(out.size) + " elements, x has " + std::to_string(x.size));
  if (x.dtype == DType::f32 && x.size >= kEltwiseMin && eltwise_forward(op, out.as<float>(), x.as<float>(), x.size, p0))
    return;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    unary_typed<T>(op, out.as<T>(), x.as<T>(), x.size, p0, p1);
  });
}

void unary_grad(UnaryGradOp op, const Buf& gx, const Buf& gy, const Buf& x, const Buf& y) {
  const int64_t n = gx.size;
  if (n > 0 && !y.data && (op == UnaryGradOp::sigmoid || op == UnaryGradOp::tanh)) fail("unaryGrad", "y is required");
  if (gy.size != n || x.size != n || (y.data && y.size != n))
    fail("unaryGrad", "gx, gy, x, y must have the same length (" + std::to_string(n) + ")");
  if (gy.dtype != gx.dtype || x.dtype != gx.dtype || y.dtype != gx.dtype)
    fail("unaryGrad", "gx, gy, x, y must share one float dtype");
  if (op == UnaryGradOp::gelu && gx.dtype == DType::f32 && n >= kEltwiseMin) {
    eltwise_gelu_backward(gx.as<float>(), gy.as<float>(), x.as<float>(), n);
    return;
  }
  auto run = [&](auto t) {
    using T = decltype(t);
    T* g = gx.as<T>();
    const T* dy = gy.as<T>();
    const T* xs = x.as<T>();
    const T* ys = y.as<T>();
    const T one = 1, zero = 0, half = 0.5, rsqrt2 = T(0.70710678118654752440), invsqrt2pi = T(0.39894228040143267794);
    parallel_range(n, n, [&](int64_t b, int64_t e) {
      switch (op) {
        case UnaryGradOp::relu:
#pragma omp simd
          // dy is loaded unconditionally: a conditional load compiles to a branch, which mispredicts half the
          // time on post-batch-norm activations (7x slower than this vectorised select)
          for (int64_t i = b; i < e; i++) {
            const T d = dy[i];
            g[i] = xs[i] > zero ? d : zero;
          }
          break;
        case UnaryGradOp::gelu:
          // d/dx [x * Phi(x)] = Phi(x) + x * phi(x)
          for (int64_t i = b; i < e; i++) {
            const T v = xs[i];
            g[i] = dy[i] * (half * (one + std::erf(v * rsqrt2)) + v * invsqrt2pi * std::exp(-half * v * v));
          }
          break;
        case UnaryGradOp::sigmoid:
#pragma omp simd
          for (int64_t i = b; i < e; i++) g[i] = dy[i] * ys[i] * (one - ys[i]);
          break;
        case UnaryGradOp::tanh:
#pragma omp simd
          for (int64_t i = b; i < e; i++) g[i] = dy[i] * (one - ys[i] * ys[i]);
          break;
      }
    });
  };
  if (gx.dtype == DType::f32) run(float{});
  else if (gx.dtype == DType::f64) run(double{});
  else fail("unaryGrad", std::string("expected a float dtype, got ") + dtype_name(gx.dtype));
}

// ---- binary / where ----

void binary(BinaryOp op, const Buf& out, const Buf& a, const Buf& b, const Dims& shape, const Dims& aStrides,
            const Dims& bStrides) {
  const int64_t n = numel(shape);
  if (out.size != n) fail("binary", "out has " + std::to_string(out.size) + " elements, shape holds " + std::to_string(n));
  if (a.dtype != b.dtype)
    fail("binary", std::string("a is ") + dtype_name(a.dtype) + ", b is " + dtype_name(b.dtype));
  if (is_comparison(op) ? (out.dtype != a.dtype && out.dtype != DType::u8) : out.dtype != a.dtype)
    fail("binary", std::string("out dtype ") + dtype_name(out.dtype) + " does not fit inputs of " + dtype_name(a.dtype));
  if (n == 0) return;
  check_extent("binary", "a", a.size, 0, shape, aStrides);
  check_extent("binary", "b", b.size, 0, shape, bStrides);
  const Dims outStrides = contiguous_strides(shape);
  const Layout L = coalesce(shape, {&outStrides, &aStrides, &bStrides});
  dispatch(a.dtype, [&](auto t) {
    using T = decltype(t);
    if (out.dtype == a.dtype) binary_typed<T, T>(op, out.as<T>(), a.as<T>(), b.as<T>(), L);
    else binary_typed<T, uint8_t>(op, out.as<uint8_t>(), a.as<T>(), b.as<T>(), L);
  });
}

void where(const Buf& out, const Buf& cond, const Buf& a, const Buf& b, const Dims& shape, const Dims& condStrides,
           const Dims& aStrides, const Dims& bStrides) {
  const int64_t n = numel(shape);
  if (out.size != n) fail("where", "out has " + std::to_string(out.size) + " elements, shape holds " + std::to_string(n));
  if (cond.dtype != DType::u8) fail("where", std::string("cond must be uint8, got ") + dtype_name(cond.dtype));
  if (a.dtype != out.dtype || b.dtype != out.dtype) fail("where", "out, a and b must share one dtype");
  if (n == 0) return;
  check_extent("where", "cond", cond.size, 0, shape, condStrides);
  check_extent("where", "a", a.size, 0, shape, aStrides);
  check_extent("where", "b", b.size, 0, shape, bStrides);
  const Dims outStrides = contiguous_strides(shape);
  const Layout L = coalesce(shape, {&outStrides, &condStrides, &aStrides, &bStrides});
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const uint8_t* c = cond.as<uint8_t>();
    const T* x = a.as<T>();
    const T* y = b.as<T>();
    const int64_t base[4] = {0, 0, 0, 0};
    for_rows<4>(L, base, [&](const int64_t* off, const int64_t* st, int64_t m) {
      T* oo = o + off[0];
      const uint8_t* cc = c + off[1];
      const T* xx = x + off[2];
      const T* yy = y + off[3];
      if (st[1] == 1 && st[2] == 1 && st[3] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < m; i++) {
          const T a = xx[i], b = yy[i];  // both loaded: a select vectorises, a conditional load branches
          oo[i] = cc[i] ? a : b;
        }
      } else {
        for (int64_t i = 0; i < m; i++) oo[i] = cc[i * st[1]] ? xx[i * st[2]] : yy[i * st[3]];
      }
    });
  });
}

// ---- reductions ----

void reduce(ReduceOp op, const Buf& out, const Buf& x, int64_t outer, int64_t r, int64_t inner) {
  if (x.size != outer * r * inner)
    fail("reduce", "x has " + std::to_string(x.size) + " elements, expected " + std::to_string(outer * r * inner));
  if (out.size != outer * inner)
    fail("reduce", "out has " + std::to_string(out.size) + " elements, expected " + std::to_string(outer * inner));
  if (out.dtype != x.dtype) fail("reduce", "out and x must share one dtype");
  if (out.size == 0) return;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    if (r == 0) {  // the identity of the op: 0 for sum, -inf/+inf for float max/min (0 for ints, like the reference)
      T v = 0;
      if constexpr (std::is_floating_point_v<T>)
        if (op != ReduceOp::sum) v = op == ReduceOp::max ? -std::numeric_limits<T>::infinity()
                                                         : std::numeric_limits<T>::infinity();
      std::fill(out.as<T>(), out.as<T>() + out.size, v);
      return;
    }
    // Sums accumulate in double (float32 sums over a batch lose digits otherwise); max/min stay in T.
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    T* o = out.as<T>();
    const T* s = x.as<T>();
    const int64_t total = outer * r * inner;
    if (inner == 1) {
      parallel_range(outer, total, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) {
          const T* row = s + i * r;
          if (op == ReduceOp::sum) {
            Acc acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < r; j++) acc += Acc(row[j]);
            o[i] = T(acc);
          } else {
            T m = row[0];
            for (int64_t j = 1; j < r; j++) m = op == ReduceOp::max ? apply<BinaryOp::maximum>(m, row[j])
                                                                    : apply<BinaryOp::minimum>(m, row[j]);
            o[i] = m;
          }
        }
      });
      return;
    }
    // inner > 1: walk r rows of `inner` contiguous values, accumulating into a chunk of the output.
    constexpr int64_t kChunk = 512;
    // One short output row summed over many rows (a Linear's bias gradient, [rows, O] -> [O]): one chunk would leave
    // the other threads idle, so the rows are split instead, each thread summing its share into its own partial.
    const int nt = omp_get_max_threads();
    if (op == ReduceOp::sum && outer == 1 && inner <= kChunk && nt > 1 && total >= kParallelThreshold && r >= 4 * nt) {
      split_column_sums<Acc>(o, s, r, inner, nt, [](T v) { return Acc(v); });
      return;
    }
    const int64_t chunks = (inner + kChunk - 1) / kChunk;
    parallel_range(outer * chunks, total, [&](int64_t b, int64_t e) {
      Acc acc[kChunk];
      for (int64_t t2 = b; t2 < e; t2++) {
        const int64_t i = t2 / chunks, c0 = (t2 % chunks) * kChunk, m = std::min(kChunk, inner - c0);
        const T* base = s + i * r * inner + c0;
        T* dst = o + i * inner + c0;
        if (op == ReduceOp::sum) {
          for (int64_t k = 0; k < m; k++) acc[k] = 0;
          for (int64_t j = 0; j < r; j++) {
            const T* row = base + j * inner;
#pragma omp simd
            for (int64_t k = 0; k < m; k++) acc[k] += Acc(row[k]);
          }
          for (int64_t k = 0; k < m; k++) dst[k] = T(acc[k]);
        } else {
          for (int64_t k = 0; k < m; k++) dst[k] = base[k];
          for (int64_t j = 1; j < r; j++) {
            const T* row = base + j * inner;
            if (op == ReduceOp::max)
              for (int64_t k = 0; k < m; k++) dst[k] = apply<BinaryOp::maximum>(dst[k], row[k]);
            else
              for (int64_t k = 0; k < m; k++) dst[k] = apply<BinaryOp::minimum>(dst[k], row[k]);
          }
        }
      }
    });
  });
}

void arg_reduce(bool isMax, const Buf& out, const Buf& x, int64_t outer, int64_t r, int64_t inner) {
  if (x.size != outer * r * inner)
    fail("argReduce", "x has " + std::to_string(x.size) + " elements, expected " + std::to_string(outer * r * inner));
  if (out.size != outer * inner)
    fail("argReduce", "out has " + std::to_string(out.size) + " elements, expected " + std::to_string(outer * inner));
  if (out.dtype != DType::i32) fail("argReduce", "out must be int32");
  if (out.size == 0) return;
  if (r == 0) fail("argReduce", "argmax/argmin over an empty axis");
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    int32_t* o = out.as<int32_t>();
    const T* s = x.as<T>();
    parallel_range(outer * inner, outer * r * inner, [&](int64_t b, int64_t e) {
      for (int64_t t2 = b; t2 < e; t2++) {
        const int64_t i = t2 / inner, k = t2 % inner;
        const T* p = s + i * r * inner + k;
        T best = p[0];
        int32_t bi = 0;
        // Strict comparison keeps the first index on ties; a NaN wins and stays (PyTorch semantics).
        for (int64_t j = 1; j < r && !isnan_(best); j++) {
          const T v = p[j * inner];
          if (isnan_(v) || (isMax ? v > best : v < best)) {
            best = v;
            bi = int32_t(j);
          }
        }
        o[t2] = bi;
      }
    });
  });
}

// ---- strided copy ----

void strided(const Buf& out, int64_t outOffset, const Dims& outStrides, const Buf& x, int64_t xOffset,
             const Dims& xStrides, const Dims& shape, bool accumulate) {
  if (out.dtype != x.dtype) fail("strided", std::string("out is ") + dtype_name(out.dtype) + ", x is " + dtype_name(x.dtype));
  if (numel(shape) == 0) return;
  check_extent("strided", "out", out.size, outOffset, shape, outStrides);
  check_extent("strided", "x", x.size, xOffset, shape, xStrides);
  const Layout L = coalesce(shape, {&outStrides, &xStrides});
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T* s = x.as<T>();
    const int64_t base[2] = {outOffset, xOffset};
    auto row = [&](const int64_t* off, const int64_t* st, int64_t n) {
      T* oo = o + off[0];
      const T* xx = s + off[1];
      if (accumulate) {
        for (int64_t i = 0; i < n; i++) oo[i * st[0]] += xx[i * st[1]];
      } else if (st[0] == 1 && st[1] == 1) {
        std::memcpy(oo, xx, size_t(n) * sizeof(T));
      } else {
        for (int64_t i = 0; i < n; i++) oo[i * st[0]] = xx[i * st[1]];
      }
    };
    if (accumulate) {
      // Several indices may land on one out element: stay on one thread.
      RowWalker<2> w(L, 0, base);
      const int64_t st[2] = {L.strides[0].back(), L.strides[1].back()};
      for (int64_t r = 0, rows = L.rows(); r < rows; r++) {
        row(w.off, st, L.inner());
        w.next();
      }
    } else {
      for_rows<2>(L, base, row);
    }
  });
}

// ---- indexing ----

namespace {
void check_indices(const char* kernel, const int32_t* idx, int64_t count, int64_t dim) {
  for (int64_t i = 0; i < count; i++)
    if (idx[i] < 0 || idx[i] >= dim)
      fail(kernel, "index " + std::to_string(idx[i]) + " out of range for a dimension of size " + std::to_string(dim));
}
void check_same(const char* kernel, const Buf& a, const Buf& b) {
  if (a.dtype != b.dtype) fail(kernel, std::string("dtypes differ: ") + dtype_name(a.dtype) + " vs " + dtype_name(b.dtype));
}
}  // namespace

void gather(const Buf& out, const Buf& x, const int32_t* idx, int64_t outer, int64_t dim, int64_t inner,
            int64_t idxDim) {
  check_same("gather", out, x);
  const int64_t n = outer * idxDim * inner;
  if (n == 0) return;
  check_indices("gather", idx, n, dim);
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T* s = x.as<T>();
    parallel_range(outer * idxDim, n, [&](int64_t b, int64_t e) {
      for (int64_t oj = b; oj < e; oj++) {
        const int64_t ob = oj / idxDim;
        const int32_t* ix = idx + oj * inner;
        T* dst = o + oj * inner;
        const T* src = s + ob * dim * inner;
        for (int64_t i = 0; i < inner; i++) dst[i] = src[int64_t(ix[i]) * inner + i];
      }
    });
  });
}

void scatter_add(const Buf& out, const int32_t* idx, const Buf& src, int64_t outer, int64_t dim, int64_t inner,
                 int64_t idxDim) {
  check_same("scatterAdd", out, src);
  const int64_t n = outer * idxDim * inner;
  if (n == 0) return;
  check_indices("scatterAdd", idx, n, dim);
  dispatch(src.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T* s = src.as<T>();
    // Distinct (o, i) pairs never collide, so split over outer (or inner when outer is 1).
    if (outer >= 2) {
      parallel_range(outer, n, [&](int64_t b, int64_t e) {
        for (int64_t ob = b; ob < e; ob++)
          for (int64_t j = 0; j < idxDim; j++) {
            const int64_t q = (ob * idxDim + j) * inner;
            for (int64_t i = 0; i < inner; i++) o[(ob * dim + idx[q + i]) * inner + i] += s[q + i];
          }
      });
    } else {
      parallel_range(inner, n, [&](int64_t b, int64_t e) {
        for (int64_t j = 0; j < idxDim; j++)
          for (int64_t i = b; i < e; i++) o[int64_t(idx[j * inner + i]) * inner + i] += s[j * inner + i];
      });
    }
  });
}

void index_select(const Buf& out, const Buf& x, const int32_t* idx, int64_t outer, int64_t dim, int64_t inner,
                  int64_t n) {
  check_same("indexSelect", out, x);
  if (outer * n * inner == 0) return;
  check_indices("indexSelect", idx, n, dim);
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T* s = x.as<T>();
    parallel_range(outer * n, outer * n * inner, [&](int64_t b, int64_t e) {
      for (int64_t oj = b; oj < e; oj++) {
        const int64_t ob = oj / n, j = oj % n;
        std::memcpy(o + oj * inner, s + (ob * dim + idx[j]) * inner, size_t(inner) * sizeof(T));
      }
    });
  });
}

void index_add(const Buf& out, const int32_t* idx, const Buf& src, int64_t outer, int64_t dim, int64_t inner,
               int64_t n) {
  check_same("indexAdd", out, src);
  if (outer * n * inner == 0) return;
  check_indices("indexAdd", idx, n, dim);
  dispatch(src.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T* s = src.as<T>();
    auto rows = [&](int64_t ob, int64_t i0, int64_t i1) {
      for (int64_t j = 0; j < n; j++) {
        T* dst = o + (ob * dim + idx[j]) * inner;
        const T* from = s + (ob * n + j) * inner;
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) dst[i] += from[i];
      }
    };
    if (outer >= 2) parallel_range(outer, outer * n * inner, [&](int64_t b, int64_t e) {
        for (int64_t ob = b; ob < e; ob++) rows(ob, 0, inner);
      });
    else parallel_range(inner, n * inner, [&](int64_t b, int64_t e) { rows(0, b, e); });
  });
}

}  // namespace selfsup
