// Fused softmax cross-entropy through the public op API: the gradient against fp64 finite
// differences, exact values where the math gives them (uniform logits: log V), ignored rows,
// numerical stability at large logits, f32 against f64, and the argument errors.
#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

constexpr int kIgnore = -100;

struct CrossEntropyOut {
  Tensor losses, lse;
};

CrossEntropyOut forward(const Tensor& logits, const Tensor& targets, int ignore_index = kIgnore) {
  Stream stream;
  CrossEntropyOut out{Tensor::empty({logits.dim(0)}, logits.dtype()),
                      Tensor::empty({logits.dim(0)}, logits.dtype())};
  ops::cross_entropy_forward(logits, targets, ignore_index, out.losses, out.lse, stream);
  return out;
}

// dlogits starts as NaN so that a row the kernel forgot to write cannot pass.
Tensor backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, float grad_scale,
                int ignore_index = kIgnore) {
  Stream stream;
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype());
  ops::fill(dlogits, std::numeric_limits<double>::quiet_NaN(), stream);
  ops::cross_entropy_backward(logits, targets, lse, ignore_index, grad_scale, dlogits, stream);
  return dlogits;
}

Tensor targets_of(const std::vector<int32_t>& values) {
  return Tensor::from_vector<int32_t>({static_cast<int64_t>(values.size())}, values);
}

TEST(CrossEntropy, GradientMatchesFiniteDifferencesWithIgnoredRows) {
  const int64_t rows = 6, vocab = 7;
  const float grad_scale = 0.375f;
  Tensor logits = testing::random_tensor({rows, vocab}, DType::f64, 11, -3.0, 3.0);
  const Tensor targets = targets_of({3, kIgnore, 0, 6, kIgnore, 2});
  auto loss = [&] {
    double total = 0;
    for (double l : forward(logits, targets).losses.to_vector<double>()) total += l * grad_scale;
    return total;
  };
  const Tensor dlogits = backward(logits, targets, forward(logits, targets).lse, grad_scale);
  EXPECT_TRUE(testing::gradients_match(loss, {{"logits", logits, dlogits}}));
}

TEST(CrossEntropy, UniformLogitsGiveLogVocab) {
  const int64_t rows = 3, vocab = 50;
  for (DType dtype : {DType::f32, DType::f64}) {
    Stream stream;
    Tensor logits = Tensor::empty({rows, vocab}, dtype);
    ops::fill(logits, 0.0, stream);
    const Tensor targets = targets_of({0, 17, 49});
    const CrossEntropyOut out = forward(logits, targets);
    // lse = 0 + log(50), loss = lse - 0: exact up to the one rounding to the dtype.
    const double expected =
        dtype == DType::f64 ? std::log(50.0) : static_cast<float>(std::log(50.0));
    for (int64_t n = 0; n < rows; ++n) {
      EXPECT_EQ(testing::element_as_double(out.losses, n), expected) << dtype_name(dtype);
      EXPECT_EQ(testing::element_as_double(out.lse, n), expected) << dtype_name(dtype);
    }
    // softmax is 1/V everywhere, so the gradient is 1/V off target and 1/V - 1 on it.
    const Tensor dlogits = backward(logits, targets, out.lse, 1.0f);
    const double tol = dtype == DType::f64 ? 1e-15 : 1e-7;
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t v = 0; v < vocab; ++v)
        EXPECT_NEAR(testing::element_as_double(dlogits, n * vocab + v),
                    1.0 / vocab - (v == testing::element_as_double(targets, n) ? 1.0 : 0.0), tol);
  }
}

TEST(CrossEntropy, UniformLogitsAtAnyOffsetGiveLogVocab) {
  Stream stream;
  Tensor logits = Tensor::empty({2, 10}, DType::f64);
  ops::fill(logits, 3.25, stream);
  const CrossEntropyOut out = forward(logits, targets_of({4, 9}));
  for (int64_t n = 0; n < 2; ++n) EXPECT_NEAR(out.losses.data<double>()[n], std::log(10.0), 1e-14);
}

