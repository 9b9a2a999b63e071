// The router-loss reductions: expert counts per group against a hand count, group_sum and
// group_broadcast against their definitions and as adjoints (so each is the other's backward,
// checked by fp64 finite differences), logsumexp_rows against its definition, at large logits, and
// its accumulating backward by finite differences, normalize_rows against its definition and by
// finite differences, and the argument errors.
// bf16: an InputError (router losses stay f32 in bf16 training).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;
using testing::random_tensor;

Tensor expert_counts(const Tensor& expert_ids, int64_t group, int choices, int64_t experts) {
  Stream stream;
  Tensor counts = Tensor::empty({expert_ids.dim(0) / group, experts}, DType::i64);
  ops::moe_expert_counts(expert_ids, group, choices, counts, stream);
  return counts;
}

Tensor group_sum(const Tensor& x, int64_t group) {
  Stream stream;
  Tensor out = Tensor::empty({x.dim(0) / group, x.dim(1)}, x.dtype());
  ops::group_sum(x, group, out, stream);
  return out;
}

Tensor group_broadcast(const Tensor& w, int64_t group) {
  Stream stream;
  Tensor out = Tensor::empty({w.dim(0) * group, w.dim(1)}, w.dtype());
  ops::group_broadcast(w, group, out, stream);
  return out;
}

Tensor logsumexp_rows(const Tensor& x) {
  Stream stream;
  Tensor lse = Tensor::empty({x.dim(0)}, x.dtype());
  ops::logsumexp_rows(x, lse, stream);
  return lse;
}

Tensor normalize_rows(const Tensor& x) {
  Stream stream;
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  ops::normalize_rows(x, out, stream);
  return out;
}

TEST(RouterLosses, NormalizeRowsDividesEachRowByItsSum) {
  const Tensor x = Tensor::from_vector<double>({2, 3}, {1, 2, 1, 0.4, 0.4, 1.2});
  EXPECT_TRUE(testing::all_close(
      normalize_rows(x), Tensor::from_vector<double>({2, 3}, {0.25, 0.5, 0.25, 0.2, 0.2, 0.6}),
      1e-15, 1e-15));
  const Tensor y = Tensor::from_vector<double>({1, 4}, {0.5, 0.5, 0.5, 0.5});  // sigmoid(0) x 4
  EXPECT_TRUE(testing::all_close(normalize_rows(y),
                                 Tensor::from_vector<double>({1, 4}, {0.25, 0.25, 0.25, 0.25}),
                                 1e-15, 1e-15));
  const Tensor zeros = Tensor::zeros({1, 3}, DType::f64);  // scores that underflowed: 0, not NaN
  EXPECT_EQ(normalize_rows(zeros).to_vector<double>(), (std::vector<double>{0, 0, 0}));
}

TEST(RouterLosses, NormalizeRowsGradientMatchesFiniteDifferences) {
  Tensor x = random_tensor({5, 6}, DType::f64, 81, 0.05, 1.0);  // sigmoid scores are positive
  const Tensor projection = random_tensor(x.shape(), DType::f64, 82);
  auto loss = [&] { return testing::dot(normalize_rows(x), projection); };
  Tensor dx = random_tensor(x.shape(), DType::f64, 83);  // assigned, whatever it held
  Stream stream;
  ops::normalize_rows_backward(x, projection, dx, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"x", x, dx}}));
}

// A row whose entries are all -inf sums exp to 0: its logsumexp is log(0) = -inf, not inf - inf =
// NaN (CPU and CUDA agree on this). The cross-entropy shares the same logsumexp.
TEST(RouterLosses, AllMinusInfinityRowHasLogsumexpMinusInfinity) {
  Stream stream;
  Tensor x =
      Tensor::from_vector<float>({2, 3}, {-INFINITY, -INFINITY, -INFINITY, 0.0f, 0.0f, 0.0f});
  Tensor lse = Tensor::zeros({2}, DType::f32);
  ops::logsumexp_rows(x, lse, stream);
  EXPECT_EQ(lse.data<float>()[0], -INFINITY);
  EXPECT_FLOAT_EQ(lse.data<float>()[1], std::log(3.0f));
  Tensor targets = Tensor::from_vector<int32_t>({2}, {1, 1});
  Tensor target_logits = Tensor::zeros({2}, DType::f32), ce_lse = Tensor::zeros({2}, DType::f32);
  ops::cross_entropy_forward(x, targets, -100, 0, target_logits, ce_lse, stream);
  EXPECT_EQ(ce_lse.data<float>()[0], -INFINITY);
}

TEST(RouterLosses, ExpertCountsCountTheFirstChoicesOfEachGroup) {
  // 4 tokens, k = 2, 3 experts; groups of 2 tokens.
  const Tensor ids = Tensor::from_vector<int32_t>({4, 2}, {0, 2, 2, 1, 1, 1, 0, 2});
  EXPECT_EQ(expert_counts(ids, 2, 2, 3).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 1, 2, /**/ 1, 2, 1}));
  EXPECT_EQ(expert_counts(ids, 2, 1, 3).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 0, 1, /**/ 1, 1, 0}));
  EXPECT_EQ(expert_counts(ids, 4, 2, 4).to_vector<int64_t>(), (std::vector<int64_t>{2, 3, 3, 0}));
}

