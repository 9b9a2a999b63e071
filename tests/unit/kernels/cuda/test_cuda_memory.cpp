// CUDA memory: fill and copy against the CPU, and the caching allocator on a real device (a
// repeated pattern of allocations stops calling cudaMalloc).
#include <cstring>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using CudaMemory = testing::CudaTest;

TEST_F(CudaMemory, FillAndCopyRoundTripEveryDtype) {
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    Tensor on_device = Tensor::empty({1000, 3}, dtype, Device::cuda(0));
    ops::fill(on_device, -2.75, gpu);
    Tensor back = Tensor::empty({1000, 3}, dtype);
    ops::copy(on_device, back, gpu);
    Tensor expected = Tensor::empty({1000, 3}, dtype);
    ops::fill(expected, -2.75, host);
    // Synchronous default-stream copy above: the host copy is complete here.
    EXPECT_EQ(std::memcmp(back.raw(), expected.raw(), back.nbytes()), 0) << dtype_name(dtype);
  }
}

TEST_F(CudaMemory, CopyHostToDeviceAndBackIsExact) {
  std::vector<float> values(4097);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i) - 7.0f;
  Tensor on_host = Tensor::from_vector<float>({4097}, values);
  Tensor device = Tensor::empty({4097}, DType::f32, Device::cuda(0));
  ops::copy(on_host, device, gpu);
  Tensor back = Tensor::zeros({4097}, DType::f32);
  ops::copy(device, back, gpu);
  EXPECT_TRUE(testing::all_close(back, on_host, 0, 0));
}

TEST_F(CudaMemory, ARepeatedStepAllocatesFromTheCacheOnly) {
  auto step = [] {
    // Sizes vary a little from step to step, as MoE buffers do with the routing.
    for (int64_t rows : {1000, 1010, 990}) Tensor::empty({rows, 512}, DType::bf16, Device::cuda(0));
  };
  step();
  const MemoryStats warm = ops::device_memory_stats(Device::cuda(0));
  for (int i = 0; i < 5; ++i) step();
  const MemoryStats after = ops::device_memory_stats(Device::cuda(0));
  EXPECT_EQ(after.backing_allocations, warm.backing_allocations);
  EXPECT_GE(after.cache_hits, warm.cache_hits + 15);
  EXPECT_GE(after.peak_reserved, after.reserved);
}

}  // namespace
}  // namespace moe