TEST(CrossEntropy, MatchesDefinitionOnSmallRows) {
  const Tensor logits = Tensor::from_vector<double>({2, 3}, {1.0, 2.0, 3.0, -1.0, 0.5, 0.0});
  const CrossEntropyOut out = forward(logits, targets_of({0, 1}));
  const double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double row1 = std::log(std::exp(-1.0) + std::exp(0.5) + std::exp(0.0));
  EXPECT_NEAR(out.lse.data<double>()[0], row0, 1e-14);
  EXPECT_NEAR(out.lse.data<double>()[1], row1, 1e-14);
  EXPECT_NEAR(out.losses.data<double>()[0], row0 - 1.0, 1e-14);
  EXPECT_NEAR(out.losses.data<double>()[1], row1 - 0.5, 1e-14);
}

TEST(CrossEntropy, IgnoredRowsHaveZeroLossAndZeroGradient) {
  for (int ignore_index : {kIgnore, 2}) {
    const Tensor logits = testing::random_tensor({4, 5}, DType::f32, 5, -4.0, 4.0);
    const Tensor targets = targets_of({ignore_index, 1, ignore_index, 4});
    const CrossEntropyOut out = forward(logits, targets, ignore_index);
    const Tensor dlogits = backward(logits, targets, out.lse, 2.0f, ignore_index);
    for (int64_t n : {0, 2}) {
      EXPECT_EQ(out.losses.data<float>()[n], 0.0f) << "row " << n;
      for (int64_t v = 0; v < 5; ++v)
        EXPECT_EQ(dlogits.data<float>()[n * 5 + v], 0.0f) << "row " << n << " col " << v;
    }
    for (int64_t n : {1, 3}) {
      EXPECT_GT(out.losses.data<float>()[n], 0.0f) << "row " << n;
      double row_sum = 0;  // softmax sums to 1, the one-hot to 1: each live row sums to 0
      for (int64_t v = 0; v < 5; ++v) row_sum += dlogits.data<float>()[n * 5 + v];
      EXPECT_NEAR(row_sum, 0.0, 1e-6) << "row " << n;
    }
  }
}

TEST(CrossEntropy, LargeLogitsStayFiniteAndShiftInvariant) {
  const int64_t rows = 3, vocab = 8;
  const Tensor small = testing::random_tensor({rows, vocab}, DType::f32, 9, -2.0, 2.0);
  const Tensor targets = targets_of({0, 5, 7});
  for (float offset : {1000.0f, -1000.0f, 80000.0f}) {
    Tensor large = small.clone();
    for (int64_t i = 0; i < large.numel(); ++i) large.data<float>()[i] += offset;
    const CrossEntropyOut got = forward(large, targets);
    const Tensor dlogits = backward(large, targets, got.lse, 1.0f);
    for (int64_t i = 0; i < dlogits.numel(); ++i)
      ASSERT_TRUE(std::isfinite(dlogits.data<float>()[i])) << "offset " << offset << " index " << i;
    // Adding a constant to a row changes neither the loss nor the softmax. The shifted logits are
    // rounded in f32, so compare against the f64 loss of exactly those rounded values.
    Tensor shifted = Tensor::empty({rows, vocab}, DType::f64);
    for (int64_t i = 0; i < large.numel(); ++i)
      shifted.data<double>()[i] = static_cast<double>(large.data<float>()[i]) - offset;
    const CrossEntropyOut reference = forward(shifted, targets);
    for (int64_t n = 0; n < rows; ++n) {
      ASSERT_TRUE(std::isfinite(got.losses.data<float>()[n])) << "offset " << offset;
      EXPECT_NEAR(got.losses.data<float>()[n], reference.losses.data<double>()[n], 1e-5)
          << "offset " << offset << " row " << n;
    }
  }
}

