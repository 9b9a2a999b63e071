// sigmoid_gate: values against the definition, fp64 gradients of both inputs and argument errors.
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

TEST(SigmoidGate, MatchesDefinition) {
  Stream stream;
  Tensor x = random_tensor({3, 5}, DType::f64, 1),
         logits = random_tensor({3, 1}, DType::f64, 2, -4, 4);
  Tensor out = zeros_like(x), expected = zeros_like(x);
  ops::sigmoid_gate_forward(x, logits, out, stream);
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t d = 0; d < 5; ++d)
      expected.data<double>()[n * 5 + d] =
          x.data<double>()[n * 5 + d] / (1 + std::exp(-logits.data<double>()[n]));
  EXPECT_TRUE(testing::all_close(out, expected, 1e-14, 1e-12));
}

TEST(SigmoidGate, GradientMatchesFiniteDifferences) {
  Stream stream;
  Tensor x = random_tensor({4, 6}, DType::f64, 3),
         logits = random_tensor({4, 1}, DType::f64, 4, -3, 3);
  Tensor out = zeros_like(x), projection = random_tensor(x.shape(), DType::f64, 5);
  auto loss = [&] {
    ops::sigmoid_gate_forward(x, logits, out, stream);
    return testing::dot(out, projection);
  };
  Tensor dx = zeros_like(x), dlogits = zeros_like(logits);
  ops::sigmoid_gate_backward(projection, x, logits, dx, dlogits, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"x", x, dx}, {"logits", logits, dlogits}}));
}

TEST(SigmoidGate, RejectsLogitsThatAreNotOnePerRow) {
  Stream stream;
  Tensor x = Tensor::zeros({2, 4}, DType::f32), logits = Tensor::zeros({2, 2}, DType::f32);
  Tensor out = Tensor::zeros({2, 4}, DType::f32);
  EXPECT_THROW(ops::sigmoid_gate_forward(x, logits, out, stream), InputError);
  Tensor short_logits = Tensor::zeros({3, 1}, DType::f32);
  EXPECT_THROW(ops::sigmoid_gate_forward(x, short_logits, out, stream), InputError);
}

// s = sigmoid(l) narrowed to f32 and out = s x in f32: 2 f32 roundings; dx and dlogits are
// computed in double and narrowed through f32: 1; |dlogits| <= s (1 - s) D = D / 4.
TEST(SigmoidGate, Bf16RoundsTheF32ResultAndMatchesF64) {
  const int64_t rows = 4, width = 24;
  const Tensor x = random_tensor({rows, width}, DType::bf16, 50);
  const Tensor logits = random_tensor({rows, 1}, DType::bf16, 51, -3, 3);
  const Tensor dout = random_tensor({rows, width}, DType::bf16, 52);
  auto run = [&](DType dtype) {
    Stream stream;
    const Tensor xd = testing::converted(x, dtype), ld = testing::converted(logits, dtype);
    Tensor out = Tensor::empty(x.shape(), dtype), dx = Tensor::empty(x.shape(), dtype);
    Tensor dlogits = Tensor::empty(logits.shape(), dtype);
    ops::sigmoid_gate_forward(xd, ld, out, stream);
    ops::sigmoid_gate_backward(testing::converted(dout, dtype), xd, ld, dx, dlogits, stream);
    return std::vector<Tensor>{out, dx, dlogits};
  };
  EXPECT_TRUE(testing::bf16_rounds_f32_and_matches_f64(
      run, {{"out", 2, 1}, {"dx", 1, 1}, {"dlogits", 1, width / 4.0}}));
}

}  // namespace
}  // namespace moe