TEST(RouterLosses, GroupSumAndGroupBroadcastFollowTheirDefinitions) {
  const Tensor x = Tensor::from_vector<double>({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(group_sum(x, 2).to_vector<double>(), (std::vector<double>{4, 6, 12, 14}));
  EXPECT_EQ(group_sum(x, 1).to_vector<double>(), x.to_vector<double>());
  const Tensor w = Tensor::from_vector<double>({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(group_broadcast(w, 2).to_vector<double>(),
            (std::vector<double>{1, 2, 1, 2, 3, 4, 3, 4}));
}

// <group_sum(x), w> == <x, group_broadcast(w)>: each op is the other's backward.
TEST(RouterLosses, GroupSumAndGroupBroadcastAreAdjoint) {
  const int64_t group = 3;
  const Tensor x = random_tensor({12, 5}, DType::f64, 71),
               w = random_tensor({4, 5}, DType::f64, 72);
  const double lhs = testing::dot(group_sum(x, group), w);
  const double rhs = testing::dot(x, group_broadcast(w, group));
  EXPECT_NEAR(lhs, rhs, 1e-12 * std::abs(lhs));
}

TEST(RouterLosses, GroupSumAndGroupBroadcastGradientsMatchFiniteDifferences) {
  const int64_t group = 3;
  Tensor x = random_tensor({12, 5}, DType::f64, 73), w = random_tensor({4, 5}, DType::f64, 74);
  const Tensor x_projection = random_tensor(x.shape(), DType::f64, 75);
  const Tensor w_projection = random_tensor(w.shape(), DType::f64, 76);
  auto sum_loss = [&] { return testing::dot(group_sum(x, group), w_projection); };
  EXPECT_TRUE(testing::gradients_match(sum_loss, {{"x", x, group_broadcast(w_projection, group)}}));
  auto broadcast_loss = [&] { return testing::dot(group_broadcast(w, group), x_projection); };
  EXPECT_TRUE(testing::gradients_match(broadcast_loss, {{"w", w, group_sum(x_projection, group)}}));
}

TEST(RouterLosses, LogsumexpFollowsItsDefinition) {
  const Tensor x = random_tensor({6, 7}, DType::f64, 77, -3.0, 3.0);
  Tensor expected = Tensor::empty({6}, DType::f64);
  for (int64_t n = 0; n < 6; ++n) {
    double sum = 0;
    for (int64_t e = 0; e < 7; ++e) sum += std::exp(x.data<double>()[n * 7 + e]);
    expected.data<double>()[n] = std::log(sum);
  }
  EXPECT_TRUE(testing::all_close(logsumexp_rows(x), expected, 1e-15, 1e-14));
}

// exp(1000) overflows even in f64: without the max subtraction these rows would be inf or -inf.
TEST(RouterLosses, LogsumexpAndItsGradientAreStableAtLargeLogits) {
  Stream stream;
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = Tensor::empty({2, 3}, dtype);
    ops::convert(Tensor::from_vector<double>({2, 3}, {1000, 1000, 999, -1000, -1000, -1000}), x,
                 stream);
    const Tensor lse = logsumexp_rows(x);
    const double tail = std::log(2 + std::exp(-1.0));
    const Tensor expected_lse =
        Tensor::from_vector<double>({2}, {1000 + tail, -1000 + std::log(3)});
    EXPECT_TRUE(testing::all_close(lse, expected_lse, 0.0, 1e-7)) << dtype_name(dtype);

    Tensor dlse = Tensor::empty({2}, dtype), dx = Tensor::zeros({2, 3}, dtype);
    ops::fill(dlse, 1.0, stream);
    ops::logsumexp_rows_backward(x, lse, dlse, dx, stream);  // dx = softmax(x)
    const double big = 1 / (2 + std::exp(-1.0));
    const Tensor softmax = Tensor::from_vector<double>(
        {2, 3}, {big, big, std::exp(-1.0) * big, 1.0 / 3, 1.0 / 3, 1.0 / 3});
    EXPECT_TRUE(testing::all_close(dx, softmax, 0.0, 1e-4)) << dtype_name(dtype);
  }
}

TEST(RouterLosses, LogsumexpGradientMatchesFiniteDifferencesAndAccumulates) {
  Stream stream;
  Tensor x = random_tensor({5, 6}, DType::f64, 78, -3.0, 3.0);
  const Tensor projection = random_tensor({5}, DType::f64, 79);
  auto loss = [&] { return testing::dot(logsumexp_rows(x), projection); };
  Tensor dx = testing::zeros_like(x);
  ops::logsumexp_rows_backward(x, logsumexp_rows(x), projection, dx, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"x", x, dx}}));

  // A second backward adds the same gradient again.
  const Tensor once = dx.clone();
  ops::logsumexp_rows_backward(x, logsumexp_rows(x), projection, dx, stream);
  ops::axpy(-2.0f, once, dx, stream);
  EXPECT_TRUE(testing::all_close(dx, testing::zeros_like(x), 1e-15, 0.0));
}

