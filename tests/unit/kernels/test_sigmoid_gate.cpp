// sigmoid_gate: values against the definition, fp64 gradients of both inputs and argument errors.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
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

}  // namespace
}  // namespace moe
