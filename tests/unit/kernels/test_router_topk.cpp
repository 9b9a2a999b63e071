// router top-k: fp64 gradients for every scoring mode (also with a gradient at the scores), the
// selection rules (descending order, ties to the lower id, the bias choosing without weighting),
// the gate values against their definitions, and the argument errors.
// bf16 logits: an InputError (the router stays f32 in bf16 training).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using ops::RouterScore;
using ops::RouterTopkOptions;
using testing::input_error_message;
using testing::mentions;
using testing::random_tensor;

struct RouterOut {
  Tensor probs, expert_ids, scores;
};

RouterOut route(const Tensor& logits, const RouterTopkOptions& options, const Tensor& bias = {}) {
  Stream stream;
  const int64_t tokens = logits.dim(0);
  RouterOut out{Tensor::empty({tokens, options.k}, logits.dtype()),
                Tensor::empty({tokens, options.k}, DType::i32),
                Tensor::empty(logits.shape(), logits.dtype())};
  ops::router_topk_forward(logits, bias, options, out.probs, out.expert_ids, out.scores, stream);
  return out;
}

Tensor row_of(const std::vector<double>& values) {
  return Tensor::from_vector<double>({1, static_cast<int64_t>(values.size())}, values);
}

std::vector<int32_t> ids_of(const RouterOut& out) { return out.expert_ids.to_vector<int32_t>(); }

// Every combination of score function, renormalization and scaling, with and without a bias large
// enough to override the scores. Random logits keep the keys of neighbouring experts far apart
// compared with the finite-difference step, so the selection is the same on both sides of it.
TEST(RouterTopk, GradientMatchesFiniteDifferencesInEveryMode) {
  const int64_t tokens = 5, experts = 6;
  const Tensor bias = Tensor::from_vector<double>({experts}, {0, 0, 4, 0, 0, 4});
  for (RouterScore score : {RouterScore::softmax, RouterScore::sigmoid})
    for (bool renormalize : {true, false})
      for (float scaling : {1.0f, 2.5f})
        for (bool with_bias : {false, true}) {
          const RouterTopkOptions options{3, score, renormalize, scaling};
          Tensor logits = random_tensor({tokens, experts}, DType::f64, 21, -2.0, 2.0);
          const Tensor projection = random_tensor({tokens, options.k}, DType::f64, 22);
          const Tensor used_bias = with_bias ? bias : Tensor();
          auto loss = [&] {
            return testing::dot(route(logits, options, used_bias).probs, projection);
          };
          const RouterOut out = route(logits, options, used_bias);
          Tensor dlogits = testing::zeros_like(logits);
          Stream stream;
          ops::router_topk_backward(projection, Tensor(), out.expert_ids, out.scores, options,
                                    dlogits, stream);
          EXPECT_TRUE(testing::gradients_match(loss, {{"logits", logits, dlogits}}))
              << "score=" << (score == RouterScore::softmax ? "softmax" : "sigmoid")
              << " renormalize=" << renormalize << " scaling=" << scaling << " bias=" << with_bias;
        }
}

// A loss that also reads the scores directly (as the load-balancing loss does): its gradient
// dscores joins the one from the gates before the softmax/sigmoid backward.
TEST(RouterTopk, GradientWithScoresTermMatchesFiniteDifferences) {
  const int64_t tokens = 5, experts = 6;
  for (RouterScore score : {RouterScore::softmax, RouterScore::sigmoid}) {
    const RouterTopkOptions options{2, score, true, 1.5f};
    Tensor logits = random_tensor({tokens, experts}, DType::f64, 23, -2.0, 2.0);
    const Tensor gate_projection = random_tensor({tokens, options.k}, DType::f64, 24);
    const Tensor score_projection = random_tensor({tokens, experts}, DType::f64, 25);
    auto loss = [&] {
      const RouterOut out = route(logits, options);
      return testing::dot(out.probs, gate_projection) + testing::dot(out.scores, score_projection);
    };
    const RouterOut out = route(logits, options);
    Tensor dlogits = testing::zeros_like(logits);
    Stream stream;
    ops::router_topk_backward(gate_projection, score_projection, out.expert_ids, out.scores,
                              options, dlogits, stream);
    EXPECT_TRUE(testing::gradients_match(loss, {{"logits", logits, dlogits}}))
        << "score=" << (score == RouterScore::softmax ? "softmax" : "sigmoid");
  }
}

