// The CUDA runtime API over emulated device memory, and the device services of cuda_ops.h in place
// of kernels/cuda/device.cu (which holds no kernel): an allocator that calls cudaMalloc for every
// tensor, without device.cu's caching, so that each tensor's guard bytes sit at its exact end.
// One device; streams are tokens, every call completes before it returns.
#include <cstring>
#include <stdexcept>

#include "core/allocator.h"
#include "kernels/cuda/cuda_ops.h"
#include "tests/cuda_emulation/shim/cuda_runtime.h"

namespace {

cudaStream_t stream_token() {
  static char token;
  return reinterpret_cast<cudaStream_t>(&token);
}

}  // namespace

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
  std::memmove(dst, src, bytes);
  emu::check_guards("cudaMemcpy");
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
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
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

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

void synchronize(Stream&) {}

int device_count() { return 1; }

}  // namespace moe::cuda
