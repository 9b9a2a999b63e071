// Fused softmax cross-entropy through the public op API: the gradient against fp64 finite
// differences, unsharded and over 2 and 3 vocabulary shards (the loss combined on the host as a
// vocab-parallel caller combines it), exact values where the math gives them (uniform logits:
// log V), ignored rows, targets in another shard, numerical stability at large logits, f32 against
// f64, and the argument errors.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h), f32 statistics.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

constexpr int kIgnore = -100;

struct CrossEntropyOut {
  Tensor target_logits, lse;
};

CrossEntropyOut forward(const Tensor& logits, const Tensor& targets, int ignore_index = kIgnore,
                        int64_t vocab_start = 0) {
  Stream stream;
  CrossEntropyOut out{Tensor::empty({logits.dim(0)}, logits.dtype()),
                      Tensor::empty({logits.dim(0)}, logits.dtype())};
  ops::cross_entropy_forward(logits, targets, ignore_index, vocab_start, out.target_logits, out.lse,
                             stream);
  return out;
}

// dlogits starts as NaN so that a row the kernel forgot to write cannot pass.
Tensor backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, float grad_scale,
                int ignore_index = kIgnore, int64_t vocab_start = 0) {
  Stream stream;
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype());
  ops::fill(dlogits, std::numeric_limits<double>::quiet_NaN(), stream);
  ops::cross_entropy_backward(logits, targets, lse, ignore_index, vocab_start, grad_scale, dlogits,
                              stream);
  return dlogits;
}

Tensor targets_of(const std::vector<int32_t>& values) {
  return Tensor::from_vector<int32_t>({static_cast<int64_t>(values.size())}, values);
}

// The unsharded per-row losses, lse - target_logit, 0 on ignored rows (the caller's masking).
std::vector<double> losses_of(const CrossEntropyOut& out, const Tensor& targets,
                              int ignore_index = kIgnore) {
  std::vector<double> losses;
  for (int64_t n = 0; n < targets.numel(); ++n)
    losses.push_back(targets.data<int32_t>()[n] == ignore_index
                         ? 0.0
                         : testing::element_as_double(out.lse, n) -
                               testing::element_as_double(out.target_logits, n));
  return losses;
}

// The vocabulary split at bounds (0 = b0 < b1 < ... < bS = V): shard s holds columns [b_s, b_s+1)
// as its own f64 tensor, as rank s of a tensor-parallel group would.
struct VocabShards {
  std::vector<int64_t> bounds;
  std::vector<Tensor> logits;
};

VocabShards split_vocab(const Tensor& logits, const std::vector<int64_t>& bounds) {
  VocabShards shards{bounds, {}};
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  for (size_t s = 0; s + 1 < bounds.size(); ++s) {
    const int64_t width = bounds[s + 1] - bounds[s];
    Tensor shard = Tensor::empty({rows, width}, DType::f64);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t v = 0; v < width; ++v)
        shard.data<double>()[n * width + v] = logits.data<double>()[n * vocab + bounds[s] + v];
    shards.logits.push_back(shard);
  }
  return shards;
}

// What a vocab-parallel caller does with the shards' forward outputs: lse_full = log(sum_s
// exp(lse_s)) and loss[n] = lse_full[n] - sum_s target_logits_s[n] (0 on ignored rows).
struct ShardedLoss {
  Tensor lse_full;
  std::vector<double> losses;
};

ShardedLoss sharded_loss(const VocabShards& shards, const Tensor& targets,
                         int ignore_index = kIgnore) {
  const int64_t rows = targets.numel();
  std::vector<double> sum_exp(rows, 0.0), target_sum(rows, 0.0);
  for (size_t s = 0; s < shards.logits.size(); ++s) {
    const CrossEntropyOut out = forward(shards.logits[s], targets, ignore_index, shards.bounds[s]);
    for (int64_t n = 0; n < rows; ++n) {
      sum_exp[n] += std::exp(out.lse.data<double>()[n]);
      target_sum[n] += out.target_logits.data<double>()[n];
    }
  }
  ShardedLoss result{Tensor::empty({rows}, DType::f64), {}};
  for (int64_t n = 0; n < rows; ++n) {
    const double lse_full = std::log(sum_exp[n]);
    result.lse_full.data<double>()[n] = lse_full;
    result.losses.push_back(targets.data<int32_t>()[n] == ignore_index ? 0.0
                                                                       : lse_full - target_sum[n]);
  }
  return result;
}

