// rmsnorm: values against the definition, fp64 gradients (dx assigned, dweight accumulated) and
// argument errors.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h), and rstd must be f32.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/error_message.h"
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

// bf16 x, weight, dy; rstd and dweight f32. x in [-1, 1], w in [0.5, 1.5], dy in [-1, 1]; r bounds
// rstd. f32 operations: y = f32(x r) w: 2; rstd: 1 (narrowed from double); dx, in double from the
// f32 rstd (r^3 at most, rounded once): 4; dweight: the per-thread partials (at most one per row)
// added in f32 to the f32 r's rounding and to the initial dweight (|.| <= 1): rows + 3; dweight
// f32, then bf16 (rounded once per call).
TEST(RmsNorm, Bf16MatchesF64) {
  const int64_t rows = 5, width = 64;
  const Tensor x = random_tensor({rows, width}, DType::bf16, 20);
  const Tensor w = random_tensor({width}, DType::bf16, 21, 0.5, 1.5);
  const Tensor dy = random_tensor({rows, width}, DType::bf16, 22);
  double r = 0;
  for (int64_t n = 0; n < rows; ++n) {
    double sum = 0;
    for (int64_t d = 0; d < width; ++d)
      sum += std::pow(testing::element_as_double(x, n * width + d), 2);
    r = std::max(r, 1 / std::sqrt(sum / width + 1e-5));
  }
  const Tensor dw0 = random_tensor({width}, DType::bf16, 23);
  const double mean = 1.5 * r;  // |mean(dy w xhat)|
  for (bool f32_dweight : {true, false}) {
    auto run = [&](DType dtype) {
      Stream stream;
      const DType stats = testing::statistics_dtype(dtype);
      const Tensor xd = testing::converted(x, dtype), wd = testing::converted(w, dtype);
      Tensor y = Tensor::empty(x.shape(), dtype), rstd = Tensor::empty({rows}, stats);
      ops::rmsnorm_forward(xd, wd, 1e-5f, y, rstd, stream);
      Tensor dx = Tensor::empty(x.shape(), dtype);
      Tensor dw = testing::converted(dw0, f32_dweight ? stats : dtype);
      ops::rmsnorm_backward(testing::converted(dy, dtype), xd, wd, rstd, dx, dw, stream);
      return std::vector<Tensor>{y, rstd, dx, dw};
    };
    EXPECT_TRUE(testing::bf16_matches_f64(run, {{"y", 2, r * 1.5},
                                                {"rstd", 1, r},
                                                {"dx", 4, r * (1.5 + r * mean)},
                                                {"dweight", rows + 3, rows * r + 1}}))
        << (f32_dweight ? "f32 dweight" : "bf16 dweight");
  }
}

// The f32 path, on rows whose length is not a multiple of the vector width or of lane_sum's
// lanes. x, w, dy as above. rstd: the squares summed in double, rounded once to f32: 1 operation
// (counted 2). y = x r w: r's rounding and 2 products: 3. dx: its dot sums f32 products dy w (x r)
// (3 roundings, and r's) in double, so mean carries 4 relative plus its own rounding; then
// r (dy w - x r mean): 4 more, 9 in all against the magnitude of dx's terms. dweight: the f32
// product dy (x r) (2, and r's), summed in double, added to dw0 and rounded: 5.
TEST(RmsNorm, F32MatchesF64) {
  for (int64_t width : {1, 37, 130}) {
    const int64_t rows = 7;
    const Tensor x = random_tensor({rows, width}, DType::f32, 25);
    const Tensor w = random_tensor({width}, DType::f32, 26, 0.5, 1.5);
    const Tensor dy = random_tensor({rows, width}, DType::f32, 27);
    const Tensor dw0 = random_tensor({width}, DType::f32, 28);
    double r = 0;
    for (int64_t n = 0; n < rows; ++n) {
      double sum = 0;
      for (int64_t d = 0; d < width; ++d)
        sum += std::pow(testing::element_as_double(x, n * width + d), 2);
      r = std::max(r, 1 / std::sqrt(sum / width + 1e-5));
    }
    const double mean = 1.5 * r;
    auto run = [&](DType dtype) {
      Stream stream;
      const Tensor xd = testing::converted(x, dtype), wd = testing::converted(w, dtype);
      Tensor y = Tensor::empty(x.shape(), dtype), rstd = Tensor::empty({rows}, dtype);
      ops::rmsnorm_forward(xd, wd, 1e-5f, y, rstd, stream);
      Tensor dx = Tensor::empty(x.shape(), dtype), dw = testing::converted(dw0, dtype);
      ops::rmsnorm_backward(testing::converted(dy, dtype), xd, wd, rstd, dx, dw, stream);
      return std::vector<Tensor>{y, rstd, dx, dw};
    };
    EXPECT_TRUE(testing::f32_matches_f64(run, {{"y", 3, r * 1.5},
                                               {"rstd", 2, r},
                                               {"dx", 9, r * (1.5 + r * mean)},
                                               {"dweight", 5, rows * r + 1}}))
        << "width " << width;
  }
}

TEST(RmsNorm, Bf16NeedsAnF32Rstd) {
  Stream stream;
  const Tensor x = random_tensor({2, 4}, DType::bf16, 23), w = random_tensor({4}, DType::bf16, 24);
  Tensor y = Tensor::empty(x.shape(), DType::bf16), rstd = Tensor::empty({2}, DType::bf16);
  EXPECT_TRUE(testing::mentions(
      testing::input_error_message([&] { ops::rmsnorm_forward(x, w, 1e-5f, y, rstd, stream); }),
      "rmsnorm_forward: rstd has dtype bf16, expected f32 for bf16 activations"));
}

}  // namespace
}  // namespace moe