TEST(RouterLosses, NormalizeRowsRejectsBadArguments) {
  Stream stream;
  const Tensor x = Tensor::zeros({3, 4}, DType::f32);
  Tensor wrong = Tensor::zeros({3, 5}, DType::f32), right = Tensor::zeros({3, 4}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { ops::normalize_rows(x, wrong, stream); }),
                       "argument 'out' has shape [3, 5], expected [3, 4]"));
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::normalize_rows_backward(x, wrong, right, stream); }),
               "argument 'dout' has shape [3, 5], expected [3, 4]"));
  const Tensor flat = Tensor::zeros({4}, DType::f32);
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::normalize_rows(flat, right, stream); }), "'x'"));
}

TEST(RouterLosses, RejectsBadArguments) {
  Stream stream;
  const Tensor ids = Tensor::from_vector<int32_t>({4, 2}, {0, 1, 2, 3, 1, 0, 0, 1});
  auto counts_error = [&](const Tensor& expert_ids, int64_t group, int choices, Tensor counts) {
    return input_error_message(
        [&] { ops::moe_expert_counts(expert_ids, group, choices, counts, stream); });
  };
  const Tensor counts = Tensor::zeros({2, 4}, DType::i64);
  EXPECT_TRUE(mentions(counts_error(ids, 3, 2, counts),
                       "N = 4 rows of 'expert_ids' is not divisible by group = 3"));
  EXPECT_TRUE(mentions(counts_error(ids, 0, 2, counts), "group must be >= 1, got 0"));
  EXPECT_TRUE(mentions(counts_error(ids, 2, 0, counts), "choices must be in [1, 2] (k), got 0"));
  EXPECT_TRUE(mentions(counts_error(ids, 2, 3, counts), "choices must be in [1, 2] (k), got 3"));
  EXPECT_TRUE(mentions(counts_error(ids, 2, 2, Tensor::zeros({2, 4}, DType::i32)),
                       "argument 'counts' has dtype i32, expected i64"));
  EXPECT_TRUE(
      mentions(counts_error(ids, 1, 2, counts), "'counts' has shape [2, 4], expected [4, 4]"));
  EXPECT_TRUE(mentions(counts_error(ids, 2, 2, Tensor::zeros({2, 3}, DType::i64)),
                       "expert_ids[1, 1] = 3 is outside [0, 3)"));
  EXPECT_TRUE(mentions(counts_error(Tensor::zeros({4, 2}, DType::f32), 2, 2, counts),
                       "argument 'expert_ids' has dtype f32, expected i32"));

  const Tensor x = Tensor::zeros({6, 3}, DType::f32);
  Tensor sums = Tensor::zeros({2, 3}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { ops::group_sum(x, 4, sums, stream); }),
                       "N = 6 rows of 'x' is not divisible by group = 4"));
  EXPECT_TRUE(mentions(input_error_message([&] { ops::group_sum(x, 2, sums, stream); }),
                       "'out' has shape [2, 3], expected [3, 3]"));
  Tensor wide = Tensor::zeros({6, 4}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { ops::group_broadcast(sums, 3, wide, stream); }),
                       "'w' has shape [2, 3], expected [2, 4]"));
  Tensor sums64 = Tensor::zeros({2, 3}, DType::f64);
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::group_sum(x, 3, sums64, stream); }), "dtypes"));

  Tensor lse = Tensor::zeros({5}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { ops::logsumexp_rows(x, lse, stream); }),
                       "'lse' has shape [5], expected [6]"));
  Tensor good_lse = Tensor::zeros({6}, DType::f32), dx = Tensor::zeros({6, 3}, DType::f32);
  const Tensor short_dlse = Tensor::zeros({3}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::logsumexp_rows_backward(x, good_lse, short_dlse, dx, stream);
                       }),
                       "'dlse' has shape [3], expected [6]"));
  Tensor dx64 = Tensor::zeros({6, 3}, DType::f64);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::logsumexp_rows_backward(x, good_lse, good_lse, dx64, stream);
                       }),
                       "dtypes"));
}

TEST(RouterLosses, Bf16IsAnErrorThatNamesTheF32Recipe) {
  Stream stream;
  const Tensor x = Tensor::zeros({3, 4}, DType::bf16);
  Tensor lse = Tensor::empty({3}, DType::bf16);
  EXPECT_TRUE(
      testing::mentions(testing::input_error_message([&] { ops::logsumexp_rows(x, lse, stream); }),
                        "bf16 training keeps this op in f32"));
}

}  // namespace
}  // namespace moe