// The loss written straight from its definition, on the host.
std::vector<double> reference_losses(const Tensor& logits, const Tensor& targets) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  std::vector<double> losses;
  for (int64_t n = 0; n < rows; ++n) {
    const int32_t target = targets.data<int32_t>()[n];
    if (target == kIgnore) {
      losses.push_back(0.0);
      continue;
    }
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(logits.data<double>()[n * vocab + v]);
    losses.push_back(std::log(sum) - logits.data<double>()[n * vocab + target]);
  }
  return losses;
}

TEST(CrossEntropy, GradientMatchesFiniteDifferencesWithIgnoredRows) {
  const int64_t rows = 6, vocab = 7;
  const float grad_scale = 0.375f;
  Tensor logits = testing::random_tensor({rows, vocab}, DType::f64, 11, -3.0, 3.0);
  const Tensor targets = targets_of({3, kIgnore, 0, 6, kIgnore, 2});
  auto loss = [&] {
    double total = 0;
    for (double l : losses_of(forward(logits, targets), targets)) total += l * grad_scale;
    return total;
  };
  const Tensor dlogits = backward(logits, targets, forward(logits, targets).lse, grad_scale);
  EXPECT_TRUE(testing::gradients_match(loss, {{"logits", logits, dlogits}}));
}

// The vocab-parallel loss over 2 and 3 (uneven) shards: each shard's backward, given the combined
// lse, against finite differences of the combined loss in that shard's logits.
TEST(CrossEntropy, ShardedGradientMatchesFiniteDifferences) {
  const int64_t rows = 7, vocab = 9;
  const float grad_scale = 0.625f;
  const Tensor logits = testing::random_tensor({rows, vocab}, DType::f64, 12, -3.0, 3.0);
  // Targets in every shard, at shard edges, and ignored.
  const Tensor targets = targets_of({0, 4, kIgnore, 8, 5, 1, 2});
  for (const std::vector<int64_t>& bounds :
       {std::vector<int64_t>{0, 4, 9}, std::vector<int64_t>{0, 2, 3, 9}}) {
    const VocabShards shards = split_vocab(logits, bounds);
    auto loss = [&] {
      double total = 0;
      for (double l : sharded_loss(shards, targets).losses) total += l * grad_scale;
      return total;
    };
    const Tensor lse_full = sharded_loss(shards, targets).lse_full;
    std::vector<testing::GradInput> inputs;
    for (size_t s = 0; s < shards.logits.size(); ++s)
      inputs.push_back(
          {"shard " + std::to_string(s), shards.logits[s],
           backward(shards.logits[s], targets, lse_full, grad_scale, kIgnore, bounds[s])});
    EXPECT_TRUE(testing::gradients_match(loss, inputs)) << bounds.size() - 1 << " shards";
  }
}

TEST(CrossEntropy, ShardedLossEqualsUnshardedLoss) {
  const int64_t rows = 8, vocab = 11;
  const Tensor logits = testing::random_tensor({rows, vocab}, DType::f64, 13, -5.0, 5.0);
  const Tensor targets = targets_of({10, 0, 3, kIgnore, 4, 7, 6, 1});
  const std::vector<double> expected = reference_losses(logits, targets);
  const std::vector<double> unsharded = losses_of(forward(logits, targets), targets);
  for (const std::vector<int64_t>& bounds :
       {std::vector<int64_t>{0, 11}, std::vector<int64_t>{0, 5, 11},
        std::vector<int64_t>{0, 1, 4, 11}, std::vector<int64_t>{0, 3, 7, 8, 11}}) {
    const ShardedLoss got = sharded_loss(split_vocab(logits, bounds), targets);
    for (int64_t n = 0; n < rows; ++n) {
      EXPECT_NEAR(got.losses[n], expected[n], 1e-12) << bounds.size() - 1 << " shards, row " << n;
      EXPECT_NEAR(got.losses[n], unsharded[n], 1e-12) << bounds.size() - 1 << " shards, row " << n;
    }
  }
}

