// Reduced precision, autocast-style: conv and matmul may multiply in bf16 (f32 accumulate, f32 outputs) while every
// tensor, master weight and optimizer state stays f32. Only where the CPU has native bf16 (AVX512-BF16 or AMX): on
// other CPUs oneDNN would emulate it, slower than f32, so setting it fails with the reason.
//
// Legend: slot = an independent scratch buffer (0: first operand, 1: second operand, ...); elems = bf16 values.

#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace selfsup {

namespace {

Precision precision = Precision::f32;
Precision userPrecision = Precision::f32;  // as set_compute_precision left it, whatever a ScopedPrecision says now

struct Scratch {
  void* ptr = nullptr;
  int64_t elems = 0;
};
Scratch scratch[4];

}  // namespace

Precision compute_precision() { return precision; }
Precision session_precision() { return userPrecision; }

std::string cpu_isa_name() {
  // spelled as ONEDNN_MAX_CPU_ISA takes it
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "SSE41";
    case dnnl::cpu_isa::avx: return "AVX";
    case dnnl::cpu_isa::avx2: return "AVX2";
    case dnnl::cpu_isa::avx2_vnni: return "AVX2_VNNI";
    case dnnl::cpu_isa::avx512_mic: return "AVX512_MIC";
    case dnnl::cpu_isa::avx512_mic_4ops: return "AVX512_MIC_4OPS";
    case dnnl::cpu_isa::avx512_core: return "AVX512_CORE";
    case dnnl::cpu_isa::avx512_core_vnni: return "AVX512_CORE_VNNI";
    case dnnl::cpu_isa::avx512_core_bf16: return "AVX512_CORE_BF16";
    case dnnl::cpu_isa::avx512_core_amx: return "AVX512_CORE_AMX";
    case dnnl::cpu_isa::all: return "ALL";
    default: return "unknown";
  }
}

bool cpu_has_native_bf16() {
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

void set_compute_precision(Precision p) {
  if (p == Precision::bf16 && !cpu_has_native_bf16())
    fail("precision", "bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); oneDNN reports ISA '" + cpu_isa_name() +
                          "', where bf16 would be emulated and slower than fp32: use fp32");
  precision = p;
  userPrecision = p;
}

ScopedPrecision::ScopedPrecision(Precision p) : old(precision) {
  if (p == Precision::bf16 && !cpu_has_native_bf16()) fail("precision", "internal: bf16 scoped on a CPU without native bf16");
  precision = p;
}
ScopedPrecision::~ScopedPrecision() { precision = old; }

void* low_scratch(int slot, int64_t elems) {
  Scratch& s = scratch[slot];
  if (s.elems < elems) {
    std::free(s.ptr);
    const size_t bytes = (size_t(elems) * 2 + 63) / 64 * 64;
    s.ptr = std::aligned_alloc(64, bytes);
    if (!s.ptr) fail("precision", "out of memory for a bf16 scratch buffer of " + std::to_string(bytes) + " bytes");
    s.elems = elems;
  }
  return s.ptr;
}

}  // namespace selfsup
