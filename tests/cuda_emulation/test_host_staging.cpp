// Uploads through the pinned staging ring (kernels/cuda/host_staging.cu) on the emulator, whose
// copies from pinned memory run only when something orders after them (shim/cuda_runtime.h): a
// ring part written again before its copy ran would send the wrong bytes. Many uploads without a
// synchronisation between them go round the ring several times, of sizes that do not divide it,
// each checked after one final read; an upload above the staging limit takes the pageable path.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/cuda_emulation/shim/cuda_runtime.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"

namespace moe {
namespace {

using HostStaging = testing::CudaTest;

TEST_F(HostStaging, TheEmulatorDefersACopyFromPinnedMemory) {
  void* pinned = nullptr;
  ASSERT_EQ(cudaHostAlloc(&pinned, sizeof(int), cudaHostAllocDefault), cudaSuccess);
  int* value = static_cast<int*>(pinned);
  Tensor device = Tensor::empty({1}, DType::i32, Device::cuda(0));
  *value = 1;
  ASSERT_EQ(cudaMemcpyAsync(device.raw(), pinned, sizeof(int), cudaMemcpyHostToDevice),
            cudaSuccess);
  *value = 2;  // before the copy has run: the device gets 2, as a GPU may
  EXPECT_EQ(ops::to_host(device, gpu).data<int32_t>()[0], 2);
  cudaFreeHost(pinned);
}

TEST_F(HostStaging, UploadsRoundTheRingArriveIntact) {
  std::vector<Tensor> sent, placed;
  for (int i = 0; i < 60; ++i) {  // about 18 MiB in parts of 0.2-0.5 MiB: the ring is 4 MiB
    const int64_t n = 50'000 + 7'919 * (i % 11);
    sent.push_back(testing::random_tensor({n}, DType::f32, 100 + i));
    placed.push_back(ops::to_device(sent.back(), Device::cuda(0), gpu));
  }
  for (size_t i = 0; i < sent.size(); ++i)
    EXPECT_EQ(ops::to_host(placed[i], gpu).to_vector<float>(), sent[i].to_vector<float>()) << i;
}

TEST_F(HostStaging, AnUploadAboveTheLimitIsCopiedAndCountedAsAWait) {
  const int64_t n = static_cast<int64_t>(ops::kStagedUploadBytes / sizeof(float)) + 1;
  const Tensor big = testing::random_tensor({n}, DType::f32, 5);
  const int64_t uploads = ops::host_waits().uploads;
  const Tensor placed = ops::to_device(big, Device::cuda(0), gpu);
  EXPECT_EQ(ops::host_waits().uploads, uploads + 1);
  const Tensor small = testing::random_tensor({1000}, DType::f32, 6);
  const Tensor staged = ops::to_device(small, Device::cuda(0), gpu);
  EXPECT_EQ(ops::host_waits().uploads, uploads + 1);
  EXPECT_EQ(ops::to_host(placed, gpu).to_vector<float>(), big.to_vector<float>());
  EXPECT_EQ(ops::to_host(staged, gpu).to_vector<float>(), small.to_vector<float>());
}

}  // namespace
}  // namespace moe
