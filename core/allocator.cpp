// The host allocator is a pool by default: a CachingAllocator (caching_allocator.h) over
// aligned_alloc, so the training loop's repeated per-step tensors reuse blocks instead of calling
// malloc and faulting in fresh pages each step. It keeps at most MOE_HOST_POOL MiB cached (default
// 4096; a freed block beyond that goes back to the C library); MOE_HOST_POOL=0 turns it off, every
// tensor then its own aligned_alloc (for memory debuggers). The byte counters (allocator.h) sit in
// front of the pool: they count the tensors' requested bytes, not the pool's buckets or its cache.
#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "core/caching_allocator.h"
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

// Host memory from the C library, uncounted.
class AlignedAllocator final : public Allocator {
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

// Counts the tensors' bytes (requested sizes, whatever the source rounds or caches) and takes
// the memory from `source`: the pool, or the C library directly.
class HostAllocator final : public Allocator {
 public:
  explicit HostAllocator(Allocator& source) : source_(source) {}
  void* allocate(size_t bytes, Device device) override {
    void* ptr = source_.allocate(bytes, device);
    if (ptr) count_host_bytes(static_cast<int64_t>(bytes));
    return ptr;
  }
  void deallocate(void* ptr, size_t bytes, Device device) override {
    if (!ptr) return;
    source_.deallocate(ptr, bytes, device);
    count_host_bytes(-static_cast<int64_t>(bytes));
  }

 private:
  Allocator& source_;
};

// MOE_HOST_POOL unset: the pool, caching up to kDefaultPoolMiB; a number: that cap in MiB; 0: no
// pool.
constexpr size_t kDefaultPoolMiB = 4096;

size_t host_pool_cap_bytes() {
  const char* value = std::getenv("MOE_HOST_POOL");
  size_t mib = kDefaultPoolMiB;
  if (value && *value) {
    try {
      mib = std::stoull(value);
    } catch (const std::exception&) {
      MOE_THROW(InputError, "MOE_HOST_POOL is '", value, "': expected a cap in MiB (0: no pool)");
    }
  }
  return mib << 20;
}

Allocator* make_host_allocator() {
  Allocator* aligned = new AlignedAllocator;
  const size_t cap = host_pool_cap_bytes();
  return new HostAllocator(cap == 0 ? *aligned : *new CachingAllocator(*aligned, cap));
}

Allocator* g_cuda_allocator = nullptr;
bool g_device_memory_is_host = false;

}  // namespace

// Never destroyed (nor what it takes memory from): tensors held by other static objects may be
// freed after main returns.
Allocator& host_allocator() {
  static Allocator* allocator = make_host_allocator();
  return *allocator;
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
