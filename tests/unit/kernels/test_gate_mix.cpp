// gate_mix: values against the definition, the sigmoid special case, saturation, fp64 gradients
// of logits and values, and argument errors.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h).
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

TEST(GateMix, MatchesDefinition) {
  Stream stream;
  const int64_t models = 3, elements = 8;
  Tensor logits = random_tensor({models, 2, 4}, DType::f64, 1, -3, 3),
         values = random_tensor({models, 2, 4}, DType::f64, 2);
  Tensor out = Tensor::zeros({2, 4}, DType::f64), expected = Tensor::zeros({2, 4}, DType::f64);
  ops::gate_mix_forward(logits, values, out, stream);
  const double* l = logits.data<double>();
  const double* v = values.data<double>();
  for (int64_t i = 0; i < elements; ++i) {
    double z = 0, mix = 0;
    for (int64_t m = 0; m < models; ++m) z += std::exp(l[m * elements + i]);
    for (int64_t m = 0; m < models; ++m)
      mix += std::exp(l[m * elements + i]) / z * v[m * elements + i];
    expected.data<double>()[i] = mix;
  }
  EXPECT_TRUE(testing::all_close(out, expected, 1e-14, 1e-12));
}

TEST(GateMix, TwoModelsWithAZeroLogitAreASigmoidBlend) {
  Stream stream;
  Tensor logits = random_tensor({2, 3, 5}, DType::f64, 3, -4, 4),
         values = random_tensor({2, 3, 5}, DType::f64, 4);
  Tensor first = logits.narrow(0, 1);
  ops::fill(first, 0.0, stream);
  Tensor out = Tensor::zeros({3, 5}, DType::f64), expected = Tensor::zeros({3, 5}, DType::f64);
  ops::gate_mix_forward(logits, values, out, stream);
  for (int64_t i = 0; i < 15; ++i) {
    const double s = 1 / (1 + std::exp(-logits.data<double>()[15 + i]));
    expected.data<double>()[i] =
        (1 - s) * values.data<double>()[i] + s * values.data<double>()[15 + i];
  }
  EXPECT_TRUE(testing::all_close(out, expected, 1e-14, 1e-12));
}

TEST(GateMix, SaturatedGatePassesOneInputThroughExactly) {
  Stream stream;
  Tensor logits = Tensor::from_vector<float>({2, 1, 2}, {1000.f, -5.f, 0.f, 0.f});
  Tensor values = Tensor::from_vector<float>({2, 1, 2}, {0.3f, 0.7f, 1e6f, 2.f});
  Tensor out = Tensor::zeros({1, 2}, DType::f32);
  ops::gate_mix_forward(logits, values, out, stream);
  EXPECT_EQ(out.data<float>()[0], 0.3f);  // exp(-1000) underflows to 0: no overflow, no NaN
  EXPECT_TRUE(std::isfinite(out.data<float>()[1]));
}

TEST(GateMix, GradientMatchesFiniteDifferences) {
  Stream stream;
  Tensor logits = random_tensor({4, 3, 5}, DType::f64, 5, -2, 2),
         values = random_tensor({4, 3, 5}, DType::f64, 6);
  Tensor out = Tensor::zeros({3, 5}, DType::f64), projection = random_tensor({3, 5}, DType::f64, 7);
  auto loss = [&] {
    ops::gate_mix_forward(logits, values, out, stream);
    return testing::dot(out, projection);
  };
  loss();
  Tensor dlogits = zeros_like(logits), dvalues = zeros_like(values);
  ops::gate_mix_backward(projection, logits, values, out, dlogits, dvalues, stream);
  EXPECT_TRUE(
      testing::gradients_match(loss, {{"logits", logits, dlogits}, {"values", values, dvalues}}));
}

TEST(GateMix, RejectsMismatchedShapes) {
  Stream stream;
  Tensor logits = Tensor::zeros({2, 3, 4}, DType::f32),
         values = Tensor::zeros({3, 3, 4}, DType::f32);
  Tensor out = Tensor::zeros({3, 4}, DType::f32);
  EXPECT_THROW(ops::gate_mix_forward(logits, values, out, stream), InputError);
  Tensor flat = Tensor::zeros({6, 4}, DType::f32);
  EXPECT_THROW(ops::gate_mix_forward(flat, flat, out, stream), InputError);
  Tensor good_values = Tensor::zeros({2, 3, 4}, DType::f32),
         wrong_out = Tensor::zeros({2, 4}, DType::f32);
  EXPECT_THROW(ops::gate_mix_forward(logits, good_values, wrong_out, stream), InputError);
}

// Everything in double, narrowed through f32: 1 f32 rounding per output; |out|, |dvalues| <= 1,
// |dlogits| = |g (v - out) d| <= 2.
TEST(GateMix, Bf16RoundsTheF32ResultAndMatchesF64) {
  const Tensor logits = random_tensor({3, 4, 8}, DType::bf16, 60, -2, 2);
  const Tensor values = random_tensor({3, 4, 8}, DType::bf16, 61);
  const Tensor dout = random_tensor({4, 8}, DType::bf16, 62);
  // Backward reads forward's out: every run is given the same (bf16) one.
  Tensor saved_out = Tensor::empty({4, 8}, DType::bf16);
  Stream host;
  ops::gate_mix_forward(logits, values, saved_out, host);
  auto run = [&](DType dtype) {
    Stream stream;
    const Tensor l = testing::converted(logits, dtype), v = testing::converted(values, dtype);
    Tensor out = Tensor::empty({4, 8}, dtype), dl = Tensor::empty(logits.shape(), dtype);
    Tensor dv = Tensor::empty(values.shape(), dtype);
    ops::gate_mix_forward(l, v, out, stream);
    ops::gate_mix_backward(testing::converted(dout, dtype), l, v,
                           testing::converted(saved_out, dtype), dl, dv, stream);
    return std::vector<Tensor>{out, dl, dv};
  };
  EXPECT_TRUE(testing::bf16_rounds_f32_and_matches_f64(
      run, {{"out", 1, 1}, {"dlogits", 1, 2}, {"dvalues", 1, 1}}));
}

}  // namespace
}  // namespace moe
