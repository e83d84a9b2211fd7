// Allocation for the native backend: 64-byte aligned blocks that a training step, which allocates the same sizes
// every iteration, reuses without page-faulting on fresh mmaps. Two tiers:
//
// - Large blocks (>= kArenaMin) come from one arena: a reserved range of address space that is touched on demand,
//   with its free ranges kept address-ordered and coalesced. Any free range serves any smaller request, so memory that
//   one resolution's activations held serves another's gradients: the footprint follows the live bytes. A cache
//   keyed by exact size cannot do that: it kept each size's own worst count, and a ResNet's backward, which needs two
//   or three gradient buffers per resolution beyond the forward's activations, left those idle during the forward's
//   peak (194 MB of 1,656 for SimSiam fp32 at batch 128).
// - Small blocks, and everything when the arena cannot be reserved (a strict overcommit policy, an address-space
//   limit) or is full, go through aligned_alloc and a cache keyed by size.
//
// Legend: bytes = requested size rounded up to 64 (to the page in the arena); cache = size -> free small blocks,
//   bounded by the larger of kCacheLimit and the peak of live bytes (a step that frees more than the bound would hand
//   its activations back to the OS and fault them in again on the next step, ~30% of a ResNet-18 step at batch 128);
//   tick = a counter bumped by every allocation and release, stamped on the size bucket it touches;
//   top = the arena's high-water mark: bytes below it have been touched, bytes above it never;
//   OS bytes = what the callers are told to report to V8: only memory taken from or given back to the OS.
// When the small cache is full, the blocks of the sizes used longest ago go back to the OS first, not the block being
// released: after one model (MoCo's ResNet) the cache is full of its sizes, and without this eviction the next model
// (MAE's ViT) would find no room, free every block it releases and page-fault them all in again on every step.

#include "memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <sys/mman.h>
#include <unistd.h>
#include <map>
#include <unordered_map>
#include <vector>

namespace selfsup {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheLimit = size_t(1) << 30;  // 1 GiB of idle small blocks at most
constexpr size_t kArenaMin = size_t(1) << 20;    // blocks from 1 MiB go to the arena
constexpr size_t kPage = 4096;

/**
 * One reserved range of address space. free: offset -> length of the idle ranges, coalesced (the last may end at top);
 * dirty = idle bytes that are resident (a trim hands them back to the OS but keeps the addresses).
 */
struct Arena {
  char* base = nullptr;
  size_t reserved = 0, top = 0, dirty = 0;
  std::map<size_t, size_t> free;

  /** Reserves 4x the physical memory (at least 1 GiB, at most 1 TiB) of address space; none of it is touched yet. */
  Arena() {
    const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
    const size_t phys = pages > 0 && pageSize > 0 ? size_t(pages) * size_t(pageSize) : size_t(4) << 30;
    reserved = std::clamp(phys * 4, size_t(1) << 30, size_t(1) << 40);
    void* p = mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) reserved = 0;
    else base = static_cast<char*>(p);
  }

  bool owns(const void* p) const { return base && p >= base && p < base + reserved; }

  /** The best-fitting idle range (lowest address among equals), else the top; nullptr when the arena is full. */
  void* take(size_t bytes, size_t* osBytes) {
    auto best = free.end();
    for (auto it = free.begin(); it != free.end(); ++it)
      if (it->second >= bytes && (best == free.end() || it->second < best->second)) best = it;
    if (best != free.end()) {
      const size_t off = best->first, len = best->second;
      free.erase(best);
      if (len > bytes) free.emplace(off + bytes, len - bytes);
      dirty -= std::min(dirty, bytes);
      return base + off;
    }
    // grow from the top, starting inside the idle range that ends there (if any)
    size_t off = top;
    if (!free.empty() && std::prev(free.end())->first + std::prev(free.end())->second == top) off = std::prev(free.end())->first;
    if (!base || off + bytes > reserved) return nullptr;
    if (off < top) {
      dirty -= std::min(dirty, top - off);
      free.erase(std::prev(free.end()));
    }
    *osBytes = off + bytes - top;
    top = off + bytes;
    return base + off;
  }

  /** Returns a range to the idle set, merged with its neighbours. */
  void give(void* p, size_t bytes) {
    size_t off = size_t(static_cast<char*>(p) - base), len = bytes;
    dirty += bytes;
    auto next = free.lower_bound(off);
    if (next != free.end() && next->first == off + len) {
      len += next->second;
      next = free.erase(next);
    }
    if (next != free.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == off) {
        off = prev->first;
        len += prev->second;
        free.erase(prev);
      }
    }
    free.emplace(off, len);
  }

  /** Hands the idle ranges' pages back to the OS; returns the resident bytes given back. */
  size_t trim() {
    for (auto& [off, len] : free) madvise(base + off, len, MADV_DONTNEED);
    const size_t was = dirty;
    dirty = 0;
    return was;
  }
};

struct Bucket {
  std::vector<void*> blocks;  // idle blocks of one size
  uint64_t lastUse = 0;       // tick of the last allocation or release of this size
};

struct Allocator {
  std::mutex mu;
  Arena arena;
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
  if (a.arena.owns(b->ptr)) {
    a.arena.give(b->ptr, b->bytes);
    return 0;
  }
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

/** Hands a block to JS: registers it as live. */
Block* track_locked(Allocator& a, void* ptr, size_t rounded, size_t bytes) {
  Block* b = new Block{ptr, rounded, bytes, false};
  a.live[ptr] = b;
  a.liveBytes += rounded;
  a.peakLiveBytes = std::max(a.peakLiveBytes, a.liveBytes);
  return b;
}

}  // namespace

Block* mem_allocate(size_t bytes, bool zero, size_t* osBytes) {
  Allocator& a = A();
  *osBytes = 0;
  void* ptr = nullptr;
  size_t rounded = 0;
  if (bytes >= kArenaMin) {
    rounded = (bytes + kPage - 1) / kPage * kPage;
    std::lock_guard<std::mutex> lock(a.mu);
    ptr = a.arena.take(rounded, osBytes);
  }
  if (!ptr) {
    rounded = (bytes + kAlign - 1) / kAlign * kAlign;
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
    if (!ptr) {
      ptr = std::aligned_alloc(kAlign, rounded);
      if (!ptr) return nullptr;
      *osBytes = rounded;
    }
  }
  if (zero) std::memset(ptr, 0, rounded);
  std::lock_guard<std::mutex> lock(a.mu);
  return track_locked(a, ptr, rounded, bytes);
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
  return {int64_t(a.liveBytes), int64_t(a.cachedBytes + a.arena.dirty), int64_t(a.live.size()),
          int64_t(a.cachedBlocks + a.arena.free.size())};
}

size_t mem_trim() {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  for (auto& [bytes, bucket] : a.cache)
    for (void* p : bucket.blocks) std::free(p);
  const size_t freed = a.cachedBytes + a.arena.trim();
  a.cache.clear();
  a.cachedBytes = 0;
  a.cachedBlocks = 0;
  a.peakLiveBytes = a.liveBytes;  // a trim asks for memory back: forget the old peak too
  return freed;
}

}  // namespace selfsup
