#include "tests/support/cuda_compare.h"

#include <cmath>
#include <cstdio>

#include "kernels/ops.h"
#include "tests/support/tolerance.h"

namespace moe::testing {

void CudaTest::SetUp() {
  if (!ops::built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (ops::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  ops::init_backends();
}

double machine_epsilon(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return std::ldexp(1.0, -23);
    case DType::bf16:
      return std::ldexp(1.0, -7);
    case DType::f16:
      return std::ldexp(1.0, -10);
    case DType::f64:
      return std::ldexp(1.0, -52);
    default:
      MOE_THROW(InputError, "machine_epsilon: ", dtype_name(dtype), " is not a float dtype");
  }
}

Tensor rounded(const Tensor& host, DType dtype) {
  Stream stream;
  Tensor narrow = Tensor::empty(host.shape(), dtype);
  ops::convert(host, narrow, stream);
  Tensor back = Tensor::empty(host.shape(), DType::f32);
  ops::convert(narrow, back, stream);
  return back;
}

Tensor to_device(const Tensor& host, DType dtype) {
  Stream stream;
  Tensor staged = host;
  if (host.dtype() != dtype) {
    staged = Tensor::empty(host.shape(), dtype);
    ops::convert(host, staged, stream);
  }
  Tensor device = Tensor::empty(host.shape(), dtype, Device::cuda(0));
  ops::copy(staged, device, stream);
  return device;
}

Tensor to_host(const Tensor& device) {
  Stream stream;
  Tensor back = Tensor::empty(device.shape(), device.dtype());
  ops::copy(device, back, stream);
  if (!is_floating(back.dtype()) || back.dtype() == DType::f32) return back;
  Tensor wide = Tensor::empty(back.shape(), DType::f32);
  ops::convert(back, wide, stream);
  return wide;
}

::testing::AssertionResult matches_cpu(const char* what, const Tensor& got, const Tensor& expected,
                                       DType dtype, double eps_multiple) {
  const Tensor back = to_host(got);
  if (!(back.shape() == expected.shape()))
    return ::testing::AssertionFailure()
           << what << ": shape " << back.shape().str() << " != expected " << expected.shape().str();
  const double eps = machine_epsilon(dtype);
  double worst_diff = 0, worst_relative = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < back.numel(); ++i) {
    const double g = element_as_double(back, i), e = element_as_double(expected, i);
    const double diff = std::isnan(g) != std::isnan(e) ? INFINITY : std::fabs(g - e);
    const double relative = diff / (eps * (1 + std::fabs(e)));
    if (relative > worst_relative || std::isnan(relative))
      worst = i, worst_diff = diff, worst_relative = relative;
  }
  std::printf("[cuda vs cpu] %-28s %-4s worst |diff| %.3g at %lld (%.3g eps of %g allowed)\n", what,
              dtype_name(dtype), worst_diff, static_cast<long long>(worst), worst_relative,
              eps_multiple);
  return all_close(back, expected, eps_multiple * eps, eps_multiple * eps)
         << " [" << what << ", " << dtype_name(dtype) << "]";
}

}  // namespace moe::testing
