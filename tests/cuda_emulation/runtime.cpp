// The CUDA runtime API over emulated device memory, and the device services of cuda_ops.h in place
// of kernels/cuda/device.cu (which holds no kernel): an allocator that calls cudaMalloc for every
// tensor, without device.cu's caching, so that each tensor's guard bytes sit at its exact end.
// One device; streams are tokens, every call completes before it returns, except a copy from
// pinned memory, which waits in a queue until something orders after it (shim/cuda_runtime.h).
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>
#include <stdexcept>

#include "core/allocator.h"
#include "kernels/cuda/cuda_ops.h"
#include "tests/cuda_emulation/shim/cuda_runtime.h"

namespace {

cudaStream_t stream_token() {
  static char token;
  return reinterpret_cast<cudaStream_t>(&token);
}

struct DeferredCopy {
  uint64_t sequence;
  void* dst;
  const void* src;
  size_t bytes;
};

std::set<const void*>& pinned_blocks() {
  static std::set<const void*> blocks;
  return blocks;
}
std::deque<DeferredCopy>& deferred() {
  static std::deque<DeferredCopy> queue;
  return queue;
}
uint64_t g_next_sequence = 1;

bool is_pinned(const void* p) {
  const auto& blocks = pinned_blocks();
  auto at = blocks.upper_bound(p);
  if (at == blocks.begin()) return false;
  const char* base = static_cast<const char*>(*--at);
  // Each block records its size just before its start.
  const size_t bytes = reinterpret_cast<const size_t*>(base)[-1];
  return static_cast<const char*>(p) < base + bytes;
}

}  // namespace

struct CUevent_st {
  uint64_t sequence = 0;  // the copies queued before its record
};

void emu::run_deferred_copies(uint64_t until) {
  auto& queue = deferred();
  while (!queue.empty() && queue.front().sequence < until) {
    const DeferredCopy copy = queue.front();
    queue.pop_front();
    std::memmove(copy.dst, copy.src, copy.bytes);
    emu::check_guards("a deferred cudaMemcpyAsync");
  }
}

cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned) {
  auto* block = static_cast<size_t*>(std::malloc(sizeof(size_t) + bytes));
  if (!block) return cudaErrorMemoryAllocation;
  block[0] = bytes;
  *ptr = block + 1;
  pinned_blocks().insert(*ptr);
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  emu::run_deferred_copies();
  pinned_blocks().erase(ptr);
  std::free(static_cast<size_t*>(ptr) - 1);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  event->sequence = g_next_sequence;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  emu::run_deferred_copies(event->sequence);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error (emulated)";
    case cudaErrorInvalidValue:
      return "invalid argument (emulated)";
    case cudaErrorMemoryAllocation:
      return "out of memory (emulated)";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal (emulated)";
  }
  return "unknown error (emulated)";
}

// Launches report their errors by throwing (emulator.h), so none is ever pending here.
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaPeekAtLastError() { return cudaSuccess; }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = emu::device_malloc(bytes);
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr) emu::device_free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  emu::run_deferred_copies();
  std::memmove(dst, src, bytes);
  emu::check_guards("cudaMemcpy");
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  if (!is_pinned(src)) return cudaMemcpy(dst, src, bytes, kind);
  deferred().push_back({g_next_sequence++, dst, src, bytes});
  return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  emu::run_deferred_copies();
  std::memset(ptr, value, bytes);
  emu::check_guards("cudaMemset");
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(ptr, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = stream_token();
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  emu::run_deferred_copies();
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaStreamSynchronize(nullptr); }

namespace moe::cuda {

namespace {

class EmulatedAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device device) override {
    if (bytes == 0) return nullptr;
    MOE_CHECK(device.index == 0, "emulated CUDA has one device, not ", device.str());
    return emu::device_malloc(bytes);
  }
  void deallocate(void* ptr, size_t, Device) override {
    if (ptr) emu::device_free(ptr);
  }
};

}  // namespace

Allocator& device_allocator() {
  static auto* allocator = new EmulatedAllocator;
  return *allocator;
}

MemoryStats memory_stats(int) { return {}; }

Stream create_stream(Device device) { return {device, stream_token()}; }

void destroy_stream(Stream& stream) { stream.handle = nullptr; }

void synchronize(Stream&) { emu::run_deferred_copies(); }

int device_count() { return 1; }

}  // namespace moe::cuda