TEST(CrossEntropy, Float32MatchesFloat64) {
  const Tensor logits64 = testing::random_tensor({16, 33}, DType::f64, 21, -6.0, 6.0);
  Tensor logits32 = Tensor::empty(logits64.shape(), DType::f32);
  Stream stream;
  ops::convert(logits64, logits32, stream);
  std::vector<int32_t> values;
  for (int32_t n = 0; n < 16; ++n) values.push_back(n % 5 == 4 ? kIgnore : (n * 7) % 33);
  const Tensor targets = targets_of(values);
  const CrossEntropyOut out64 = forward(logits64, targets);
  const CrossEntropyOut out32 = forward(logits32, targets);
  EXPECT_TRUE(testing::all_close(out32.losses, out64.losses, 1e-5, 1e-5));
  EXPECT_TRUE(testing::all_close(out32.lse, out64.lse, 1e-5, 1e-5));
  EXPECT_TRUE(testing::all_close(backward(logits32, targets, out32.lse, 0.5f),
                                 backward(logits64, targets, out64.lse, 0.5f), 1e-6, 1e-5));
}

TEST(CrossEntropy, RejectsTargetsOutOfRange) {
  const Tensor logits = Tensor::zeros({3, 4}, DType::f32);
  Tensor losses = Tensor::empty({3}, DType::f32), lse = Tensor::empty({3}, DType::f32);
  Tensor dlogits = Tensor::empty({3, 4}, DType::f32);
  Stream stream;
  for (int32_t bad : {4, -1, 1000}) {
    const Tensor targets = targets_of({0, 3, bad});
    const std::string expected = "targets[2] = " + std::to_string(bad);
    EXPECT_TRUE(mentions(input_error_message([&] {
                           ops::cross_entropy_forward(logits, targets, kIgnore, losses, lse,
                                                      stream);
                         }),
                         expected));
    EXPECT_TRUE(mentions(input_error_message([&] {
                           ops::cross_entropy_backward(logits, targets, lse, kIgnore, 1.0f, dlogits,
                                                       stream);
                         }),
                         expected));
  }
}

TEST(CrossEntropy, RejectsTargetsOfWrongDtype) {
  const Tensor logits = Tensor::zeros({2, 4}, DType::f32);
  const Tensor targets = Tensor::from_vector<int64_t>({2}, {1, 2});
  Tensor losses = Tensor::empty({2}, DType::f32), lse = Tensor::empty({2}, DType::f32);
  Stream stream;
  const std::string message = input_error_message(
      [&] { ops::cross_entropy_forward(logits, targets, kIgnore, losses, lse, stream); });
  EXPECT_TRUE(mentions(message, "'targets' has dtype i64, expected i32"));
}

TEST(CrossEntropy, RejectsWrongShapes) {
  const Tensor logits = Tensor::zeros({3, 4}, DType::f32);
  const Tensor targets = targets_of({0, 1, 2});
  Tensor losses = Tensor::empty({3}, DType::f32), lse = Tensor::empty({3}, DType::f32);
  Stream stream;
  Tensor short_losses = Tensor::empty({2}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits, targets, kIgnore, short_losses, lse,
                                                    stream);
                       }),
                       "'losses' has shape [2], expected [3]"));
  const Tensor short_targets = targets_of({0, 1});
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits, short_targets, kIgnore, losses, lse,
                                                    stream);
                       }),
                       "'targets' has shape [2], expected [3]"));
  const Tensor logits_3d = Tensor::zeros({3, 4, 1}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits_3d, targets, kIgnore, losses, lse,
                                                    stream);
                       }),
                       "'logits' has shape [3, 4, 1], expected 2 dims"));
  Tensor wide_dlogits = Tensor::empty({3, 5}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_backward(logits, targets, lse, kIgnore, 1.0f,
                                                     wide_dlogits, stream);
                       }),
                       "'dlogits' has shape [3, 5], expected [3, 4]"));
}

}  // namespace
}  // namespace moe
