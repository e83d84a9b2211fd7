// Allocation for the native backend: 64-byte aligned blocks, recycled through a cache keyed by byte size
// so that a training step, which allocates the same sizes every iteration, does not page-fault on fresh mmaps.
//
// Legend: bytes = requested size rounded up to 64; cache = size -> free blocks, bounded by the larger of
//   kCacheLimit and the peak of live bytes (a step that frees more than the bound would hand its activations back
//   to the OS and fault them in again on the next step, ~30% of a ResNet-18 step at batch 128);
//   OS bytes = what the callers are told to report to V8: only memory taken from or given back to the OS.

#include "memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace selfsup {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheLimit = size_t(1) << 30;  // 1 GiB of idle blocks at most

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> cache;  // bytes -> idle blocks
  std::unordered_map<void*, Block*> live;                // ptr -> block handed to JS
  size_t cachedBytes = 0, liveBytes = 0, cachedBlocks = 0, peakLiveBytes = 0;
};

// Leaked on purpose: ArrayBuffer finalizers may run during process teardown after static destructors.
Allocator& A() {
  static Allocator* a = new Allocator();
  return *a;
}

/** Returns the bytes handed back to the OS (0 when the block went to the cache). */
size_t release_locked(Allocator& a, Block* b) {
  if (b->freed) return 0;
  b->freed = true;
  a.live.erase(b->ptr);
  a.liveBytes -= b->bytes;
  if (a.cachedBytes + b->bytes <= std::max(kCacheLimit, a.peakLiveBytes)) {
    a.cache[b->bytes].push_back(b->ptr);
    a.cachedBytes += b->bytes;
    a.cachedBlocks++;
    return 0;
  }
  std::free(b->ptr);
  return b->bytes;
}

}  // namespace

Block* mem_allocate(size_t bytes, bool zero, size_t* osBytes) {
  Allocator& a = A();
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(a.mu);
    auto it = a.cache.find(rounded);
    if (it != a.cache.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      a.cachedBytes -= rounded;
      a.cachedBlocks--;
    }
  }
  *osBytes = 0;
  if (!ptr) {
    ptr = std::aligned_alloc(kAlign, rounded);
    if (!ptr) return nullptr;
    *osBytes = rounded;
  }
  if (zero) std::memset(ptr, 0, rounded);
  Block* b = new Block{ptr, rounded, bytes, false};
  std::lock_guard<std::mutex> lock(a.mu);
  a.live[ptr] = b;
  a.liveBytes += rounded;
  a.peakLiveBytes = std::max(a.peakLiveBytes, a.liveBytes);
  return b;
}

size_t mem_release(Block* b) {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  return release_locked(a, b);
}

size_t mem_forget(Block* b) {
  Allocator& a = A();
  size_t osBytes;
  {
    std::lock_guard<std::mutex> lock(a.mu);
    osBytes = release_locked(a, b);
  }
  delete b;
  return osBytes;
}

Block* mem_find(void* ptr) {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(ptr);
  return it == a.live.end() ? nullptr : it->second;
}

MemoryStats mem_stats() {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  return {int64_t(a.liveBytes), int64_t(a.cachedBytes), int64_t(a.live.size()), int64_t(a.cachedBlocks)};
}

size_t mem_trim() {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  for (auto& [bytes, ptrs] : a.cache)
    for (void* p : ptrs) std::free(p);
  const size_t freed = a.cachedBytes;
  a.cache.clear();
  a.cachedBytes = 0;
  a.cachedBlocks = 0;
  a.peakLiveBytes = a.liveBytes;  // a trim asks for memory back: forget the old peak too
  return freed;
}

}  // namespace selfsup
