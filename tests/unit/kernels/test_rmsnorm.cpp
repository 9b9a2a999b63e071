// rmsnorm: values against the definition, fp64 gradients (dx assigned, dweight accumulated) and
// argument errors.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

TEST(RmsNorm, MatchesDefinition) {
  Stream stream;
  Tensor x = random_tensor({3, 6}, DType::f64, 1), w = random_tensor({6}, DType::f64, 2);
  Tensor y = zeros_like(x), rstd = Tensor::zeros({3}, DType::f64);
  ops::rmsnorm_forward(x, w, 1e-5f, y, rstd, stream);
  Tensor expected = zeros_like(x);
  for (int n = 0; n < 3; ++n) {
    double mean_square = 0;
    for (int d = 0; d < 6; ++d) mean_square += std::pow(x.data<double>()[n * 6 + d], 2) / 6;
    for (int d = 0; d < 6; ++d)
      expected.data<double>()[n * 6 + d] =
          x.data<double>()[n * 6 + d] / std::sqrt(mean_square + 1e-5f) * w.data<double>()[d];
  }
  EXPECT_TRUE(testing::all_close(y, expected, 1e-12, 1e-12));
}

TEST(RmsNorm, GradientMatchesFiniteDifferences) {
  Stream stream;
  Tensor x = random_tensor({4, 7}, DType::f64, 3), w = random_tensor({7}, DType::f64, 4, 0.5, 1.5);
  Tensor y = zeros_like(x), rstd = Tensor::zeros({4}, DType::f64);
  Tensor projection = random_tensor(x.shape(), DType::f64, 5);
  auto loss = [&] {
    ops::rmsnorm_forward(x, w, 1e-6f, y, rstd, stream);
    return testing::dot(y, projection);
  };
  loss();
  Tensor dx = random_tensor(x.shape(), DType::f64, 6);  // garbage: dx must be assigned
  Tensor dw = zeros_like(w);
  ops::rmsnorm_backward(projection, x, w, rstd, dx, dw, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"x", x, dx}, {"weight", w, dw}}));
}

TEST(RmsNorm, WeightGradientAccumulates) {
  Stream stream;
  Tensor x = random_tensor({4, 5}, DType::f64, 7), w = random_tensor({5}, DType::f64, 8);
  Tensor y = zeros_like(x), rstd = Tensor::zeros({4}, DType::f64), dx = zeros_like(x);
  ops::rmsnorm_forward(x, w, 1e-6f, y, rstd, stream);
  Tensor dy = random_tensor(x.shape(), DType::f64, 9);
  Tensor once = zeros_like(w), twice = zeros_like(w);
  ops::rmsnorm_backward(dy, x, w, rstd, dx, once, stream);
  ops::rmsnorm_backward(dy, x, w, rstd, dx, twice, stream);
  ops::rmsnorm_backward(dy, x, w, rstd, dx, twice, stream);
  ops::scale(once, 2.0f, stream);
  EXPECT_TRUE(testing::all_close(twice, once, 1e-12, 1e-12));
}

TEST(RmsNorm, RejectsWrongWeightShapeAndBadEps) {
  Stream stream;
  Tensor x = Tensor::zeros({2, 4}, DType::f32), w = Tensor::zeros({3}, DType::f32);
  Tensor y = Tensor::zeros({2, 4}, DType::f32), rstd = Tensor::zeros({2}, DType::f32);
  try {
    ops::rmsnorm_forward(x, w, 1e-5f, y, rstd, stream);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'weight' has shape [3], expected [4]"), std::string::npos)
        << e.what();
  }
  Tensor w4 = Tensor::zeros({4}, DType::f32);
  EXPECT_THROW(ops::rmsnorm_forward(x, w4, 0.0f, y, rstd, stream), InputError);
  Tensor rstd_wrong = Tensor::zeros({4}, DType::f32);
  EXPECT_THROW(ops::rmsnorm_forward(x, w4, 1e-5f, y, rstd_wrong, stream), InputError);
}

}  // namespace
}  // namespace moe
