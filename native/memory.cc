// Allocation for the native backend: 64-byte aligned blocks, recycled through a cache keyed by byte size
// so that a training step, which allocates the same sizes every iteration, does not page-fault on fresh mmaps.
//
// Legend: bytes = requested size rounded up to 64; cache = size -> free blocks, bounded by the larger of
//   kCacheLimit and the peak of live bytes (a step that frees more than the bound would hand its activations back
//   to the OS and fault them in again on the next step, ~30% of a ResNet-18 step at batch 128);
//   tick = a counter bumped by every allocation and release, stamped on the size bucket it touches;
//   OS bytes = what the callers are told to report to V8: only memory taken from or given back to the OS.
// When the cache is full, the blocks of the sizes used longest ago go back to the OS first, not the block being
// released: after one model (MoCo's ResNet) the cache is full of its sizes, and without this eviction the next model
// (MAE's ViT) would find no room, free every block it releases and page-fault them all in again on every step.

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

struct Bucket {
  std::vector<void*> blocks;  // idle blocks of one size
  uint64_t lastUse = 0;       // tick of the last allocation or release of this size
};

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, Bucket> cache;  // bytes -> idle blocks
  uint64_t tick = 0;
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
  const size_t bound = std::max(kCacheLimit, a.peakLiveBytes);
  Bucket& mine = a.cache[b->bytes];
  mine.lastUse = ++a.tick;
  size_t osBytes = 0;
  // make room by evicting the stalest sizes (never this one: it is in use now)
  while (a.cachedBytes + b->bytes > bound) {
    Bucket* oldest = nullptr;
    size_t oldestBytes = 0;
    for (auto& [bytes, bucket] : a.cache)
      if (!bucket.blocks.empty() && &bucket != &mine && (!oldest || bucket.lastUse < oldest->lastUse)) {
        oldest = &bucket;
        oldestBytes = bytes;
      }
    if (!oldest) break;
    while (!oldest->blocks.empty() && a.cachedBytes + b->bytes > bound) {
      std::free(oldest->blocks.back());
      oldest->blocks.pop_back();
      a.cachedBytes -= oldestBytes;
      a.cachedBlocks--;
      osBytes += oldestBytes;
    }
  }
  if (a.cachedBytes + b->bytes <= bound) {
    mine.blocks.push_back(b->ptr);
    a.cachedBytes += b->bytes;
    a.cachedBlocks++;
    return osBytes;
  }
  std::free(b->ptr);
  return osBytes + b->bytes;
}

}  // namespace

Block* mem_allocate(size_t bytes, bool zero, size_t* osBytes) {
  Allocator& a = A();
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(a.mu);
    auto it = a.cache.find(rounded);
    if (it != a.cache.end()) {
      it->second.lastUse = ++a.tick;
      if (!it->second.blocks.empty()) {
        ptr = it->second.blocks.back();
        it->second.blocks.pop_back();
        a.cachedBytes -= rounded;
        a.cachedBlocks--;
      }
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
  for (auto& [bytes, bucket] : a.cache)
    for (void* p : bucket.blocks) std::free(p);
  const size_t freed = a.cachedBytes;
  a.cache.clear();
  a.cachedBytes = 0;
  a.cachedBlocks = 0;
  a.peakLiveBytes = a.liveBytes;  // a trim asks for memory back: forget the old peak too
  return freed;
}

}  // namespace selfsup
