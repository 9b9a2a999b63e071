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

// Each bf16 run output against the f64 run's, within bf16_tolerance; with rounds_f32 also against
// the f32 run's, rounded.
static ::testing::AssertionResult check_bf16(const PrecisionRun& run,
                                             const std::vector<Bf16Output>& outputs,
                                             bool rounds_f32) {
  const std::vector<Tensor> bf16 = run(DType::bf16), f64 = run(DType::f64);
  const std::vector<Tensor> f32 = rounds_f32 ? run(DType::f32) : std::vector<Tensor>{};
  for (size_t j = 0; j < outputs.size(); ++j) {
    const Bf16Output& out = outputs[j];
    if (rounds_f32)
      if (auto same = rounds_from_f32(bf16[j], f32[j]); !same)
        return ::testing::AssertionFailure() << out.name << ": " << same.message();
    const Tolerance tol = bf16_tolerance(out.f32_ops, out.magnitude);
    // An f32 output does not round to bf16: only the f32 arithmetic separates it from f64.
    const double rtol = bf16[j].dtype() == DType::bf16 ? tol.rtol : 0;
    if (auto close = all_close(bf16[j], f64[j], tol.atol, rtol); !close)
      return ::testing::AssertionFailure() << out.name << " against f64: " << close.message();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult bf16_rounds_f32_and_matches_f64(const PrecisionRun& run,
                                                           const std::vector<Bf16Output>& outputs) {
  return check_bf16(run, outputs, true);
}

::testing::AssertionResult bf16_matches_f64(const PrecisionRun& run,
                                            const std::vector<Bf16Output>& outputs) {
  return check_bf16(run, outputs, false);
}

::testing::AssertionResult f32_matches_f64(const PrecisionRun& run,
                                           const std::vector<Bf16Output>& outputs) {
  const std::vector<Tensor> f32 = run(DType::f32), f64 = run(DType::f64);
  for (size_t j = 0; j < outputs.size(); ++j) {
    const Tolerance tol = f32_tolerance(outputs[j].f32_ops, outputs[j].magnitude);
    if (auto close = all_close(f32[j], f64[j], tol.atol, tol.rtol); !close)
      return ::testing::AssertionFailure()
             << outputs[j].name << " against f64: " << close.message();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace moe::testing
