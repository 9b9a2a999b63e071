#include "tests/support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/half.h"
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

// Writes value to element i of an f64, f32 or bf16 host tensor (bf16 through f32, as
// ops::convert narrows).
static void set_element(Tensor& t, int64_t i, double value) {
  switch (t.dtype()) {
    case DType::f64:
      t.data<double>()[i] = value;
      return;
    case DType::f32:
      t.data<float>()[i] = static_cast<float>(value);
      return;
    case DType::bf16:
      t.data<bf16_t>()[i] = float_to_bf16(static_cast<float>(value));
      return;
    default:
      MOE_THROW(InputError, "set_element: unsupported dtype ", dtype_name(t.dtype()));
  }
}

Tensor random_tensor(Shape shape, DType dtype, uint64_t seed, double lo, double hi) {
  Tensor t = Tensor::empty(shape, dtype);
  Philox rng(seed, stream_id("random_tensor"));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double value = lo + (hi - lo) * rng.uniform(static_cast<uint64_t>(i));
    set_element(t, i, value);
  }
  return t;
}

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype()); }

Tensor converted(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), dtype);
  for (int64_t i = 0; i < t.numel(); ++i) set_element(out, i, element_as_double(t, i));
  return out;
}

Tensor absolute(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::f64);
  for (int64_t i = 0; i < t.numel(); ++i)
    out.data<double>()[i] = std::fabs(element_as_double(t, i));
  return out;
}

double max_element(const Tensor& t) {
  double worst = -INFINITY;
  for (int64_t i = 0; i < t.numel(); ++i) worst = std::max(worst, element_as_double(t, i));
  return worst;
}

double dot(const Tensor& a, const Tensor& b) {
  MOE_CHECK(a.numel() == b.numel(), "dot: ", a.str(), " and ", b.str(), " differ in size");
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) sum += element_as_double(a, i) * element_as_double(b, i);
  return sum;
}

}  // namespace moe::testing