// Each row's target logit is written by the one shard that holds the target and is 0 in the others.
TEST(CrossEntropy, TargetLogitComesFromTheShardHoldingTheTarget) {
  const Tensor logits = testing::random_tensor({4, 6}, DType::f64, 14, 1.0, 2.0);
  const Tensor targets = targets_of({0, 2, 3, 5});
  const VocabShards shards = split_vocab(logits, {0, 3, 6});
  for (size_t s = 0; s < 2; ++s) {
    const CrossEntropyOut out = forward(shards.logits[s], targets, kIgnore, shards.bounds[s]);
    for (int64_t n = 0; n < 4; ++n) {
      const int32_t target = targets.data<int32_t>()[n];
      const bool here = target >= shards.bounds[s] && target < shards.bounds[s + 1];
      EXPECT_EQ(out.target_logits.data<double>()[n],
                here ? logits.data<double>()[n * 6 + target] : 0.0)
          << "shard " << s << " row " << n;
    }
  }
}

// A target in another shard (beyond this one's columns) takes no one-hot here: the gradient is the
// softmax term alone, positive everywhere.
TEST(CrossEntropy, TargetInAnotherShardGivesSoftmaxOnlyGradient) {
  const Tensor logits = Tensor::from_vector<double>({2, 3}, {0.0, 1.0, -1.0, 2.0, 0.0, 0.5});
  const Tensor targets = targets_of({1000, 1});  // row 1: id 1 lies below vocab_start 5
  const Tensor lse = Tensor::from_vector<double>({2}, {3.0, 4.0});
  const CrossEntropyOut out = forward(logits, targets, kIgnore, 5);
  EXPECT_EQ(out.target_logits.data<double>()[0], 0.0);
  EXPECT_EQ(out.target_logits.data<double>()[1], 0.0);
  const Tensor dlogits = backward(logits, targets, lse, 2.0f, kIgnore, 5);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t v = 0; v < 3; ++v)
      EXPECT_NEAR(dlogits.data<double>()[n * 3 + v],
                  2.0 * std::exp(logits.data<double>()[n * 3 + v] - lse.data<double>()[n]), 1e-15);
  // Shifted so that target 6 is column 1: the one-hot is subtracted there.
  const Tensor dlocal = backward(logits, targets_of({6, 1}), lse, 2.0f, kIgnore, 5);
  EXPECT_NEAR(dlocal.data<double>()[1], 2.0 * (std::exp(1.0 - 3.0) - 1.0), 1e-15);
  EXPECT_NEAR(dlocal.data<double>()[0], 2.0 * std::exp(0.0 - 3.0), 1e-15);
}

