// Allocation for the native backend: 64-byte aligned blocks, recycled through a cache keyed by byte size
// so that a training step, which allocates the same sizes every iteration, does not page-fault on fresh mmaps.
//
// Legend: bytes = requested size rounded up to 64; cache = size -> free blocks, bounded by kCacheLimit bytes.

#include "memory.h"

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
  size_t cachedBytes = 0, liveBytes = 0, cachedBlocks = 0;
};

// Leaked on purpose: ArrayBuffer finalizers may run during process teardown after static destructors.
Allocator& A() {
  static Allocator* a = new Allocator();
  return *a;
}

void release_locked(Allocator& a, Block* b) {
  if (b->freed) return;
  b->freed = true;
  a.live.erase(b->ptr);
  a.liveBytes -= b->bytes;
  if (a.cachedBytes + b->bytes <= kCacheLimit) {
    a.cache[b->bytes].push_back(b->ptr);
    a.cachedBytes += b->bytes;
    a.cachedBlocks++;
  } else {
    std::free(b->ptr);
  }
}

}  // namespace

Block* mem_allocate(size_t bytes, bool zero) {
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
  if (!ptr) ptr = std::aligned_alloc(kAlign, rounded);
  if (!ptr) return nullptr;
  if (zero) std::memset(ptr, 0, rounded);
  Block* b = new Block{ptr, rounded, false};
  std::lock_guard<std::mutex> lock(a.mu);
  a.live[ptr] = b;
  a.liveBytes += rounded;
  return b;
}

void mem_release(Block* b) {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  release_locked(a, b);
}

void mem_forget(Block* b) {
  Allocator& a = A();
  {
    std::lock_guard<std::mutex> lock(a.mu);
    release_locked(a, b);
  }
  delete b;
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

void mem_trim() {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  for (auto& [bytes, ptrs] : a.cache)
    for (void* p : ptrs) std::free(p);
  a.cache.clear();
  a.cachedBytes = 0;
  a.cachedBlocks = 0;
}

}  // namespace selfsup
