// Shared pieces of the native backend: dtype tags, buffer views, the oneDNN engine/stream, threading helpers.
// Kernel files include only this header; N-API types stay in binding.cc and memory.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

namespace selfsup {

enum class DType { f32, f64, i32, u8 };

/** A typed array seen from C++: data pointer, element count, element type. */
struct Buf {
  void* data = nullptr;
  int64_t size = 0;
  DType dtype = DType::f32;
  template <class T> T* as() const { return static_cast<T*>(data); }
};

/** Thrown by kernels; binding.cc turns it into a JS Error. The message already carries "[kernel] ". */
struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const char* kernel, const std::string& msg) {
  throw KernelError(std::string("[") + kernel + "] " + msg);
}

const char* dtype_name(DType dt);

// One CPU engine and one in-order stream for the whole process.
dnnl::engine& engine();
dnnl::stream& stream();
/**
 * Guards the primitive caches, shared scratch and stream: the addon may be loaded by several worker threads,
 * and each oneDNN-backed kernel holds this for its whole call (uncontended on the main thread: ~20 ns).
 */
std::mutex& onednn_mutex();

/** Cephes' expf polynomial: e^r for |r| <= ln2/2 (~1 ulp), on a float or on a GCC vector of floats. */
template <class V>
inline V exp_poly(V r) {
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.0f;
}

/** exp(x) in float, vectorisable: 2^n * p(r) with r = x - n ln2, |r| <= ln2/2. */
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.33654f), 88.72283f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  const float p = exp_poly(r);
  int32_t bits;
  std::memcpy(&bits, &p, 4);
  bits += int32_t(n) << 23;
  float y;
  std::memcpy(&y, &bits, 4);
  return y;
}

// ---- bf16 storage: the upper 16 bits of the f32 pattern, rounded to nearest even (as oneDNN's reorders round) ----

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/** An activation value as float, whether stored in f32 or as bf16 bits (the kernels templated on storage). */
inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return from_bf16(p[i]); }
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) { p[i] = to_bf16(v); }

/** Below this many elements a loop stays on one thread: fork/join costs more than it saves. */
constexpr int64_t kParallelThreshold = 32768;

/** Splits [0, n) into one contiguous range per thread and calls f(begin, end); serial when work is small. */
template <class F>
inline void parallel_range(int64_t n, int64_t work, F f) {
  if (n <= 0) return;
  if (work < kParallelThreshold || n < 2 || omp_get_max_threads() < 2) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t b = n * t / nt, e = n * (t + 1) / nt;
    if (b < e) f(b, e);
  }
}

/**
 * out[k] = sum over rows j of load(src[j * cols + k]), a row-major [rows, cols] summed down its columns, for one short
 * output row over many rows (a bias gradient), where splitting the columns would leave threads idle: the rows are
 * split into nt contiguous shares, each thread sums its share into its own Acc partial, and the partials are added in
 * thread order, so the result depends on nt but not on timing.
 */
template <class Acc, class T, class Out, class Load>
void split_column_sums(Out* out, const T* src, int64_t rows, int64_t cols, int nt, Load load) {
  std::vector<Acc> part(size_t(nt) * size_t(cols), Acc(0));
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    Acc* acc = part.data() + t * cols;
    for (int64_t j = rows * t / n; j < rows * (t + 1) / n; j++) {
      const T* row = src + j * cols;
#pragma omp simd
      for (int64_t k = 0; k < cols; k++) acc[k] += load(row[k]);
    }
  }
  for (int64_t k = 0; k < cols; k++) {
    Acc v = 0;
    for (int t = 0; t < nt; t++) v += part[size_t(t) * size_t(cols) + size_t(k)];
    out[k] = Out(v);
  }
}

/**
 * Primitives and their memory objects, keyed by a string of shapes and params; built once per key.
 * Bounded: when a model churns through many shapes the whole cache is dropped rather than growing forever.
 */
template <class V>
struct PrimitiveCache {
  std::unordered_map<std::string, std::unique_ptr<V>> entries;
  template <class Make>
  V& get(const std::string& key, Make make) {
    auto it = entries.find(key);
    if (it != entries.end()) return *it->second;
    if (entries.size() >= 1024) entries.clear();
    return *entries.emplace(key, std::make_unique<V>(make())).first->second;
  }
};

/** Joins numbers into a cache key: key("conv", 1, 2) == "conv,1,2,". */
template <class... A>
std::string key(const char* tag, A... a) {
  std::string k(tag);
  k += ',';
  ((k += std::to_string(a), k += ','), ...);
  return k;
}

}  // namespace selfsup
