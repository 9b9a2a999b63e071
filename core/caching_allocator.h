// A caching layer over a device allocator (the CUDA backend puts it over cudaMalloc/cudaFree):
// freed blocks are kept and handed out again, so a training step that repeats its allocations
// calls the backing allocator only while warming up, never in the steady-state step loop.
//
// Decisions:
// - Sizes are rounded up into buckets: 512 B steps below 1 MiB, above that an eighth of the next
//   power of two below the size (at most 12.5% waste). MoE buffers change size with the routing
//   every step; the buckets let most of them reuse a block that a similar size left behind.
// - A request takes the smallest cached block of at least its rounded size, and only one at most
//   twice as large (best fit, no splitting: simple, and the waste is bounded).
// - When the backing allocator fails, every cached block is released and the request tried once
//   more; if it fails again the error names the request and the allocator's figures.
// - Reuse is stream-ordered: a block freed on the host is handed out again at once, which is safe
//   because each rank runs its device work on one stream: ops::create_stream refuses a second
//   live stream on a device. Work on another stream (the legacy default stream of init copies,
//   which the training stream orders with) must keep its tensors alive until it has synchronized.
// - Thread-safe (the asynchronous checkpoint writer frees tensors from its own thread).
// - An optional cap on the bytes kept cached (per device): a freed block that would take the cache
//   past it goes straight back to the backing allocator. The host pool (allocator.cpp) uses it so
//   that a burst of large tensors does not stay held after its step; the CUDA one has none.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/allocator.h"

namespace moe {

struct MemoryStats {
  int64_t in_use = 0;       // bytes handed out (sizes of the blocks given)
  int64_t peak_in_use = 0;  // since start or reset_peaks
  int64_t reserved = 0;     // bytes held from the backing allocator: in use plus cached
  int64_t peak_reserved = 0;
  int64_t backing_allocations = 0;  // calls to the backing allocator that succeeded
  int64_t cache_hits = 0;
  int64_t cached() const { return reserved - in_use; }  // bytes held for reuse
};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(Allocator& backing, size_t cache_limit = SIZE_MAX)
      : backing_(backing), cache_limit_(cache_limit) {}

  void* allocate(size_t bytes, Device device) override;
  void deallocate(void* ptr, size_t bytes, Device device) override;

  MemoryStats stats(Device device) const;
  void reset_peaks(Device device);
  void release_cached();  // hands every cached block back to the backing allocator

  static size_t rounded_size(size_t bytes);

 private:
  struct PerDevice {
    Device device;
    std::multimap<size_t, void*> cached;       // block size -> block
    std::unordered_map<void*, size_t> handed;  // block -> its size
    MemoryStats stats;
  };
  void* allocate_from_backing(size_t size, PerDevice& state);
  PerDevice& state_of(Device device);
  void release_cached(PerDevice& state);

  Allocator& backing_;
  const size_t cache_limit_;
  mutable std::mutex mutex_;
  std::map<int, PerDevice> devices_;
};

}  // namespace moe
