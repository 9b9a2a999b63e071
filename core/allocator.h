// Memory for tensors. One allocator per device type, registered at start-up: core/ provides the
// host allocator (64-byte aligned, for SIMD and cache lines); the CUDA backend registers its own
// from kernels::init_backends(), so core/ never calls a device API.
#pragma once

#include <cstddef>

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
void register_allocator(DeviceType type, Allocator* allocator);
Allocator& allocator_for(Device device);  // throws InputError when none is registered

// True while device tensors are host memory (ops::set_host_backed_cuda, a placement check for
// tests): host-side movers such as the MPI communicator may then carry them like host tensors.
bool device_memory_is_host();
void set_device_memory_is_host(bool on);

}  // namespace moe
