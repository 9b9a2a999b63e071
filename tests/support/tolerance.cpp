#include "tests/support/tolerance.h"

#include <cmath>
#include <sstream>

#include "core/half.h"

namespace moe::testing {

double element_as_double(const Tensor& t, int64_t index) {
  switch (t.dtype()) {
    case DType::f32:
      return t.data<float>()[index];
    case DType::f64:
      return t.data<double>()[index];
    case DType::bf16:
      return bf16_to_float(t.data<bf16_t>()[index]);
    case DType::i32:
      return t.data<int32_t>()[index];
    case DType::i64:
      return static_cast<double>(t.data<int64_t>()[index]);
    default:
      MOE_THROW(InputError, "all_close: unsupported dtype ", dtype_name(t.dtype()));
  }
}

Tolerance bf16_tolerance(int64_t f32_ops, double magnitude) {
  const double u = std::ldexp(1.0, -8), u32 = std::ldexp(1.0, -24);
  const double n_u32 = static_cast<double>(f32_ops) * u32;
  MOE_CHECK(n_u32 <= 0.5, "bf16_tolerance: ", f32_ops, " f32 operations exceed the gamma_n bound");
  const double gamma = 2 * n_u32;  // gamma_n = n u / (1 - n u) <= 2 n u while n u <= 1/2
  return {(1 + u) * gamma * magnitude, u};
}

double distance(const Tensor& a, const Tensor& b) {
  MOE_CHECK(a.numel() == b.numel(), "distance of tensors of ", a.numel(), " and ", b.numel(),
            " elements");
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = element_as_double(a, i) - element_as_double(b, i);
    sum += d * d;
  }
  return std::sqrt(sum);
}

Tolerance f32_tolerance(int64_t f32_ops, double magnitude) {
  const double n_u32 = static_cast<double>(f32_ops) * std::ldexp(1.0, -24);
  MOE_CHECK(n_u32 <= 0.5, "f32_tolerance: ", f32_ops, " f32 operations exceed the gamma_n bound");
  const double gamma = 2 * n_u32;
  return {gamma * magnitude, gamma};
}

::testing::AssertionResult all_close(const Tensor& got, const Tensor& expected, double atol,
                                     double rtol) {
  if (!(got.shape() == expected.shape()))
    return ::testing::AssertionFailure()
           << "shape " << got.shape().str() << " != expected " << expected.shape().str();
  int64_t worst = -1, failures = 0;
  double worst_ratio = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = element_as_double(got, i), e = element_as_double(expected, i);
    const double allowed = atol + rtol * std::fabs(e);
    const double diff = std::fabs(g - e);
    const double ratio = std::isnan(g) != std::isnan(e) ? INFINITY : diff == 0 ? 0 : diff / allowed;
    if (ratio > 1 || std::isnan(ratio)) ++failures;
    if (worst < 0 || ratio > worst_ratio || std::isnan(ratio)) worst = i, worst_ratio = ratio;
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(10);
  msg << failures << " of " << got.numel() << " elements outside atol=" << atol << " rtol=" << rtol
      << "; worst at flat index " << worst << ": got " << element_as_double(got, worst)
      << ", expected " << element_as_double(expected, worst) << " (" << worst_ratio * 100
      << "% of tolerance)";
  return ::testing::AssertionFailure() << msg.str();
}

}  // namespace moe::testing