TEST(RouterTopk, ChoosesInDescendingOrderWithTiesToTheLowerId) {
  const RouterTopkOptions top2{2, RouterScore::softmax, false, 1.0f};
  EXPECT_EQ(ids_of(route(row_of({0, 2, 1, 3}), top2)), (std::vector<int32_t>{3, 1}));
  EXPECT_EQ(ids_of(route(row_of({1, 3, 3, 0}), top2)), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(ids_of(route(row_of({5, 5, 5, 5, 5}), {4, RouterScore::sigmoid, true, 1.0f})),
            (std::vector<int32_t>{0, 1, 2, 3}));
  // A NaN logit ranks last under sigmoid scores instead of corrupting the order.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(ids_of(route(row_of({nan, 1, 2}), {2, RouterScore::sigmoid, false, 1.0f})),
            (std::vector<int32_t>{2, 1}));
}

TEST(RouterTopk, BiasChoosesExpertsButGatesAreTheRawScores) {
  const std::vector<double> logits = {2, 1, 0, -1};
  const Tensor bias = Tensor::from_vector<double>({4}, {0, 0, 10, 0});
  const RouterOut out = route(row_of(logits), {2, RouterScore::softmax, false, 1.0f}, bias);
  EXPECT_EQ(ids_of(out), (std::vector<int32_t>{2, 0}));
  double sum = 0;
  for (double l : logits) sum += std::exp(l);
  EXPECT_TRUE(testing::all_close(
      out.probs, row_of({std::exp(logits[2]) / sum, std::exp(logits[0]) / sum}), 1e-15, 1e-14));
}

// With renormalization, softmax top-k gates equal a softmax over the chosen logits alone.
TEST(RouterTopk, RenormalizedSoftmaxGatesAreSoftmaxOverTheChosenLogits) {
  const int64_t tokens = 7, experts = 8;
  const float scaling = 1.5f;
  const Tensor logits = random_tensor({tokens, experts}, DType::f64, 31, -3.0, 3.0);
  const RouterOut out = route(logits, {3, RouterScore::softmax, true, scaling});
  const std::vector<int32_t> ids = ids_of(out);
  Tensor expected = Tensor::empty({tokens, 3}, DType::f64);
  for (int64_t n = 0; n < tokens; ++n) {
    const double* row = logits.data<double>() + n * experts;
    double sum = 0;
    for (int j = 0; j < 3; ++j) sum += std::exp(row[ids[n * 3 + j]]);
    for (int j = 0; j < 3; ++j)
      expected.data<double>()[n * 3 + j] = scaling * std::exp(row[ids[n * 3 + j]]) / sum;
  }
  EXPECT_TRUE(testing::all_close(out.probs, expected, 1e-15, 1e-13));
}

TEST(RouterTopk, SigmoidScoresAndUnnormalizedScaledGates) {
  const std::vector<double> logits = {-1.5, 0.25, 3, 0.5};
  const RouterOut out = route(row_of(logits), {2, RouterScore::sigmoid, false, 2.0f});
  Tensor expected_scores = row_of(logits);
  for (int64_t e = 0; e < 4; ++e)
    expected_scores.data<double>()[e] = 1.0 / (1.0 + std::exp(-logits[e]));
  EXPECT_TRUE(testing::all_close(out.scores, expected_scores, 1e-15, 1e-14));
  EXPECT_EQ(ids_of(out), (std::vector<int32_t>{2, 3}));
  EXPECT_TRUE(testing::all_close(
      out.probs, row_of({2.0 / (1.0 + std::exp(-3.0)), 2.0 / (1.0 + std::exp(-0.5))}), 1e-15,
      1e-14));
}

TEST(RouterTopk, Float32AgreesWithFloat64) {
  const RouterTopkOptions options{2, RouterScore::softmax, true, 1.0f};
  const Tensor logits64 = random_tensor({16, 8}, DType::f64, 41, -3.0, 3.0);
  const Tensor logits32 = random_tensor({16, 8}, DType::f32, 41, -3.0, 3.0);
  const RouterOut out64 = route(logits64, options), out32 = route(logits32, options);
  EXPECT_EQ(ids_of(out32), ids_of(out64));
  EXPECT_TRUE(testing::all_close(out32.probs, out64.probs, 1e-6, 1e-6));
}

