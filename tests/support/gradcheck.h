// fp64 central-difference gradient checks for ops and modules.
//
// Pattern: make f64 inputs, pick a fixed random projection R of the output, define
// loss() = <forward(inputs), R>, run backward with dout = R to get analytic gradients, then
// gradients_match(loss, {{"x", x, dx}, ...}) perturbs every input element by +-eps and compares.
// In f64 with eps = 1e-6 the finite-difference error is ~1e-10 relative, so tight tolerances hold
// and a wrong gradient cannot hide.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace moe::testing {

struct GradInput {
  std::string name;
  Tensor value;  // f64 host tensor, perturbed in place (and restored)
  Tensor grad;   // its analytic gradient, f64, same shape
};

::testing::AssertionResult gradients_match(const std::function<double()>& loss,
                                           const std::vector<GradInput>& inputs, double eps = 1e-6,
                                           double atol = 1e-7, double rtol = 1e-6);

// Uniform values in [lo, hi) from a counter-based RNG: same seed, same tensor. f32, f64 or bf16
// (the f32 value rounded to nearest even).
Tensor random_tensor(Shape shape, DType dtype, uint64_t seed, double lo = -1.0, double hi = 1.0);
Tensor zeros_like(const Tensor& t);
// A new host tensor holding t's values in dtype (ops::convert): a bf16 tensor's exact f64 copy
// is the input of its f64 reference.
Tensor converted(const Tensor& t, DType dtype);
// A new f64 host tensor of |t| elementwise: the same op run on absolute values bounds the sum of
// the absolute values of its terms (bf16_tolerance's magnitude).
Tensor absolute(const Tensor& t);
// The largest element of a host float tensor.
double max_element(const Tensor& t);
// Sum of the elementwise product, in f64 (host f32 or f64 tensors).
double dot(const Tensor& a, const Tensor& b);

}  // namespace moe::testing