TEST(CrossEntropy, UniformLogitsGiveLogVocab) {
  const int64_t rows = 3, vocab = 50;
  for (DType dtype : {DType::f32, DType::f64}) {
    Stream stream;
    Tensor logits = Tensor::empty({rows, vocab}, dtype);
    ops::fill(logits, 0.0, stream);
    const Tensor targets = targets_of({0, 17, 49});
    const CrossEntropyOut out = forward(logits, targets);
    // lse = 0 + log(50), target logit 0: exact up to the one rounding to the dtype.
    const double expected =
        dtype == DType::f64 ? std::log(50.0) : static_cast<float>(std::log(50.0));
    for (int64_t n = 0; n < rows; ++n) {
      EXPECT_EQ(testing::element_as_double(out.target_logits, n), 0.0) << dtype_name(dtype);
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
  const Tensor targets = targets_of({4, 9});
  const std::vector<double> losses = losses_of(forward(logits, targets), targets);
  for (int64_t n = 0; n < 2; ++n) EXPECT_NEAR(losses[n], std::log(10.0), 1e-14);
}

TEST(CrossEntropy, MatchesDefinitionOnSmallRows) {
  const Tensor logits = Tensor::from_vector<double>({2, 3}, {1.0, 2.0, 3.0, -1.0, 0.5, 0.0});
  const CrossEntropyOut out = forward(logits, targets_of({0, 1}));
  const double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double row1 = std::log(std::exp(-1.0) + std::exp(0.5) + std::exp(0.0));
  EXPECT_NEAR(out.lse.data<double>()[0], row0, 1e-14);
  EXPECT_NEAR(out.lse.data<double>()[1], row1, 1e-14);
  EXPECT_EQ(out.target_logits.data<double>()[0], 1.0);
  EXPECT_EQ(out.target_logits.data<double>()[1], 0.5);
}

TEST(CrossEntropy, IgnoredRowsHaveZeroTargetLogitAndZeroGradient) {
  for (int ignore_index : {kIgnore, 2}) {
    const Tensor logits = testing::random_tensor({4, 5}, DType::f32, 5, 1.0, 4.0);
    const Tensor targets = targets_of({ignore_index, 1, ignore_index, 4});
    const CrossEntropyOut out = forward(logits, targets, ignore_index);
    const Tensor dlogits = backward(logits, targets, out.lse, 2.0f, ignore_index);
    for (int64_t n : {0, 2}) {
      EXPECT_EQ(out.target_logits.data<float>()[n], 0.0f) << "row " << n;
      for (int64_t v = 0; v < 5; ++v)
        EXPECT_EQ(dlogits.data<float>()[n * 5 + v], 0.0f) << "row " << n << " col " << v;
    }
    for (int64_t n : {1, 3}) {
      EXPECT_GT(out.lse.data<float>()[n], out.target_logits.data<float>()[n]) << "row " << n;
      double row_sum = 0;  // softmax sums to 1, the one-hot to 1: each live row sums to 0
      for (int64_t v = 0; v < 5; ++v) row_sum += dlogits.data<float>()[n * 5 + v];
      EXPECT_NEAR(row_sum, 0.0, 1e-6) << "row " << n;
    }
  }
}

// Ignored rows on every shard of a split vocabulary, with an ignore_index that is itself a column
// of the second shard: zero target logit and zero gradient on both.
TEST(CrossEntropy, ShardedIgnoredRowsHaveZeroTargetLogitAndZeroGradient) {
  for (int ignore_index : {kIgnore, 4}) {
    const Tensor logits = testing::random_tensor({4, 6}, DType::f64, 15, 1.0, 4.0);
    const Tensor targets = targets_of({ignore_index, 1, ignore_index, 5});
    const VocabShards shards = split_vocab(logits, {0, 3, 6});
    const Tensor lse_full = sharded_loss(shards, targets, ignore_index).lse_full;
    for (size_t s = 0; s < 2; ++s) {
      const CrossEntropyOut out =
          forward(shards.logits[s], targets, ignore_index, shards.bounds[s]);
      const Tensor dlogits =
          backward(shards.logits[s], targets, lse_full, 1.5f, ignore_index, shards.bounds[s]);
      for (int64_t n : {0, 2}) {
        EXPECT_EQ(out.target_logits.data<double>()[n], 0.0) << "shard " << s << " row " << n;
        for (int64_t v = 0; v < 3; ++v)
          EXPECT_EQ(dlogits.data<double>()[n * 3 + v], 0.0) << "shard " << s << " row " << n;
      }
      for (int64_t n : {1, 3})
        for (int64_t v = 0; v < 3; ++v)
          EXPECT_NE(dlogits.data<double>()[n * 3 + v], 0.0) << "shard " << s << " row " << n;
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
    // Adding a constant to a row shifts its lse by that constant. The shifted logits are rounded in
    // f32, so compare against the f64 lse of exactly those rounded values; the f32 lse itself is
    // rounded at the offset's magnitude (one f32 epsilon of it).
    Tensor shifted = Tensor::empty({rows, vocab}, DType::f64);
    for (int64_t i = 0; i < large.numel(); ++i)
      shifted.data<double>()[i] = static_cast<double>(large.data<float>()[i]) - offset;
    const CrossEntropyOut reference = forward(shifted, targets);
    const double tol = 1e-5 + std::abs(offset) * std::numeric_limits<float>::epsilon();
    for (int64_t n = 0; n < rows; ++n) {
      ASSERT_TRUE(std::isfinite(got.lse.data<float>()[n])) << "offset " << offset;
      EXPECT_NEAR(static_cast<double>(got.lse.data<float>()[n]) - offset,
                  reference.lse.data<double>()[n], tol)
          << "offset " << offset << " row " << n;
      EXPECT_EQ(got.target_logits.data<float>()[n],
                large.data<float>()[n * vocab + targets.data<int32_t>()[n]]);
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
  for (int64_t vocab_start : {0, 10}) {
    const CrossEntropyOut out64 = forward(logits64, targets, kIgnore, vocab_start);
    const CrossEntropyOut out32 = forward(logits32, targets, kIgnore, vocab_start);
    EXPECT_TRUE(testing::all_close(out32.target_logits, out64.target_logits, 1e-6, 1e-6));
    EXPECT_TRUE(testing::all_close(out32.lse, out64.lse, 1e-5, 1e-5));
    EXPECT_TRUE(testing::all_close(
        backward(logits32, targets, out32.lse, 0.5f, kIgnore, vocab_start),
        backward(logits64, targets, out64.lse, 0.5f, kIgnore, vocab_start), 1e-6, 1e-5));
  }
}

// A target may lie beyond this shard's columns (another rank holds it), but never below 0 unless
// it is ignore_index.
TEST(CrossEntropy, RejectsNegativeTargets) {
  const Tensor logits = Tensor::zeros({3, 4}, DType::f32);
  Tensor target_logits = Tensor::empty({3}, DType::f32), lse = Tensor::empty({3}, DType::f32);
  Tensor dlogits = Tensor::empty({3, 4}, DType::f32);
  Stream stream;
  for (int32_t bad : {-1, -7, kIgnore}) {
    const Tensor targets = targets_of({0, 3, bad});
    const int ignore_index = bad == kIgnore ? 1 : kIgnore;
    const std::string expected = "targets[2] = " + std::to_string(bad) + " is negative";
    EXPECT_TRUE(mentions(input_error_message([&] {
                           ops::cross_entropy_forward(logits, targets, ignore_index, 0,
                                                      target_logits, lse, stream);
                         }),
                         expected));
    EXPECT_TRUE(mentions(input_error_message([&] {
                           ops::cross_entropy_backward(logits, targets, lse, ignore_index, 0, 1.0f,
                                                       dlogits, stream);
                         }),
                         expected));
  }
  const Tensor beyond = targets_of({0, 4, 1000});
  EXPECT_NO_THROW(
      ops::cross_entropy_forward(logits, beyond, kIgnore, 0, target_logits, lse, stream));
  EXPECT_NO_THROW(
      ops::cross_entropy_backward(logits, beyond, lse, kIgnore, 0, 1.0f, dlogits, stream));
}

TEST(CrossEntropy, RejectsNegativeVocabStart) {
  const Tensor logits = Tensor::zeros({2, 4}, DType::f32);
  const Tensor targets = targets_of({1, 2});
  Tensor target_logits = Tensor::empty({2}, DType::f32), lse = Tensor::empty({2}, DType::f32);
  Tensor dlogits = Tensor::empty({2, 4}, DType::f32);
  Stream stream;
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits, targets, kIgnore, -4, target_logits,
                                                    lse, stream);
                       }),
                       "cross_entropy_forward: vocab_start must be >= 0, got -4"));
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_backward(logits, targets, lse, kIgnore, -1, 1.0f,
                                                     dlogits, stream);
                       }),
                       "cross_entropy_backward: vocab_start must be >= 0, got -1"));
}