// Group-limited choice, hand-made: 8 experts in 4 groups of 2, keep 2 groups, top-2. Expert 0
// has the best score, but its group {0, 1} sums lowest with 1's; the kept groups are {4, 5}
// (0.60 + 0.50) and {6, 7} (0.55 + 0.40), so the choice is 4 and 6; without groups it is 0 and 4.
// In 2 groups of 4 the first group {0..3} sums to 0.7 + 0.3 and the second to 0.6 + 0.55: kept
// with one group, the choice is 4 and 6 again, and with 8 groups of one (keep 2) it is 0 and 4.
TEST(RouterTopk, GroupLimitedChoiceKeepsTheGroupsWithTheBestTwoKeys) {
  const std::vector<double> s = {0.70, 0.05, 0.30, 0.20, 0.60, 0.50, 0.55, 0.40};
  std::vector<double> logits;
  for (double p : s) logits.push_back(std::log(p / (1 - p)));  // sigmoid scores = s
  RouterTopkOptions options{2, RouterScore::sigmoid, true, 1.0f, 4, 2};
  EXPECT_EQ(ids_of(route(row_of(logits), options)), (std::vector<int32_t>{4, 6}));
  options.groups = 1, options.kept_groups = 1;
  EXPECT_EQ(ids_of(route(row_of(logits), options)), (std::vector<int32_t>{0, 4}));
  options.groups = 2, options.kept_groups = 1;
  EXPECT_EQ(ids_of(route(row_of(logits), options)), (std::vector<int32_t>{4, 6}));
  options.groups = 8, options.kept_groups = 2;
  EXPECT_EQ(ids_of(route(row_of(logits), options)), (std::vector<int32_t>{0, 4}));
  // The bias ranks groups too (it is part of the key), and the gates stay the raw scores.
  options.groups = 4, options.kept_groups = 2;
  const Tensor bias = Tensor::from_vector<double>({8}, {0, 0.5, 0, 0, 0, 0, 0, 0});
  const RouterOut biased = route(row_of(logits), options, bias);
  EXPECT_EQ(ids_of(biased), (std::vector<int32_t>{0, 4}));  // {0, 1} now sums 1.25
  EXPECT_TRUE(testing::all_close(biased.probs, row_of({0.70 / 1.30, 0.60 / 1.30}), 1e-12, 1e-12));
}

// Random rows against a plain second reading of the rule (sort each group, sort the groups, sort
// the kept experts); random keys leave no ties. Softmax and sigmoid, with a bias.
TEST(RouterTopk, GroupLimitedChoiceMatchesABruteForceReference) {
  const int64_t tokens = 40, experts = 12;
  const Tensor bias = random_tensor({experts}, DType::f64, 31, -0.2, 0.2);
  for (RouterScore score : {RouterScore::softmax, RouterScore::sigmoid})
    for (const auto& [groups, kept] : std::vector<std::pair<int, int>>{{3, 1}, {4, 2}, {6, 3}}) {
      const RouterTopkOptions options{3, score, true, 1.0f, groups, kept};
      const Tensor logits = random_tensor({tokens, experts}, DType::f64, 32 + groups, -2.0, 2.0);
      const RouterOut out = route(logits, options, bias);
      const int64_t size = experts / groups;
      for (int64_t n = 0; n < tokens; ++n) {
        std::vector<double> key(experts);
        for (int64_t e = 0; e < experts; ++e)
          key[e] = out.scores.data<double>()[n * experts + e] + bias.data<double>()[e];
        std::vector<double> group_key(groups);
        for (int g = 0; g < groups; ++g) {
          std::vector<double> members(key.begin() + g * size, key.begin() + (g + 1) * size);
          std::sort(members.rbegin(), members.rend());
          group_key[g] = members[0] + members[1];
        }
        std::vector<int> order(groups);
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(),
                  [&](int a, int b) { return group_key[a] > group_key[b]; });
        std::vector<int32_t> allowed;
        for (int j = 0; j < kept; ++j)
          for (int64_t e = order[j] * size; e < (order[j] + 1) * size; ++e)
            allowed.push_back(static_cast<int32_t>(e));
        std::sort(allowed.begin(), allowed.end(),
                  [&](int32_t a, int32_t b) { return key[a] > key[b]; });
        const std::vector<int32_t> expected(allowed.begin(), allowed.begin() + options.k);
        const std::vector<int32_t> got(out.expert_ids.data<int32_t>() + n * options.k,
                                       out.expert_ids.data<int32_t>() + (n + 1) * options.k);
        EXPECT_EQ(got, expected) << "token " << n << " groups " << groups << " kept " << kept;
      }
    }
}

// The choice has no gradient; the gates' gradient under a group-limited choice matches finite
// differences like any other.
TEST(RouterTopk, GroupLimitedGradientMatchesFiniteDifferences) {
  const RouterTopkOptions options{2, RouterScore::sigmoid, true, 2.5f, 3, 2};
  Tensor logits = random_tensor({5, 9}, DType::f64, 41, -2.0, 2.0);
  const Tensor projection = random_tensor({5, 2}, DType::f64, 42);
  auto loss = [&] { return testing::dot(route(logits, options).probs, projection); };
  const RouterOut out = route(logits, options);
  Tensor dlogits = testing::zeros_like(logits);
  Stream stream;
  ops::router_topk_backward(projection, Tensor(), out.expert_ids, out.scores, options, dlogits,
                            stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"logits", logits, dlogits}}));
}

