#include "core/allocator.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace moe {

namespace {

class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    if (bytes == 0) return nullptr;
    const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    void* ptr = std::aligned_alloc(kHostAlignment, rounded);
    if (!ptr) MOE_THROW(InputError, "out of host memory allocating ", bytes, " bytes");
    return ptr;
  }
  void deallocate(void* ptr, size_t, Device) override { std::free(ptr); }
};

Allocator* g_cuda_allocator = nullptr;
bool g_device_memory_is_host = false;

}  // namespace

Allocator& host_allocator() {
  static HostAllocator allocator;
  return allocator;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  MOE_ASSERT(type == DeviceType::cuda, "only the CUDA allocator is registered at run time");
  g_cuda_allocator = allocator;
}

bool device_memory_is_host() { return g_device_memory_is_host; }
void set_device_memory_is_host(bool on) { g_device_memory_is_host = on; }

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return host_allocator();
  MOE_CHECK(g_cuda_allocator != nullptr, "cannot allocate on ", device.str(),
            ": no CUDA allocator registered (MoEForge was built without CUDA, or "
            "kernels::init_backends() was not called)");
  return *g_cuda_allocator;
}

}  // namespace moe