TEST(CrossEntropy, RejectsTargetsOfWrongDtype) {
  const Tensor logits = Tensor::zeros({2, 4}, DType::f32);
  const Tensor targets = Tensor::from_vector<int64_t>({2}, {1, 2});
  Tensor target_logits = Tensor::empty({2}, DType::f32), lse = Tensor::empty({2}, DType::f32);
  Stream stream;
  const std::string message = input_error_message(
      [&] { ops::cross_entropy_forward(logits, targets, kIgnore, 0, target_logits, lse, stream); });
  EXPECT_TRUE(mentions(message, "'targets' has dtype i64, expected i32"));
}

TEST(CrossEntropy, RejectsWrongShapes) {
  const Tensor logits = Tensor::zeros({3, 4}, DType::f32);
  const Tensor targets = targets_of({0, 1, 2});
  Tensor target_logits = Tensor::empty({3}, DType::f32), lse = Tensor::empty({3}, DType::f32);
  Stream stream;
  Tensor short_target_logits = Tensor::empty({2}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits, targets, kIgnore, 0,
                                                    short_target_logits, lse, stream);
                       }),
                       "'target_logits' has shape [2], expected [3]"));
  const Tensor short_targets = targets_of({0, 1});
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits, short_targets, kIgnore, 0,
                                                    target_logits, lse, stream);
                       }),
                       "'targets' has shape [2], expected [3]"));
  const Tensor logits_3d = Tensor::zeros({3, 4, 1}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_forward(logits_3d, targets, kIgnore, 0, target_logits,
                                                    lse, stream);
                       }),
                       "'logits' has shape [3, 4, 1], expected 2 dims"));
  Tensor wide_dlogits = Tensor::empty({3, 5}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::cross_entropy_backward(logits, targets, lse, kIgnore, 0, 1.0f,
                                                     wide_dlogits, stream);
                       }),
                       "'dlogits' has shape [3, 5], expected [3, 4]"));
}

