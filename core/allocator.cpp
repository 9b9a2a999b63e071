#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/error.h"

namespace moe {

namespace {

std::atomic<int64_t> g_host_in_use{0}, g_host_peak{0};

void count_host_bytes(int64_t delta) {
  const int64_t now = g_host_in_use.fetch_add(delta, std::memory_order_relaxed) + delta;
  int64_t peak = g_host_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    if (bytes == 0) return nullptr;
    const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    void* ptr = std::aligned_alloc(kHostAlignment, rounded);
    if (!ptr) MOE_THROW(InputError, "out of host memory allocating ", bytes, " bytes");
    count_host_bytes(static_cast<int64_t>(bytes));
    return ptr;
  }
  void deallocate(void* ptr, size_t bytes, Device) override {
    if (!ptr) return;
    std::free(ptr);
    count_host_bytes(-static_cast<int64_t>(bytes));
  }
};

Allocator* g_cuda_allocator = nullptr;
bool g_device_memory_is_host = false;

}  // namespace

Allocator& host_allocator() {
  static HostAllocator allocator;
  return allocator;
}

int64_t host_bytes_in_use() { return g_host_in_use.load(std::memory_order_relaxed); }
int64_t host_bytes_peak() { return g_host_peak.load(std::memory_order_relaxed); }
void reset_host_bytes_peak() { g_host_peak.store(host_bytes_in_use(), std::memory_order_relaxed); }

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
