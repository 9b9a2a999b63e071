// CUDA kernels against the CPU backend on the same inputs. Compiled in every build; each test skips
// when the binary has no CUDA backend or the machine has no GPU (cudaGetDeviceCount fails or is 0).
#include <cstring>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ops::built_with_cuda()) GTEST_SKIP() << "built without CUDA";
    if (ops::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    ops::init_backends();
  }
};

TEST_F(CudaVsCpu, FillAndCopyRoundTripEveryDtype) {
  Stream stream{Device::cuda(0), nullptr};
  Stream host;
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    Tensor on_device = Tensor::empty({1000, 3}, dtype, Device::cuda(0));
    ops::fill(on_device, -2.75, stream);
    Tensor back = Tensor::empty({1000, 3}, dtype);
    ops::copy(on_device, back, stream);
    Tensor expected = Tensor::empty({1000, 3}, dtype);
    ops::fill(expected, -2.75, host);
    // Synchronous default-stream copy above: the host copy is complete here.
    EXPECT_EQ(std::memcmp(back.raw(), expected.raw(), back.nbytes()), 0) << dtype_name(dtype);
  }
}

TEST_F(CudaVsCpu, CopyHostToDeviceAndBackIsExact) {
  Stream stream{Device::cuda(0), nullptr};
  std::vector<float> values(4097);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i) - 7.0f;
  Tensor host = Tensor::from_vector<float>({4097}, values);
  Tensor device = Tensor::empty({4097}, DType::f32, Device::cuda(0));
  ops::copy(host, device, stream);
  Tensor back = Tensor::zeros({4097}, DType::f32);
  ops::copy(device, back, stream);
  EXPECT_TRUE(testing::all_close(back, host, 0, 0));
}

TEST_F(CudaVsCpu, OpsWithoutACudaKernelNameTheOp) {
  Stream stream{Device::cuda(0), nullptr};
  Tensor x = Tensor::empty({4, 8}, DType::f32, Device::cuda(0));
  Tensor w = Tensor::empty({8}, DType::f32, Device::cuda(0));
  Tensor y = Tensor::empty({4, 8}, DType::f32, Device::cuda(0));
  Tensor rstd = Tensor::empty({4}, DType::f32, Device::cuda(0));
  try {
    ops::rmsnorm_forward(x, w, 1e-5f, y, rstd, stream);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("rmsnorm_forward: no CUDA kernel yet"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace moe