// bf16 logits in [-1, 1], V = 50: |lse| <= 1 + log 50 < 5. target_logits f32, exact; lse f32,
// narrowed from double: 1 f32 rounding; dlogits = 0.5 (exp(x - lse) - onehot), in double from the
// f32 lse (its rounding, |lse| u32 absolute, scales p by at most 5 u32) then narrowed: 1 + 5.
TEST(CrossEntropy, Bf16MatchesF64) {
  const Tensor logits = testing::random_tensor({4, 50}, DType::bf16, 70);
  const Tensor targets = Tensor::from_vector<int32_t>({4}, {3, -100, 49, 0});
  auto run = [&](DType dtype) {
    Stream stream;
    const DType stats = testing::statistics_dtype(dtype);
    const Tensor x = testing::converted(logits, dtype);
    Tensor target_logits = Tensor::empty({4}, stats), lse = Tensor::empty({4}, stats);
    ops::cross_entropy_forward(x, targets, -100, 0, target_logits, lse, stream);
    Tensor dlogits = Tensor::empty(logits.shape(), dtype);
    ops::cross_entropy_backward(x, targets, lse, -100, 0, 0.5f, dlogits, stream);
    return std::vector<Tensor>{target_logits, lse, dlogits};
  };
  EXPECT_TRUE(
      testing::bf16_matches_f64(run, {{"target_logits", 0, 1}, {"lse", 1, 5}, {"dlogits", 6, 1}}));
}

// The f32 path, logits in [-8, 8], V odd (not a multiple of the vector width), one row ignored and
// one whose target lies in another shard. target_logits: exact. lse = max + log(sum exp_f32(x -
// max)): x - max rounds (|x - max| <= 16: 16 u), exp_f32 (2 u relative), the double sum and log
// (none), the f32 result (|lse| <= 8 + log V < 14: 14 u): 32 u, within 2 ops at magnitude 16.
// dlogits = 0.5 exp_f32(x - lse) (- 0.5): x - lse carries lse's 32 u and rounds (|x - lse| <= 22:
// 22 u), exp_f32 2 u, the product 1 u: 57 u relative to p <= 1, and the target's p - 1 adds 1 u:
// within 29 ops at magnitude grad_scale (0.5) * 2.
TEST(CrossEntropy, F32MatchesF64) {
  for (int64_t vocab : {37, 131}) {
    const Tensor logits = testing::random_tensor({5, vocab}, DType::f32, 72, -8, 8);
    const Tensor targets = Tensor::from_vector<int32_t>(
        {5}, {3, -100, static_cast<int32_t>(vocab - 1), 0, static_cast<int32_t>(vocab + 4)});
    auto run = [&](DType dtype) {
      Stream stream;
      const Tensor x = testing::converted(logits, dtype);
      Tensor target_logits = Tensor::empty({5}, dtype), lse = Tensor::empty({5}, dtype);
      ops::cross_entropy_forward(x, targets, -100, 0, target_logits, lse, stream);
      Tensor dlogits = Tensor::empty(logits.shape(), dtype);
      ops::cross_entropy_backward(x, targets, lse, -100, 0, 0.5f, dlogits, stream);
      return std::vector<Tensor>{target_logits, lse, dlogits};
    };
    EXPECT_TRUE(testing::f32_matches_f64(
        run, {{"target_logits", 0, 1}, {"lse", 2, 16}, {"dlogits", 29, 1}}))
        << "vocab " << vocab;
  }
}

TEST(CrossEntropy, Bf16LogitsNeedF32Statistics) {
  Stream stream;
  const Tensor logits = testing::random_tensor({2, 8}, DType::bf16, 71);
  const Tensor targets = Tensor::from_vector<int32_t>({2}, {1, 2});
  Tensor target_logits = Tensor::empty({2}, DType::f32), lse = Tensor::empty({2}, DType::bf16);
  EXPECT_TRUE(testing::mentions(testing::input_error_message([&] {
                                  ops::cross_entropy_forward(logits, targets, -100, 0,
                                                             target_logits, lse, stream);
                                }),
                                "lse has dtype bf16, expected f32 for bf16 activations"));
}

}  // namespace
}  // namespace moe
