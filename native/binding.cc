// The N-API surface of the native backend: unpacks typed arrays and sizes, checks lengths, calls the kernels.
// Arguments follow src/backend/kernels.ts one for one (test/backend/signatures.test.ts checks the names and positions). Every C++ error becomes a JS Error "[kernel] ...".
//
// Legend: see the kernel files; here only buffer lengths are checked against the sizes passed in.

#include <napi.h>

#include <cmath>
#include <unordered_map>

#include "kernels.h"
#include "memory.h"

namespace selfsup {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}
std::mutex& onednn_mutex() {
  static std::mutex m;
  return m;
}

namespace {

// ---- argument unpacking ----

struct Args {
  const Napi::CallbackInfo& info;
  const char* k;  // kernel name for messages

  Napi::Env env() const { return info.Env(); }

  Buf buf(int i, const char* name) const {
    const Napi::Value v = info[i];
    if (!v.IsTypedArray()) fail(k, std::string(name) + " must be a typed array");
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value ab;
    size_t offset;
    NAPI_THROW_IF_FAILED(env(), napi_get_typedarray_info(env(), v, &type, &length, &data, &ab, &offset), Buf());
    Buf b;
    b.data = data;
    b.size = int64_t(length);
    switch (type) {
      case napi_float32_array: b.dtype = DType::f32; break;
      case napi_float64_array: b.dtype = DType::f64; break;
      case napi_int32_array: b.dtype = DType::i32; break;
      case napi_uint8_array: b.dtype = DType::u8; break;
      default: fail(k, std::string(name) + " must be a Float32Array, Float64Array, Int32Array or Uint8Array");
    }
    return b;
  }
  bool isNull(int i) const { return info[i].IsNull() || info[i].IsUndefined(); }

  /** A buffer of `expected` elements of dtype dt. */
  Buf typed(int i, const char* name, DType dt, int64_t expected) const {
    const Buf b = buf(i, name);
    if (b.dtype != dt)
      fail(k, std::string(name) + " must be " + dtype_name(dt) + " (the native backend computes this kernel in " +
                  dtype_name(dt) + "), got " + dtype_name(b.dtype));
    if (expected >= 0 && b.size != expected)
      fail(k, std::string(name) + " has " + std::to_string(b.size) + " elements, expected " + std::to_string(expected));
    return b;
  }
  float* f32(int i, const char* name, int64_t expected) const { return typed(i, name, DType::f32, expected).as<float>(); }
  float* f32opt(int i, const char* name, int64_t expected) const { return isNull(i) ? nullptr : f32(i, name, expected); }
  /** bf16 storage: a Uint8Array of 2 bytes per value, 2-byte aligned. */
  uint16_t* bf16(int i, const char* name, int64_t expected) const {
    const Buf b = typed(i, name, DType::u8, 2 * expected);
    if (reinterpret_cast<uintptr_t>(b.data) % 2 != 0) fail(k, std::string(name) + " is not 2-byte aligned (bf16 storage)");
    return b.as<uint16_t>();
  }
  /** An activation: a Float32Array of `expected` values, or bf16 storage (a Uint8Array of 2 bytes per value). */
  Act act(int i, const char* name, int64_t expected) const {
    const Buf b = buf(i, name);
    if (b.dtype == DType::u8) return Act(bf16(i, name, expected), true);
    return Act(f32(i, name, expected));
  }
  int32_t* i32(int i, const char* name, int64_t expected) const {
    return typed(i, name, DType::i32, expected).as<int32_t>();
  }
  Buf any(int i, const char* name, int64_t expected) const {
    const Buf b = buf(i, name);
    if (expected >= 0 && b.size != expected)
      fail(k, std::string(name) + " has " + std::to_string(b.size) + " elements, expected " + std::to_string(expected));
    return b;
  }

