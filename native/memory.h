// Host memory for tensors: 64-byte aligned blocks with a size-keyed cache (see memory.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace selfsup {

/** One allocation handed to JS. Outlives its memory: the ArrayBuffer finalizer deletes it. */
struct Block {
  void* ptr = nullptr;
  size_t bytes = 0;  // rounded up to 64
  bool freed = false;
};

struct MemoryStats {
  int64_t liveBytes, cachedBytes, liveBlocks, cachedBlocks;
};

Block* mem_allocate(size_t bytes, bool zero);
/** Returns the block's memory to the cache (or the OS); the Block itself stays until mem_forget. */
void mem_release(Block* block);
/** Deletes the bookkeeping of a block whose JS ArrayBuffer is gone; releases the memory if still live. */
void mem_forget(Block* block);
/** The live block whose memory starts at ptr, or nullptr when ptr was not allocated here. */
Block* mem_find(void* ptr);
MemoryStats mem_stats();
/** Returns every cached block to the OS. */
void mem_trim();

}  // namespace selfsup
