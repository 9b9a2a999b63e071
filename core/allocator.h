// Memory for tensors. One allocator per device type, registered at start-up: core/ provides the
// host allocator (64-byte aligned, for SIMD and cache lines); the CUDA backend registers its own
// from kernels::init_backends(), so core/ never calls a device API.
//
// The host allocator counts the bytes of the tensors it holds (requested sizes, not the rounding
// to the alignment) and their high-water mark, with relaxed atomics: cheap enough to stay on, and
// what tests compare moe-train --plan's estimate against (trainer/memory_plan.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace moe {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, Device device) = 0;
  virtual void deallocate(void* ptr, size_t bytes, Device device) = 0;
};

inline constexpr size_t kHostAlignment = 64;

Allocator& host_allocator();
// Bytes of host tensors alive now, and the most alive at once since start-up or the last
// reset_host_bytes_peak (which sets the peak to what is alive now).
int64_t host_bytes_in_use();
int64_t host_bytes_peak();
void reset_host_bytes_peak();
void register_allocator(DeviceType type, Allocator* allocator);
Allocator& allocator_for(Device device);  // throws InputError when none is registered

// True while device tensors are host memory (ops::set_host_backed_cuda, a placement check for
// tests): host-side movers such as the MPI communicator may then carry them like host tensors.
bool device_memory_is_host();
void set_device_memory_is_host(bool on);

}  // namespace moe