  int64_t size(int i, const char* name) const {
    if (!info[i].IsNumber()) fail(k, std::string(name) + " must be a number");
    const double d = info[i].As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 9.0e15) fail(k, std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
    return int64_t(d);
  }
  int64_t integer(const Napi::Value& v, const char* name) const {
    if (!v.IsNumber()) fail(k, std::string(name) + " must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (d != std::floor(d) || std::abs(d) > 9.0e15) fail(k, std::string(name) + " must be an integer");
    return int64_t(d);
  }
  double number(int i) const { return info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : 0.0; }
  bool flag(int i) const { return info[i].ToBoolean().Value(); }
  std::string str(int i, const char* name) const {
    if (!info[i].IsString()) fail(k, std::string(name) + " must be a string");
    return info[i].As<Napi::String>().Utf8Value();
  }
  Dims dims(int i, const char* name) const {
    if (!info[i].IsArray()) fail(k, std::string(name) + " must be an array of integers");
    const Napi::Array a = info[i].As<Napi::Array>();
    Dims d(a.Length());
    for (uint32_t j = 0; j < a.Length(); j++) d[j] = integer(a.Get(j), name);
    return d;
  }
  int64_t field(const Napi::Object& o, const char* name) const {
    const int64_t v = integer(o.Get(name), name);
    if (v < 0) fail(k, std::string(name) + " must be >= 0, got " + std::to_string(v));
    return v;
  }

  ConvParams conv(int i) const {
    if (!info[i].IsObject()) fail(k, "params must be an object");
    const Napi::Object o = info[i].As<Napi::Object>();
    ConvParams p{field(o, "N"),       field(o, "C"),       field(o, "H"),         field(o, "W"),
                 field(o, "O"),       field(o, "KH"),      field(o, "KW"),        field(o, "OH"),
                 field(o, "OW"),      field(o, "strideH"), field(o, "strideW"),   field(o, "padH"),
                 field(o, "padW"),    field(o, "dilationH"), field(o, "dilationW"), field(o, "groups")};
    if (p.strideH < 1 || p.strideW < 1 || p.dilationH < 1 || p.dilationW < 1 || p.groups < 1)
      fail(k, "strides, dilations and groups must be >= 1");
    if (p.C % p.groups || p.O % p.groups)
      fail(k, "C=" + std::to_string(p.C) + " and O=" + std::to_string(p.O) + " must be divisible by groups=" +
                  std::to_string(p.groups));
    const int64_t oh = (p.H + 2 * p.padH - p.dilationH * (p.KH - 1) - 1) / p.strideH + 1;
    const int64_t ow = (p.W + 2 * p.padW - p.dilationW * (p.KW - 1) - 1) / p.strideW + 1;
    if (p.OH != std::max<int64_t>(oh, 0) || p.OW != std::max<int64_t>(ow, 0))
      fail(k, "output size " + std::to_string(p.OH) + "x" + std::to_string(p.OW) + " does not match the input, expected " +
                  std::to_string(oh) + "x" + std::to_string(ow));
    return p;
  }
  PoolParams pool(int i) const {
    if (!info[i].IsObject()) fail(k, "params must be an object");
    const Napi::Object o = info[i].As<Napi::Object>();
    PoolParams p{field(o, "N"),  field(o, "C"),       field(o, "H"),       field(o, "W"),    field(o, "OH"),
                 field(o, "OW"), field(o, "KH"),      field(o, "KW"),      field(o, "strideH"),
                 field(o, "strideW"), field(o, "padH"), field(o, "padW"),
                 o.Get("countIncludePad").ToBoolean().Value()};
    if (p.strideH < 1 || p.strideW < 1 || p.KH < 1 || p.KW < 1) fail(k, "kernel size and strides must be >= 1");
    return p;
  }
};

template <class E>
E lookup(const Args& a, int i, const char* what, const std::unordered_map<std::string, E>& table) {
  const std::string s = a.str(i, what);
  const auto it = table.find(s);
  if (it == table.end()) fail(a.k, std::string("unknown ") + what + " '" + s + "'");
  return it->second;
}

const std::unordered_map<std::string, UnaryOp> kUnary{
    {"neg", UnaryOp::neg}, {"exp", UnaryOp::exp}, {"log", UnaryOp::log}, {"sqrt", UnaryOp::sqrt},
    {"rsqrt", UnaryOp::rsqrt}, {"abs", UnaryOp::abs}, {"sign", UnaryOp::sign}, {"square", UnaryOp::square},
    {"reciprocal", UnaryOp::reciprocal}, {"relu", UnaryOp::relu}, {"gelu", UnaryOp::gelu},
    {"sigmoid", UnaryOp::sigmoid}, {"tanh", UnaryOp::tanh}, {"erf", UnaryOp::erf}, {"addScalar", UnaryOp::addScalar},
    {"mulScalar", UnaryOp::mulScalar}, {"powScalar", UnaryOp::powScalar}, {"rsubScalar", UnaryOp::rsubScalar},
    {"rdivScalar", UnaryOp::rdivScalar}, {"clamp", UnaryOp::clamp}, {"gtScalar", UnaryOp::gtScalar}};
const std::unordered_map<std::string, UnaryGradOp> kUnaryGrad{
    {"relu", UnaryGradOp::relu}, {"gelu", UnaryGradOp::gelu}, {"sigmoid", UnaryGradOp::sigmoid},
    {"tanh", UnaryGradOp::tanh}};
const std::unordered_map<std::string, BinaryOp> kBinary{
    {"add", BinaryOp::add}, {"sub", BinaryOp::sub}, {"mul", BinaryOp::mul}, {"div", BinaryOp::div},
    {"pow", BinaryOp::pow}, {"maximum", BinaryOp::maximum}, {"minimum", BinaryOp::minimum}, {"eq", BinaryOp::eq},
    {"ne", BinaryOp::ne}, {"lt", BinaryOp::lt}, {"le", BinaryOp::le}, {"gt", BinaryOp::gt}, {"ge", BinaryOp::ge}};
const std::unordered_map<std::string, ReduceOp> kReduce{
    {"sum", ReduceOp::sum}, {"max", ReduceOp::max}, {"min", ReduceOp::min}};

DType parse_dtype(const Args& a, int i) {
  const std::string s = a.str(i, "dtype");
  if (s == "float32") return DType::f32;
  if (s == "float64") return DType::f64;
  if (s == "int32") return DType::i32;
  if (s == "uint8") return DType::u8;
  fail(a.k, "unknown dtype '" + s + "'");
}
size_t elem_size(DType dt) { return dt == DType::f64 ? 8 : dt == DType::u8 ? 1 : 4; }

// ---- memory ----

Napi::Value js_alloc(const Args& a) {
  const DType dt = parse_dtype(a, 0);
  const int64_t n = a.size(1, "size");
  const bool zero = a.flag(2);
  const Napi::Env env = a.env();
  Napi::ArrayBuffer ab;
  if (n == 0) {
    ab = Napi::ArrayBuffer::New(env, 0);
  } else {
    const size_t bytes = size_t(n) * elem_size(dt);
    size_t osBytes = 0;
    Block* block = mem_allocate(bytes, zero, &osBytes);
    if (!block) fail("alloc", "out of memory allocating " + std::to_string(bytes) + " bytes");
    // V8 counts every new ArrayBuffer's bytes as external memory and runs a full mark-compact each time that count
    // has grown 64 MiB past the last one: a training step's forward pass, which holds GiBs of activations, ran one
    // GC every couple of tensors (~5 ms each, a third of the allocation-heavy step). Those tensors are freed
    // deterministically, so the count is cancelled here and only memory newly taken from the OS is reported: an
    // array dropped without free() makes its size miss the cache, which reports growth and still lets the GC
    // collect leaks before the process balloons. free() and the finalizer undo the cancellation.
    Napi::MemoryManagement::AdjustExternalMemory(env, int64_t(osBytes) - int64_t(bytes));
    ab = Napi::ArrayBuffer::New(
        env, block->ptr, bytes,
        [](Napi::Env e, void*, Block* b) {
          // V8 uncounted this buffer's bytes when it swept it; restore our cancellation (once, if free() did not)
          const int64_t uncancel = b->freed ? 0 : int64_t(b->reqBytes);
          const size_t osBytes = mem_forget(b);
          if (uncancel || osBytes) Napi::MemoryManagement::AdjustExternalMemory(e, uncancel - int64_t(osBytes));
        },
        block);
  }
  switch (dt) {
    case DType::f32: return Napi::Float32Array::New(env, size_t(n), ab, 0);
    case DType::f64: return Napi::Float64Array::New(env, size_t(n), ab, 0);
    case DType::i32: return Napi::Int32Array::New(env, size_t(n), ab, 0);
    case DType::u8: return Napi::Uint8Array::New(env, size_t(n), ab, 0);
  }
  return env.Undefined();
}

Napi::Value js_free(const Args& a) {
  if (!a.info[0].IsTypedArray()) fail("free", "expected a typed array");
  Napi::ArrayBuffer ab = a.info[0].As<Napi::TypedArray>().ArrayBuffer();
  void* data = ab.ByteLength() ? ab.Data() : nullptr;
  if (!data) return a.env().Undefined();  // empty, or already freed
  Block* block = mem_find(data);
  if (!block) return a.env().Undefined();  // not ours (a plain JS array): the GC owns it
  const int64_t reqBytes = int64_t(block->reqBytes);
  ab.Detach();  // V8 uncounts the buffer's bytes here: restore the cancellation made in alloc
  const size_t osBytes = mem_release(block);
  Napi::MemoryManagement::AdjustExternalMemory(a.env(), reqBytes - int64_t(osBytes));
  return a.env().Undefined();
}

Napi::Value js_memory_stats(const Args& a) {
  const MemoryStats s = mem_stats();
  Napi::Object o = Napi::Object::New(a.env());
  o.Set("liveBytes", double(s.liveBytes));
  o.Set("cachedBytes", double(s.cachedBytes));
  o.Set("liveBlocks", double(s.liveBlocks));
  o.Set("cachedBlocks", double(s.cachedBlocks));
  return o;
}

// ---- elementwise ----

void js_fill(const Args& a) { fill(a.buf(0, "out"), a.number(1)); }
void js_cast(const Args& a) { cast(a.buf(0, "out"), a.buf(1, "x")); }
void js_unary(const Args& a) {
  unary(lookup(a, 0, "unary op", kUnary), a.buf(1, "out"), a.buf(2, "x"), a.number(3), a.number(4));
}
void js_unary_grad(const Args& a) {
  const Buf gx = a.buf(1, "gx");
  unary_grad(lookup(a, 0, "unaryGrad op", kUnaryGrad), gx, a.buf(2, "gy"), a.buf(3, "x"),
             a.isNull(4) ? Buf{nullptr, 0, gx.dtype} : a.buf(4, "y"));
}
void js_binary(const Args& a) {
  binary(lookup(a, 0, "binary op", kBinary), a.buf(1, "out"), a.buf(2, "a"), a.buf(3, "b"), a.dims(4, "shape"),
         a.dims(5, "aStrides"), a.dims(6, "bStrides"));
}
void js_where(const Args& a) {
  where(a.buf(0, "out"), a.buf(1, "cond"), a.buf(2, "a"), a.buf(3, "b"), a.dims(4, "shape"), a.dims(5, "condStrides"),
        a.dims(6, "aStrides"), a.dims(7, "bStrides"));
}
void js_reduce(const Args& a) {
  reduce(lookup(a, 0, "reduce op", kReduce), a.buf(1, "out"), a.buf(2, "x"), a.size(3, "outer"), a.size(4, "r"),
         a.size(5, "inner"));
}
void js_arg_reduce(const Args& a) {
  const std::string op = a.str(0, "op");
  if (op != "max" && op != "min") fail(a.k, "op must be 'max' or 'min', got '" + op + "'");
  arg_reduce(op == "max", a.buf(1, "out"), a.buf(2, "x"), a.size(3, "outer"), a.size(4, "r"), a.size(5, "inner"));
}
void js_strided(const Args& a) {
  strided(a.buf(0, "out"), a.size(1, "outOffset"), a.dims(2, "outStrides"), a.buf(3, "x"), a.size(4, "xOffset"),
          a.dims(5, "xStrides"), a.dims(6, "shape"), a.flag(7));
}

// ---- indexing ----

void js_gather(const Args& a) {
  const int64_t outer = a.size(3, "outer"), dim = a.size(4, "dim"), inner = a.size(5, "inner"),
                idxDim = a.size(6, "idxDim");
  gather(a.any(0, "out", outer * idxDim * inner), a.any(1, "x", outer * dim * inner),
         a.i32(2, "idx", outer * idxDim * inner), outer, dim, inner, idxDim);
}
void js_scatter_add(const Args& a) {
  const int64_t outer = a.size(3, "outer"), dim = a.size(4, "dim"), inner = a.size(5, "inner"),
                idxDim = a.size(6, "idxDim");
  scatter_add(a.any(0, "out", outer * dim * inner), a.i32(1, "idx", outer * idxDim * inner),
              a.any(2, "src", outer * idxDim * inner), outer, dim, inner, idxDim);
}
void js_index_select(const Args& a) {
  const int64_t outer = a.size(3, "outer"), dim = a.size(4, "dim"), inner = a.size(5, "inner"), n = a.size(6, "n");
  index_select(a.any(0, "out", outer * n * inner), a.any(1, "x", outer * dim * inner), a.i32(2, "idx", n), outer, dim,
               inner, n);
}
void js_index_add(const Args& a) {
  const int64_t outer = a.size(3, "outer"), dim = a.size(4, "dim"), inner = a.size(5, "inner"), n = a.size(6, "n");
  index_add(a.any(0, "out", outer * dim * inner), a.i32(1, "idx", n), a.any(2, "src", outer * n * inner), outer, dim,
            inner, n);
}

// ---- matmul ----

void js_matmul(const Args& a) {
  const int64_t batch = a.size(4, "batch"), M = a.size(5, "M"), N = a.size(6, "N"), K = a.size(7, "K");
  const bool transA = a.flag(8), transB = a.flag(9);
  const int64_t aBS = a.size(10, "aBatchStride"), bBS = a.size(11, "bBatchStride");
  // a and b may be larger than one batch item times the strides (views into bigger buffers): check the reach only.
  const int64_t aNeed = batch ? (aBS ? (batch - 1) * aBS : 0) + M * K : 0;
  const int64_t bNeed = batch ? (bBS ? (batch - 1) * bBS : 0) + K * N : 0;
  float* out = a.f32(0, "out", batch * M * N);
  const Buf A = a.typed(1, "a", DType::f32, -1), B = a.typed(2, "b", DType::f32, -1);
  if (A.size < aNeed) fail(a.k, "a has " + std::to_string(A.size) + " elements, expected at least " + std::to_string(aNeed));
  if (B.size < bNeed) fail(a.k, "b has " + std::to_string(B.size) + " elements, expected at least " + std::to_string(bNeed));
  matmul_forward(out, A.as<float>(), B.as<float>(), a.f32opt(3, "bias", N), batch, M, N, K, transA, transB, aBS, bBS);
}
void js_linear_backward(const Args& a) {
  const int64_t rows = a.size(6, "rows"), I = a.size(7, "I"), O = a.size(8, "O");
  linear_backward(a.f32opt(0, "gx", rows * I), a.f32opt(1, "gw", O * I), a.f32opt(2, "gb", O), a.f32(3, "gy", rows * O),
                  a.f32(4, "x", rows * I), a.f32(5, "w", O * I), rows, I, O);
}
void js_linear_backward_scaled(const Args& a) {
  const int64_t rows = a.size(7, "rows"), I = a.size(8, "I"), O = a.size(9, "O");
  float* gx = a.f32opt(0, "gx", rows * I);
  const float* gxScale = a.f32opt(3, "gxScale", rows * I);
  if (gx && !gxScale) fail(a.k, "gxScale is null but gx is requested");
  linear_backward_scaled(gx, a.f32opt(1, "gw", O * I), a.f32opt(2, "gb", O), gxScale, a.f32(4, "gy", rows * O),
                         a.f32(5, "x", rows * I), a.f32(6, "w", O * I), rows, I, O);
}
void js_linear_gelu(const Args& a) {
  const int64_t rows = a.size(5, "rows"), I = a.size(6, "I"), O = a.size(7, "O");
  linear_gelu_forward(a.f32(0, "out", rows * O), a.f32(1, "deriv", rows * O), a.f32(2, "x", rows * I),
                      a.f32(3, "w", O * I), a.f32opt(4, "bias", O), rows, I, O);
}

// ---- optimizers (one call per parameter group) ----

/** A JS array of Float32Arrays (nulls allowed where allowNull), each of n[t] elements; fills n when it is empty. */
std::vector<float*> f32_list(const Args& a, int i, const char* name, std::vector<int64_t>& n, bool allowNull = false) {
  if (!a.info[i].IsArray()) fail(a.k, std::string(name) + " must be an array of Float32Arrays");
  const Napi::Array arr = a.info[i].As<Napi::Array>();
  const bool fill = n.empty();
  if (!fill && int64_t(arr.Length()) != int64_t(n.size()))
    fail(a.k, std::string(name) + " has " + std::to_string(arr.Length()) + " tensors, expected " + std::to_string(n.size()));
  std::vector<float*> out(arr.Length(), nullptr);
  for (uint32_t t = 0; t < arr.Length(); t++) {
    const Napi::Value v = arr.Get(t);
    if (allowNull && (v.IsNull() || v.IsUndefined())) continue;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      fail(a.k, std::string(name) + "[" + std::to_string(t) + "] must be a Float32Array");
    const Napi::Float32Array f = v.As<Napi::Float32Array>();
    if (fill) n.push_back(int64_t(f.ElementLength()));
    else if (int64_t(f.ElementLength()) != n[t])
      fail(a.k, std::string(name) + "[" + std::to_string(t) + "] has " + std::to_string(f.ElementLength()) +
                    " elements, expected " + std::to_string(n[t]));
    out[t] = const_cast<float*>(f.Data());
  }
  return out;
}

std::vector<const float*> const_list(const std::vector<float*>& v) { return {v.begin(), v.end()}; }

std::vector<uint8_t> u8_list(const Args& a, int i, const char* name, size_t T) {
  const Buf b = a.typed(i, name, DType::u8, int64_t(T));
  return {b.as<uint8_t>(), b.as<uint8_t>() + T};
}

std::vector<double> f64_list(const Args& a, int i, const char* name, size_t T) {
  const Buf b = a.typed(i, name, DType::f64, int64_t(T));
  return {b.as<double>(), b.as<double>() + T};
}

void js_sgd_step(const Args& a) {
  std::vector<int64_t> n;
  const auto w = f32_list(a, 0, "params", n);
  const auto g = f32_list(a, 1, "grads", n);
  const auto b = f32_list(a, 2, "momentumBuffers", n, true);
  sgd_step(w, const_list(g), b, u8_list(a, 3, "first", n.size()), n, a.number(4), a.number(5), a.number(6),
           a.number(7), a.flag(8));
}
void js_adamw_step(const Args& a) {
  std::vector<int64_t> n;
  const auto w = f32_list(a, 0, "params", n);
  const auto g = f32_list(a, 1, "grads", n);
  const auto m1 = f32_list(a, 2, "expAvg", n);
  const auto m2 = f32_list(a, 3, "expAvgSq", n);
  adamw_step(w, const_list(g), m1, m2, f64_list(a, 4, "stepSize", n.size()), f64_list(a, 5, "bc2Sqrt", n.size()), n,
             a.number(6), a.number(7), a.number(8), a.number(9));
}
void js_lars_step(const Args& a) {
  std::vector<int64_t> n;
  const auto w = f32_list(a, 0, "params", n);
  const auto g = f32_list(a, 1, "grads", n);
  const auto mu = f32_list(a, 2, "mu", n);
  lars_step(w, const_list(g), mu, u8_list(a, 3, "adapt", n.size()), n, a.number(4), a.number(5), a.number(6),
            a.number(7));
}
void js_ema_update(const Args& a) {
  std::vector<int64_t> n;
  const auto k = f32_list(a, 0, "targets", n);
  const auto q = f32_list(a, 1, "sources", n);
  ema_update(k, const_list(q), n, a.number(2));
}
void js_linear_add(const Args& a) {
  const int64_t rows = a.size(5, "rows"), I = a.size(6, "I"), O = a.size(7, "O");
  linear_add_forward(a.f32(0, "out", rows * O), a.f32(1, "x", rows * I), a.f32(2, "residual", rows * O),
                     a.f32(3, "w", O * I), a.f32opt(4, "bias", O), rows, I, O);
}
void js_mlp_forward_bf16(const Args& a) {
  const int64_t rows = a.size(9, "rows"), I = a.size(10, "I"), Hd = a.size(11, "Hd"), O = a.size(12, "O");
  mlp_forward_bf16(a.f32(0, "out", rows * O), a.bf16(1, "hidden", rows * Hd), a.bf16(2, "deriv", rows * Hd),
                   a.f32(3, "x", rows * I), a.f32opt(4, "residual", rows * O), a.f32(5, "w1", Hd * I),
                   a.f32opt(6, "b1", Hd), a.f32(7, "w2", O * Hd), a.f32opt(8, "b2", O), rows, I, Hd, O);
}
void js_mlp_backward_bf16(const Args& a) {
  const int64_t rows = a.size(11, "rows"), I = a.size(12, "I"), Hd = a.size(13, "Hd"), O = a.size(14, "O");
  mlp_backward_bf16(a.f32opt(0, "gx", rows * I), a.f32opt(1, "gw1", Hd * I), a.f32opt(2, "gb1", Hd),
                    a.f32opt(3, "gw2", O * Hd), a.f32opt(4, "gb2", O), a.f32(5, "gy", rows * O),
                    a.bf16(6, "hidden", rows * Hd), a.bf16(7, "deriv", rows * Hd), a.f32(8, "x", rows * I),
                    a.f32(9, "w1", Hd * I), a.f32(10, "w2", O * Hd), rows, I, Hd, O);
}

// ---- conv ----

int64_t conv_w_size(const ConvParams& p) { return p.O * (p.C / p.groups) * p.KH * p.KW; }

// Trailing flags (absent: false) say which activations are in the activation block layout (nChw16c / nChw8c, see
// activation_block); the kernels that may write it return whether they did.
Napi::Value js_conv2d(const Args& a) {
  const ConvParams p = a.conv(4);
  return Napi::Boolean::New(a.env(), conv2d_forward(a.act(0, "out", p.N * p.O * p.OH * p.OW),
                                                    a.act(1, "x", p.N * p.C * p.H * p.W),
                                                    a.f32(2, "w", conv_w_size(p)), a.f32opt(3, "bias", p.O), p,
                                                    a.flag(5), a.flag(6)));
}
Napi::Value js_conv2d_backward_data(const Args& a) {
  const ConvParams p = a.conv(3);
  return Napi::Boolean::New(a.env(), conv2d_backward_data(a.f32(0, "gx", p.N * p.C * p.H * p.W),
                                                          a.f32(1, "gy", p.N * p.O * p.OH * p.OW),
                                                          a.f32(2, "w", conv_w_size(p)), p, a.flag(4), a.flag(5)));
}
void js_conv2d_backward_weight(const Args& a) {
  const ConvParams p = a.conv(4);
  conv2d_backward_weight(a.f32(0, "gw", conv_w_size(p)), a.f32opt(1, "gb", p.O), a.f32(2, "gy", p.N * p.O * p.OH * p.OW),
                         a.act(3, "x", p.N * p.C * p.H * p.W), p, a.flag(5), a.flag(6));
}
void js_widen_bf16(const Args& a) {
  const Buf x = a.buf(1, "x");
  const int64_t n = x.size / 2;
  bf16_to_f32(a.f32(0, "out", n), a.bf16(1, "x", n), n);
}
void js_relayout(const Args& a) {
  const int64_t N = a.size(1, "N"), C = a.size(2, "C"), H = a.size(3, "H"), W = a.size(4, "W");
  relayout_blocked(a.f32(0, "buf", N * C * H * W), N, C, H, W, a.flag(5));
}

// ---- norm ----

/** The trailing flag of the batch norm kernels: all activations are in the activation block layout. */
bool bn_blocked(const Args& a, int i, int64_t C) {
  if (!a.flag(i)) return false;
  const int64_t b = activation_block();
  if (b == 0) fail(a.k, "activations are flagged blocked, but no blocked activation layout is in use");
  if (C % b != 0)
    fail(a.k, activation_layout() + " needs channels in multiples of " + std::to_string(b) + ", got " + std::to_string(C));
  return true;
}
/**
 * Batch norm's activations in bf16 storage: all of `names` (the buffers at `at`) are, or none is; only blocked. Returns
 * whether they are.
 */
bool bn_bf16(const Args& a, std::initializer_list<std::pair<int, const char*>> at, bool blocked) {
  int n = 0, total = 0;
  for (const auto& [i, name] : at) {
    if (a.isNull(i)) continue;
    total++;
    n += a.buf(i, name).dtype == DType::u8;
  }
  if (n == 0) return false;
  if (n != total) {
    std::string list;
    for (const auto& [i, name] : at) list += (list.empty() ? "" : ", ") + std::string(name);
    fail(a.k, list + " must all be in bf16 storage or all f32, not a mix");
  }
  if (!blocked) fail(a.k, "activations in bf16 storage must be flagged blocked (the only layout bf16 storage takes)");
  return true;
}
void js_batchnorm_forward(const Args& a) {
  const int64_t N = a.size(6, "N"), C = a.size(7, "C"), HW = a.size(8, "HW");
  const bool blocked = bn_blocked(a, 10, C);
  if (bn_bf16(a, {{0, "out"}, {3, "x"}}, blocked)) {
    batchnorm_forward_blocked(a.bf16(0, "out", N * C * HW), a.f32(1, "mean", C), a.f32(2, "invstd", C),
                              a.bf16(3, "x", N * C * HW), a.f32opt(4, "gamma", C), a.f32opt(5, "beta", C), N, C, HW,
                              a.number(9), activation_block());
    return;
  }
  float *out = a.f32(0, "out", N * C * HW), *mean = a.f32(1, "mean", C), *invstd = a.f32(2, "invstd", C);
  const float *x = a.f32(3, "x", N * C * HW), *gamma = a.f32opt(4, "gamma", C), *beta = a.f32opt(5, "beta", C);
  if (blocked)
    batchnorm_forward_blocked(out, mean, invstd, x, gamma, beta, N, C, HW, a.number(9), activation_block());
  else
    batchnorm_forward(out, mean, invstd, x, gamma, beta, N, C, HW, a.number(9));
}
void js_batchnorm_inference(const Args& a) {
  const int64_t N = a.size(6, "N"), C = a.size(7, "C"), HW = a.size(8, "HW");
  const bool blocked = bn_blocked(a, 10, C);
  if (bn_bf16(a, {{0, "out"}, {1, "x"}}, blocked)) {
    batchnorm_inference_blocked(a.bf16(0, "out", N * C * HW), a.bf16(1, "x", N * C * HW), a.f32(2, "mean", C),
                                a.f32(3, "variance", C), a.f32opt(4, "gamma", C), a.f32opt(5, "beta", C), N, C, HW,
                                a.number(9), activation_block());
    return;
  }
  float* out = a.f32(0, "out", N * C * HW);
  const float *x = a.f32(1, "x", N * C * HW), *mean = a.f32(2, "mean", C), *variance = a.f32(3, "variance", C);
  const float *gamma = a.f32opt(4, "gamma", C), *beta = a.f32opt(5, "beta", C);
  if (blocked)
    batchnorm_inference_blocked(out, x, mean, variance, gamma, beta, N, C, HW, a.number(9), activation_block());
  else
    batchnorm_inference(out, x, mean, variance, gamma, beta, N, C, HW, a.number(9));
}
void js_batchnorm_backward(const Args& a) {
  const int64_t N = a.size(8, "N"), C = a.size(9, "C"), HW = a.size(10, "HW");
  float *gx = a.f32(0, "gx", N * C * HW), *ggamma = a.f32opt(1, "ggamma", C), *gbeta = a.f32opt(2, "gbeta", C);
  const float *gy = a.f32(3, "gy", N * C * HW), *mean = a.f32(5, "mean", C);
  const float *invstd = a.f32(6, "invstd", C), *gamma = a.f32opt(7, "gamma", C);
  const bool blocked = bn_blocked(a, 11, C);
  if (bn_bf16(a, {{4, "x"}}, blocked)) {
    batchnorm_backward_blocked(gx, ggamma, gbeta, gy, a.bf16(4, "x", N * C * HW), mean, invstd, gamma, N, C, HW,
                               activation_block());
    return;
  }
  const float* x = a.f32(4, "x", N * C * HW);
  if (blocked)
    batchnorm_backward_blocked(gx, ggamma, gbeta, gy, x, mean, invstd, gamma, N, C, HW, activation_block());
  else
    batchnorm_backward(gx, ggamma, gbeta, gy, x, mean, invstd, gamma, N, C, HW);
}
void js_batchnorm_relu_forward(const Args& a) {
  const int64_t N = a.size(7, "N"), C = a.size(8, "C"), HW = a.size(9, "HW");
  float *mean = a.f32(1, "mean", C), *invstd = a.f32(2, "invstd", C);
  const float *gamma = a.f32opt(5, "gamma", C), *beta = a.f32opt(6, "beta", C);
  const bool blocked = bn_blocked(a, 11, C);
  if (bn_bf16(a, {{0, "out"}, {3, "x"}, {4, "residual"}}, blocked)) {
    batchnorm_relu_forward_blocked(a.bf16(0, "out", N * C * HW), mean, invstd, a.bf16(3, "x", N * C * HW),
                                   a.isNull(4) ? nullptr : a.bf16(4, "residual", N * C * HW), gamma, beta, N, C, HW,
                                   a.number(10), activation_block());
    return;
  }
  float* out = a.f32(0, "out", N * C * HW);
  const float *x = a.f32(3, "x", N * C * HW), *residual = a.f32opt(4, "residual", N * C * HW);
  if (blocked)
    batchnorm_relu_forward_blocked(out, mean, invstd, x, residual, gamma, beta, N, C, HW, a.number(10),
                                   activation_block());
  else
    batchnorm_relu_forward(out, mean, invstd, x, residual, gamma, beta, N, C, HW, a.number(10));
}
void js_batchnorm_relu_backward(const Args& a) {
  const int64_t N = a.size(10, "N"), C = a.size(11, "C"), HW = a.size(12, "HW");
  float *gx = a.f32(0, "gx", N * C * HW), *gresidual = a.f32opt(1, "gresidual", N * C * HW);
  float *ggamma = a.f32opt(2, "ggamma", C), *gbeta = a.f32opt(3, "gbeta", C);
  const float* gy = a.f32(4, "gy", N * C * HW);
  const float *mean = a.f32(7, "mean", C), *invstd = a.f32(8, "invstd", C), *gamma = a.f32opt(9, "gamma", C);
  const bool blocked = bn_blocked(a, 13, C);
  if (bn_bf16(a, {{5, "y"}, {6, "x"}}, blocked)) {
    batchnorm_relu_backward_blocked(gx, gresidual, ggamma, gbeta, gy, a.bf16(5, "y", N * C * HW),
                                    a.bf16(6, "x", N * C * HW), mean, invstd, gamma, N, C, HW, activation_block());
    return;
  }
  const float *y = a.f32(5, "y", N * C * HW), *x = a.f32(6, "x", N * C * HW);
  if (blocked)
    batchnorm_relu_backward_blocked(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW,
                                    activation_block());
  else
    batchnorm_relu_backward(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW);
}
void js_layernorm_forward(const Args& a) {
  const int64_t rows = a.size(6, "rows"), D = a.size(7, "D");
  layernorm_forward(a.f32(0, "out", rows * D), a.f32(1, "mean", rows), a.f32(2, "rstd", rows), a.f32(3, "x", rows * D),
                    a.f32opt(4, "gamma", D), a.f32opt(5, "beta", D), rows, D, a.number(8));
}
void js_layernorm_backward(const Args& a) {
  const int64_t rows = a.size(8, "rows"), D = a.size(9, "D");
  layernorm_backward(a.f32(0, "gx", rows * D), a.f32opt(1, "ggamma", D), a.f32opt(2, "gbeta", D),
                     a.f32(3, "gy", rows * D), a.f32(4, "x", rows * D), a.f32(5, "mean", rows), a.f32(6, "rstd", rows),
                     a.f32opt(7, "gamma", D), rows, D);
}

// ---- softmax ----

void js_softmax(const Args& a) {
  const int64_t rows = a.size(2, "rows"), D = a.size(3, "D");
  softmax_forward(a.f32(0, "out", rows * D), a.f32(1, "x", rows * D), rows, D, a.flag(4));
}
void js_softmax_backward(const Args& a) {
  const int64_t rows = a.size(3, "rows"), D = a.size(4, "D");
  softmax_backward(a.f32(0, "gx", rows * D), a.f32(1, "gy", rows * D), a.f32(2, "y", rows * D), rows, D, a.flag(5));
}

// ---- attention ----

void js_attention_forward(const Args& a) {
  const int64_t B = a.size(3, "B"), N = a.size(4, "N"), H = a.size(5, "H"), hd = a.size(6, "hd");
  attention_forward(a.f32(0, "out", B * N * H * hd), a.f32(1, "probs", B * H * N * N), a.f32(2, "qkv", 3 * B * N * H * hd),
                    B, N, H, hd, a.number(7));
}
void js_attention_backward(const Args& a) {
  const int64_t B = a.size(4, "B"), N = a.size(5, "N"), H = a.size(6, "H"), hd = a.size(7, "hd");
  attention_backward(a.f32(0, "gqkv", 3 * B * N * H * hd), a.f32(1, "gout", B * N * H * hd),
                     a.f32(2, "qkv", 3 * B * N * H * hd), a.f32(3, "probs", B * H * N * N), B, N, H, hd, a.number(8));
}

// ---- pool ----

void js_maxpool2d(const Args& a) {
  const PoolParams p = a.pool(3);
  maxpool2d_forward(a.f32(0, "out", p.N * p.C * p.OH * p.OW), a.i32(1, "indices", p.N * p.C * p.OH * p.OW),
                    a.f32(2, "x", p.N * p.C * p.H * p.W), p);
}
void js_maxpool2d_backward(const Args& a) {
  const PoolParams p = a.pool(3);
  maxpool2d_backward(a.f32(0, "gx", p.N * p.C * p.H * p.W), a.f32(1, "gy", p.N * p.C * p.OH * p.OW),
                     a.i32(2, "indices", p.N * p.C * p.OH * p.OW), p);
}
void js_avgpool2d(const Args& a) {
  const PoolParams p = a.pool(2);
  avgpool2d_forward(a.f32(0, "out", p.N * p.C * p.OH * p.OW), a.f32(1, "x", p.N * p.C * p.H * p.W), p);
}
void js_avgpool2d_backward(const Args& a) {
  const PoolParams p = a.pool(2);
  avgpool2d_backward(a.f32(0, "gx", p.N * p.C * p.H * p.W), a.f32(1, "gy", p.N * p.C * p.OH * p.OW), p);
}

// ---- configuration and benchmarks ----

/**
 * convLayout(), convAlgo(), convBf16Backward(): a conv setting (kernels.h); with a name (not null or undefined), sets
 * it first.
 */
Napi::Value js_conv_mode(const Args& a, ConvMode& mode) {
  if (!a.isNull(0)) mode.set(a.k, a.str(0, mode.what));
  return Napi::String::New(a.env(), mode.value);
}

/** The JS names of the conv passes (BenchKind in native.ts). */
const std::unordered_map<std::string, Pass> kConvPass{
    {"conv_fwd", Pass::fwd}, {"conv_bwd_data", Pass::bwdData}, {"conv_bwd_weights", Pass::bwdWeights}};

/** convImpl(kind, params): the oneDNN implementation that pass of a conv with these params runs now. */
Napi::Value js_conv_impl(const Args& a) {
  return Napi::String::New(a.env(), conv_impl(lookup(a, 0, "kind", kConvPass), a.conv(1)));
}

/** benchPrimitive("matmul", {M, N, K}, iters) or benchPrimitive("conv_fwd"|"conv_bwd_data"|"conv_bwd_weights", params, iters, layout). */
Napi::Value js_bench_primitive(const Args& a) {
  const std::string kind = a.str(0, "kind");
  const int iters = int(a.size(2, "iters"));
  if (kind == "matmul") {
    const Napi::Object o = a.info[1].As<Napi::Object>();
    const bool bf16 = !a.isNull(3) && a.str(3, "dtype") == "bf16";
    if (bf16 && !cpu_has_native_bf16()) fail(a.k, "bf16 matmul needs native bf16 (ISA " + cpu_isa_name() + ")");
    return Napi::Number::New(a.env(), bench_matmul(a.field(o, "M"), a.field(o, "N"), a.field(o, "K"), iters, bf16));
  }
  const Pass pass = lookup(a, 0, "kind", kConvPass);
  const std::string layout = a.isNull(3) ? "any" : a.str(3, "layout");
  return Napi::Number::New(a.env(), bench_conv(pass, a.conv(1), layout, iters));
}

/** The widest vector ISA the compiler targeted for our own loops (-march, SELFSUP_MARCH), whatever oneDNN picks. */
const char* compiled_for() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__ARM_FEATURE_SVE)
  return "SVE";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "baseline";
#endif
}

