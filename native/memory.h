// Host memory for tensors: 64-byte aligned blocks from a coalescing arena (from 1 MiB) or a size-keyed cache (see
// memory.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace selfsup {

/** One allocation handed to JS. Outlives its memory: the ArrayBuffer finalizer deletes it. */
struct Block {
  void* ptr = nullptr;
  size_t bytes = 0;     // rounded up to 64
  size_t reqBytes = 0;  // as requested: the ArrayBuffer's byte length
  bool freed = false;
};

struct MemoryStats {
  int64_t liveBytes, cachedBytes, liveBlocks, cachedBlocks;
};

/** A live block; *osBytes is set to the bytes newly taken from the OS (0 on a cache hit). */
Block* mem_allocate(size_t bytes, bool zero, size_t* osBytes);
/**
 * Returns the block's memory to the cache (or the OS); the Block itself stays until mem_forget.
 * Returns the bytes given back to the OS. Callers report only OS traffic to V8 as external memory: reporting every
 * cached reuse made V8 run a full mark-compact on nearly every activation-sized allocation (~5 ms each).
 */
size_t mem_release(Block* block);
/** Deletes the bookkeeping of a block whose JS ArrayBuffer is gone; releases the memory if still live. */
size_t mem_forget(Block* block);
/** The live block whose memory starts at ptr, or nullptr when ptr was not allocated here. */
Block* mem_find(void* ptr);
MemoryStats mem_stats();
/** Returns every cached block, and the arena's idle pages, to the OS; returns the bytes freed. */
size_t mem_trim();

}  // namespace selfsup
