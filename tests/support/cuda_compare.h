// CUDA ops against the CPU backend (DESIGN.md §4): inputs are made on the host, rounded to the
// dtype under test so both backends see the same values, copied to the GPU, and the outputs are
// compared elementwise with a tolerance that is a multiple of the dtype's machine epsilon (f32
// 2^-23, bf16 2^-7). Every comparison prints its worst element, pass or fail, so a GPU run's log
// carries the figures. Compiles in every build; CudaTest skips without a CUDA backend or device.
#pragma once

#include <gtest/gtest.h>

#include "core/stream.h"
#include "core/tensor.h"

namespace moe::testing {

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override;
  Stream gpu{Device::cuda(0),
             nullptr};  // the default stream: copies back to the host are synchronous
  Stream host;
};

double machine_epsilon(DType dtype);  // f32 2^-23, bf16 2^-7, f64 2^-52

// host (f32 or f64) -> rounded to dtype -> back to f32 on the host: the values a dtype can hold.
Tensor rounded(const Tensor& host, DType dtype);
// host (f32) -> a new tensor of dtype on cuda:0 holding the same (rounded) values.
Tensor to_device(const Tensor& host, DType dtype);
// device tensor (any dtype) -> a new host tensor; float dtypes come back as f32.
Tensor to_host(const Tensor& device);

// |got - expected| <= m * eps * (1 + |expected|) for every element, eps = machine_epsilon(dtype);
// got is a device tensor, expected a host one. Prints "what dtype: worst |diff| ... (x eps)".
::testing::AssertionResult matches_cpu(const char* what, const Tensor& got, const Tensor& expected,
                                       DType dtype, double eps_multiple);

}  // namespace moe::testing