/** The ISA oneDNN dispatches to, in the spelling ONEDNN_MAX_CPU_ISA takes; "unknown" for values newer than 2.6's. */
Napi::Value js_info(const Args& a) {
  Napi::Object o = Napi::Object::New(a.env());
  const dnnl_version_t* v = dnnl_version();
  o.Set("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  o.Set("threads", double(omp_get_max_threads()));
  o.Set("convLayout", convLayout.value);
  o.Set("isa", cpu_isa_name());
  o.Set("compiledFor", compiled_for());
  o.Set("activationLayout", activation_layout());
  o.Set("preferredBlock", double(preferred_block()));
  o.Set("nativeBf16", cpu_has_native_bf16());
  o.Set("precision", compute_precision() == Precision::bf16 ? "bf16" : "fp32");
  return o;
}

Napi::Value js_activation_layout(const Args& a) { return Napi::String::New(a.env(), activation_layout()); }

/** Gets (and with "fp32" or "bf16", sets) the precision conv and matmul multiply in. */
Napi::Value js_precision(const Args& a) {
  if (!a.isNull(0)) {
    const std::string p = a.str(0, "precision");
    if (p != "fp32" && p != "bf16") fail(a.k, "expected 'fp32' or 'bf16', got '" + p + "'");
    const std::lock_guard<std::mutex> lock(onednn_mutex());
    set_compute_precision(p == "bf16" ? Precision::bf16 : Precision::f32);
  }
  return Napi::String::New(a.env(), compute_precision() == Precision::bf16 ? "bf16" : "fp32");
}

// ---- registration ----

template <class F>
void add(Napi::Env env, Napi::Object exports, const char* name, F impl) {
  exports.Set(name, Napi::Function::New(
                        env,
                        [name, impl](const Napi::CallbackInfo& info) -> Napi::Value {
                          const Args args{info, name};
                          try {
                            if constexpr (std::is_void_v<decltype(impl(args))>) {
                              impl(args);
                              return info.Env().Undefined();
                            } else {
                              return impl(args);
                            }
                          } catch (const Napi::Error&) {
                            throw;
                          } catch (const KernelError& e) {
                            throw Napi::Error::New(info.Env(), e.what());
                          } catch (const dnnl::error& e) {
                            throw Napi::Error::New(info.Env(), std::string("[") + name + "] oneDNN: " + e.what());
                          } catch (const std::exception& e) {
                            throw Napi::Error::New(info.Env(), std::string("[") + name + "] " + e.what());
                          }
                        },
                        name));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  add(env, exports, "alloc", js_alloc);
  add(env, exports, "free", js_free);
  add(env, exports, "memoryStats", js_memory_stats);
  add(env, exports, "trimCache", [](const Args& a) {
    const size_t osBytes = mem_trim();
    if (osBytes) Napi::MemoryManagement::AdjustExternalMemory(a.env(), -int64_t(osBytes));
  });
  add(env, exports, "fill", js_fill);
  add(env, exports, "cast", js_cast);
  add(env, exports, "unary", js_unary);
  add(env, exports, "unaryGrad", js_unary_grad);
  add(env, exports, "binary", js_binary);
  add(env, exports, "where", js_where);
  add(env, exports, "reduce", js_reduce);
  add(env, exports, "argReduce", js_arg_reduce);
  add(env, exports, "strided", js_strided);
  add(env, exports, "gather", js_gather);
  add(env, exports, "scatterAdd", js_scatter_add);
  add(env, exports, "indexSelect", js_index_select);
  add(env, exports, "indexAdd", js_index_add);
  add(env, exports, "matmul", js_matmul);
  add(env, exports, "linearBackward", js_linear_backward);
  add(env, exports, "linearBackwardScaled", js_linear_backward_scaled);
  add(env, exports, "linearGelu", js_linear_gelu);
  add(env, exports, "linearAdd", js_linear_add);
  add(env, exports, "mlpForwardBf16", js_mlp_forward_bf16);
  add(env, exports, "mlpBackwardBf16", js_mlp_backward_bf16);
  add(env, exports, "conv2d", js_conv2d);
  add(env, exports, "conv2dBackwardData", js_conv2d_backward_data);
  add(env, exports, "conv2dBackwardWeight", js_conv2d_backward_weight);
  add(env, exports, "relayout", js_relayout);
  add(env, exports, "widenBf16", js_widen_bf16);
  add(env, exports, "batchNormForward", js_batchnorm_forward);
  add(env, exports, "batchNormInference", js_batchnorm_inference);
  add(env, exports, "batchNormBackward", js_batchnorm_backward);
  add(env, exports, "batchNormReluForward", js_batchnorm_relu_forward);
  add(env, exports, "batchNormReluBackward", js_batchnorm_relu_backward);
  add(env, exports, "layerNormForward", js_layernorm_forward);
  add(env, exports, "layerNormBackward", js_layernorm_backward);
  add(env, exports, "softmax", js_softmax);
  add(env, exports, "softmaxBackward", js_softmax_backward);
  add(env, exports, "attentionForward", js_attention_forward);
  add(env, exports, "attentionBackward", js_attention_backward);
  add(env, exports, "maxPool2d", js_maxpool2d);
  add(env, exports, "maxPool2dBackward", js_maxpool2d_backward);
  add(env, exports, "avgPool2d", js_avgpool2d);
  add(env, exports, "avgPool2dBackward", js_avgpool2d_backward);
  add(env, exports, "convLayout", [](const Args& a) { return js_conv_mode(a, convLayout); });
  add(env, exports, "convAlgo", [](const Args& a) { return js_conv_mode(a, convAlgo); });
  add(env, exports, "convImpl", js_conv_impl);
  add(env, exports, "convBf16Backward", [](const Args& a) { return js_conv_mode(a, convBf16Backward); });
  add(env, exports, "activationLayout", js_activation_layout);
  add(env, exports, "benchPrimitive", js_bench_primitive);
  add(env, exports, "info", js_info);
  add(env, exports, "precision", js_precision);
  add(env, exports, "sgdStep", js_sgd_step);
  add(env, exports, "adamwStep", js_adamw_step);
  add(env, exports, "larsStep", js_lars_step);
  add(env, exports, "emaUpdate", js_ema_update);
  return exports;
}

}  // namespace
}  // namespace selfsup

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return selfsup::Init(env, exports); }

NODE_API_MODULE(selfsup_native, InitModule)
