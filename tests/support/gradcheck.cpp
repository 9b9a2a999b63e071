#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/rng.h"
#include "tests/support/tolerance.h"

namespace moe::testing {

::testing::AssertionResult gradients_match(const std::function<double()>& loss,
                                           const std::vector<GradInput>& inputs, double eps,
                                           double atol, double rtol) {
  for (const GradInput& input : inputs) {
    if (input.value.dtype() != DType::f64 || input.grad.dtype() != DType::f64)
      return ::testing::AssertionFailure() << input.name << ": gradcheck needs f64 tensors";
    Tensor numeric = zeros_like(input.value);
    double* v = input.value.data<double>();
    for (int64_t i = 0; i < input.value.numel(); ++i) {
      const double saved = v[i];
      v[i] = saved + eps;
      const double plus = loss();
      v[i] = saved - eps;
      const double minus = loss();
      v[i] = saved;
      numeric.data<double>()[i] = (plus - minus) / (2 * eps);
    }
    loss();  // leave the forward state as it was for the unperturbed inputs
    auto result = all_close(input.grad, numeric, atol, rtol);
    if (!result)
      return ::testing::AssertionFailure()
             << "gradient of '" << input.name
             << "' (analytic vs finite differences): " << result.message();
  }
  return ::testing::AssertionSuccess();
}

Tensor random_tensor(Shape shape, DType dtype, uint64_t seed, double lo, double hi) {
  Tensor t = Tensor::empty(shape, dtype);
  Philox rng(seed, stream_id("random_tensor"));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double value = lo + (hi - lo) * rng.uniform(static_cast<uint64_t>(i));
    if (dtype == DType::f64)
      t.data<double>()[i] = value;
    else
      t.data<float>()[i] = static_cast<float>(value);
  }
  return t;
}

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype()); }

double dot(const Tensor& a, const Tensor& b) {
  MOE_CHECK(a.numel() == b.numel(), "dot: ", a.str(), " and ", b.str(), " differ in size");
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) sum += element_as_double(a, i) * element_as_double(b, i);
  return sum;
}

}  // namespace moe::testing