TEST(RouterTopk, RejectsBadArguments) {
  Stream stream;
  const Tensor logits = Tensor::zeros({3, 4}, DType::f32);
  Tensor probs = Tensor::zeros({3, 2}, DType::f32), ids = Tensor::zeros({3, 2}, DType::i32);
  Tensor scores = Tensor::zeros({3, 4}, DType::f32);
  const RouterTopkOptions top2{2, RouterScore::softmax, true, 1.0f};
  auto forward = [&](const RouterTopkOptions& options, Tensor& p, Tensor& i, const Tensor& bias) {
    return input_error_message(
        [&] { ops::router_topk_forward(logits, bias, options, p, i, scores, stream); });
  };
  EXPECT_TRUE(mentions(forward({0, RouterScore::softmax, true, 1.0f}, probs, ids, {}),
                       "top-k must be in [1, 4] (the number of experts), got 0"));
  EXPECT_TRUE(mentions(forward({5, RouterScore::softmax, true, 1.0f}, probs, ids, {}), "got 5"));
  Tensor wide_probs = Tensor::zeros({3, 3}, DType::f32);
  EXPECT_TRUE(mentions(forward(top2, wide_probs, ids, {}), "probs"));
  Tensor float_ids = Tensor::zeros({3, 2}, DType::f32);
  EXPECT_TRUE(mentions(forward(top2, probs, float_ids, {}), "expert_ids"));
  EXPECT_TRUE(mentions(forward(top2, probs, ids, Tensor::zeros({5}, DType::f32)), "bias"));
  EXPECT_TRUE(mentions(forward(top2, probs, ids, Tensor::zeros({4}, DType::f64)), "dtypes"));
  EXPECT_TRUE(mentions(forward({2, RouterScore::softmax, true, 1.0f, 3, 1}, probs, ids, {}),
                       "groups = 3 must divide the 4 experts"));
  EXPECT_TRUE(mentions(forward({2, RouterScore::softmax, true, 1.0f, 2, 3}, probs, ids, {}),
                       "kept_groups must be in [1, groups = 2], got 3"));
  EXPECT_TRUE(mentions(forward({2, RouterScore::softmax, true, 1.0f, 4, 1}, probs, ids, {}),
                       "1 kept groups of 1 experts hold fewer than top-k = 2"));

  Tensor dlogits = Tensor::zeros({3, 4}, DType::f32);
  auto backward = [&](const Tensor& dscores, const Tensor& expert_ids) {
    return input_error_message([&] {
      ops::router_topk_backward(probs, dscores, expert_ids, scores, top2, dlogits, stream);
    });
  };
  const Tensor bad_ids = Tensor::from_vector<int32_t>({3, 2}, {0, 1, 2, 3, 4, 0});
  EXPECT_TRUE(mentions(backward({}, bad_ids), "expert_ids[2, 0] = 4 is outside [0, 4)"));
  EXPECT_TRUE(mentions(backward(Tensor::zeros({3, 5}, DType::f32), ids),
                       "argument 'dscores' has shape [3, 5], expected [3, 4]"));
  EXPECT_TRUE(mentions(backward(Tensor::zeros({3, 4}, DType::f64), ids), "dtypes"));
  EXPECT_TRUE(mentions(backward(Tensor::zeros({3, 4}, DType::i32), ids),
                       "argument 'dscores' has dtype i32, expected f32"));
}

TEST(RouterTopk, Bf16LogitsAreAnErrorThatNamesTheF32Recipe) {
  Stream stream;
  const Tensor logits = Tensor::zeros({3, 4}, DType::bf16);
  Tensor probs = Tensor::empty({3, 2}, DType::bf16), scores = Tensor::empty({3, 4}, DType::bf16);
  Tensor ids = Tensor::empty({3, 2}, DType::i32);
  EXPECT_TRUE(testing::mentions(
      testing::input_error_message([&] {
        ops::router_topk_forward(logits, Tensor(), ops::RouterTopkOptions{}, probs, ids, scores,
                                 stream);
      }),
      "router_topk_forward: dtype bf16 is not supported on cpu (supported: f32, f64); "
      "bf16 training keeps this op in f32"));
}

}  // namespace
}  // namespace moe
