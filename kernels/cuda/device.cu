// CUDA device services: the device allocator registered by ops::init_backends(), and the device
// count. cudaGetDeviceCount's return code is what tells "no usable GPU" (no driver, no device), so
// a failure there means zero devices, not an error. Only the runtime API is used: the driver
// library is never linked, so CPU-only machines can start every binary.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace moe::cuda {

namespace {

class DeviceAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device device) override {
    if (bytes == 0) return nullptr;
    MOE_CUDA_CHECK(cudaSetDevice(device.index));
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, bytes);
    if (status != cudaSuccess)
      MOE_THROW(DeviceError, "cudaMalloc of ", bytes, " bytes on ", device.str(),
                " failed: ", cudaGetErrorString(status));
    return ptr;
  }
  void deallocate(void* ptr, size_t, Device device) override {
    cudaSetDevice(device.index);
    cudaFree(ptr);  // no throw from a destructor path; a failed free only leaks
  }
};

}  // namespace

Allocator& device_allocator() {
  static DeviceAllocator allocator;
  return allocator;
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
