#include "core/caching_allocator.h"

#include <algorithm>
#include <bit>

#include "core/error.h"

namespace moe {

size_t CachingAllocator::rounded_size(size_t bytes) {
  constexpr size_t kSmallStep = 512, kSmallLimit = size_t{1} << 20;
  if (bytes <= kSmallLimit) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes, Device device) {
  if (bytes == 0) return nullptr;
  const size_t size = rounded_size(bytes);
  std::lock_guard lock(mutex_);
  PerDevice& state = state_of(device);
  void* block = nullptr;
  size_t block_size = size;
  const auto fit = state.cached.lower_bound(size);
  if (fit != state.cached.end() && fit->first <= 2 * size) {
    block = fit->second;
    block_size = fit->first;
    state.cached.erase(fit);
    ++state.stats.cache_hits;
  } else {
    block = allocate_from_backing(size, state);
  }
  state.handed.emplace(block, block_size);
  MemoryStats& s = state.stats;
  s.in_use += static_cast<int64_t>(block_size);
  s.peak_in_use = std::max(s.peak_in_use, s.in_use);
  return block;
}

void* CachingAllocator::allocate_from_backing(size_t size, PerDevice& state) {
  const Device device = state.device;
  void* block = nullptr;
  try {
    block = backing_.allocate(size, device);
  } catch (const Error& first) {
    const bool had_cache = !state.cached.empty();
    release_cached(state);
    try {
      if (!had_cache) throw;
      block = backing_.allocate(size, device);
    } catch (const Error& e) {
      MOE_THROW(DeviceError, "out of memory on ", device.str(), " allocating ", size,
                " bytes with ", state.stats.in_use, " bytes in use (peak ", state.stats.peak_in_use,
                ", nothing left cached): ", e.what());
    }
  }
  MemoryStats& s = state.stats;
  ++s.backing_allocations;
  s.reserved += static_cast<int64_t>(size);
  s.peak_reserved = std::max(s.peak_reserved, s.reserved);
  return block;
}

void CachingAllocator::deallocate(void* ptr, size_t, Device device) {
  if (!ptr) return;
  std::lock_guard lock(mutex_);
  PerDevice& state = state_of(device);
  const auto handed = state.handed.find(ptr);
  MOE_ASSERT(handed != state.handed.end(), "CachingAllocator: ", ptr, " on ", device.str(),
             " was not allocated here");
  const size_t size = handed->second;
  state.handed.erase(handed);
  MemoryStats& s = state.stats;
  s.in_use -= static_cast<int64_t>(size);
  if (static_cast<size_t>(s.cached()) > cache_limit_) {  // cached() counts this block already
    backing_.deallocate(ptr, size, device);
    s.reserved -= static_cast<int64_t>(size);
  } else {
    state.cached.emplace(size, ptr);
  }
}

CachingAllocator::PerDevice& CachingAllocator::state_of(Device device) {
  PerDevice& state = devices_[device.index];
  state.device = device;
  return state;
}

void CachingAllocator::release_cached(PerDevice& state) {
  for (const auto& [size, block] : state.cached) {
    backing_.deallocate(block, size, state.device);
    state.stats.reserved -= static_cast<int64_t>(size);
  }
  state.cached.clear();
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mutex_);
  for (auto& [index, state] : devices_) release_cached(state);
}

MemoryStats CachingAllocator::stats(Device device) const {
  std::lock_guard lock(mutex_);
  const auto found = devices_.find(device.index);
  return found == devices_.end() ? MemoryStats{} : found->second.stats;
}

void CachingAllocator::reset_peaks(Device device) {
  std::lock_guard lock(mutex_);
  MemoryStats& s = state_of(device).stats;
  s.peak_in_use = s.in_use;
  s.peak_reserved = s.reserved;
}

}  // namespace moe
