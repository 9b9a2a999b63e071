// CUDA device services: the device allocator registered by ops::init_backends() (a
// CachingAllocator over cudaMalloc, so the step loop does not call cudaMalloc once warm), its
// figures, streams, and the device count. cudaGetDeviceCount's return code is what tells "no usable
// GPU" (no driver, no device), so a failure there means zero devices, not an error. Only the
// runtime API is used: the driver library is never linked, so CPU-only machines can start every
// binary.
#include "core/caching_allocator.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace moe::cuda {

namespace {

class CudaMallocAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device device) override {
    if (bytes == 0) return nullptr;
    MOE_CUDA_CHECK(cudaSetDevice(device.index));
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, bytes);
    if (status != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it so the next launch check does not report it
      MOE_THROW(DeviceError, "cudaMalloc of ", bytes, " bytes on ", device.str(),
                " failed: ", cudaGetErrorString(status));
    }
    return ptr;
  }
  void deallocate(void* ptr, size_t, Device device) override {
    cudaSetDevice(device.index);
    cudaFree(ptr);  // no throw from a destructor path; a failed free only leaks
  }
};

CachingAllocator& caching_allocator() {
  // Never destroyed: tensors released during static destruction still find it, and cudaFree is
  // not called after the CUDA runtime has shut down.
  static auto* allocator = new CachingAllocator(*new CudaMallocAllocator);
  return *allocator;
}

}  // namespace

Allocator& device_allocator() { return caching_allocator(); }

MemoryStats memory_stats(int device) { return caching_allocator().stats(Device::cuda(device)); }

Stream create_stream(Device device) {
  MOE_CUDA_CHECK(cudaSetDevice(device.index));
  // A blocking stream: it orders with the legacy default stream, so the default-stream copies of
  // init and snapshots never overlap the training stream's work.
  cudaStream_t stream = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreate(&stream));
  return {device, stream};
}

void destroy_stream(Stream& stream) {
  // Its work finishes first: the blocks it uses go back to the cache, whence another stream that
  // does not order with this one could take them.
  if (stream.handle) {
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle));
    cudaStreamDestroy(static_cast<cudaStream_t>(stream.handle));
  }
  stream.handle = nullptr;
}

void synchronize(Stream& stream) {
  MOE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
}

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls are not confused
    return 0;
  }
  return count;
}

}  // namespace moe::cuda
