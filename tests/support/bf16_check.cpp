#include "tests/support/bf16_check.h"

#include "core/half.h"
#include "tests/support/tolerance.h"

namespace moe::testing {

DType statistics_dtype(DType activation) {
  return activation == DType::bf16 ? DType::f32 : activation;
}

// got (bf16 or f32) against the f32 run's output: rounded once to bf16, or equal.
static ::testing::AssertionResult rounds_from_f32(const Tensor& got, const Tensor& f32) {
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float expected = f32.data<float>()[i];
    const bool same = got.dtype() == DType::bf16
                          ? got.data<bf16_t>()[i].bits == float_to_bf16(expected).bits
                          : got.data<float>()[i] == expected;
    if (!same)
      return ::testing::AssertionFailure()
             << "element " << i << " is " << element_as_double(got, i) << ", the f32 run's "
             << expected << (got.dtype() == DType::bf16 ? " rounded to bf16 is " : " differs: ")
             << (got.dtype() == DType::bf16 ? bf16_to_float(float_to_bf16(expected)) : expected);
  }
  return ::testing::AssertionSuccess();
}

// Each bf16 output within bf16_tolerance of its f64 counterpart.
static ::testing::AssertionResult close_to_f64(const std::vector<Tensor>& bf16,
                                               const std::vector<Tensor>& f64,
                                               const std::vector<Bf16Output>& outputs) {
  for (size_t j = 0; j < outputs.size(); ++j) {
    const Tolerance tol = bf16_tolerance(outputs[j].f32_ops, outputs[j].magnitude);
    // An f32 output does not round to bf16: only the f32 arithmetic separates it from f64.
    const double rtol = bf16[j].dtype() == DType::bf16 ? tol.rtol : 0;
    if (auto close = all_close(bf16[j], f64[j], tol.atol, rtol); !close)
      return ::testing::AssertionFailure()
             << outputs[j].name << " against f64: " << close.message();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult bf16_rounds_f32_and_matches_f64(const PrecisionRun& run,
                                                           const std::vector<Bf16Output>& outputs) {
  const std::vector<Tensor> bf16 = run(DType::bf16), f32 = run(DType::f32);
  for (size_t j = 0; j < outputs.size(); ++j)
    if (auto same = rounds_from_f32(bf16[j], f32[j]); !same)
      return ::testing::AssertionFailure() << outputs[j].name << ": " << same.message();
  return close_to_f64(bf16, run(DType::f64), outputs);
}

::testing::AssertionResult bf16_matches_f64(const PrecisionRun& run,
                                            const std::vector<Bf16Output>& outputs) {
  return close_to_f64(run(DType::bf16), run(DType::f64), outputs);
}

}  // namespace moe::testing
