// Token permutation by expert: the stable counting sort, the row movers against their definitions,
// fp64 gradients of permute, unpermute and combine (with dropped slots), the identity round trip of
// a whole dispatch, and the argument errors.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h).
#include <limits>
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
using testing::random_tensor;

struct SortedSlots {
  Tensor slots, counts;
};

SortedSlots sort_by_expert(const Tensor& expert_ids, int num_experts) {
  Stream stream;
  SortedSlots out{Tensor::empty({expert_ids.numel()}, DType::i32),
                  Tensor::empty({num_experts}, DType::i64)};
  ops::moe_sort_by_expert(expert_ids, num_experts, out.slots, out.counts, stream);
  return out;
}

Tensor slots_of(const std::vector<int32_t>& values) {
  return Tensor::from_vector<int32_t>({static_cast<int64_t>(values.size())}, values);
}

Tensor nan_tensor(Shape shape) {
  Stream stream;
  Tensor t = Tensor::empty(shape, DType::f64);
  ops::fill(t, std::numeric_limits<double>::quiet_NaN(), stream);
  return t;
}

TEST(MoePermute, SortGroupsSlotsByExpertInTokenOrder) {
  // Token 0 -> experts 2, 0; token 1 -> 1, 2; token 2 -> 0, 2. Expert 3 gets nothing.
  const Tensor ids = Tensor::from_vector<int32_t>({3, 2}, {2, 0, 1, 2, 0, 2});
  const SortedSlots sorted = sort_by_expert(ids, 4);
  EXPECT_EQ(sorted.slots.to_vector<int32_t>(), (std::vector<int32_t>{1, 4, 2, 0, 3, 5}));
  EXPECT_EQ(sorted.counts.to_vector<int64_t>(), (std::vector<int64_t>{2, 1, 3, 0}));
}

TEST(MoePermute, SortOfRandomRoutingIsAStablePartition) {
  const int64_t tokens = 200, k = 3;
  const int experts = 7;
  std::vector<int32_t> choices(tokens * k);
  const Tensor draws = random_tensor({tokens * k}, DType::f64, 51, 0.0, experts);
  for (int64_t s = 0; s < tokens * k; ++s)
    choices[s] = static_cast<int32_t>(draws.data<double>()[s]);
  const SortedSlots sorted =
      sort_by_expert(Tensor::from_vector<int32_t>({tokens, k}, choices), experts);
  const std::vector<int32_t> slots = sorted.slots.to_vector<int32_t>();
  const std::vector<int64_t> counts = sorted.counts.to_vector<int64_t>();
  int64_t r = 0;
  std::vector<bool> seen(tokens * k, false);
  for (int e = 0; e < experts; ++e)
    for (int64_t i = 0; i < counts[e]; ++i, ++r) {
      ASSERT_EQ(choices[slots[r]], e) << "row " << r;
      if (i > 0) {
        EXPECT_LT(slots[r - 1], slots[r]) << "expert " << e << " is not in token order";
      }
      EXPECT_FALSE(seen[slots[r]]) << "slot " << slots[r] << " listed twice";
      seen[slots[r]] = true;
    }
  EXPECT_EQ(r, tokens * k) << "counts must add up to every slot";
}

TEST(MoePermute, PermuteGathersTokenRowsAndUnpermuteLeavesDroppedSlotsZero) {
  Stream stream;
  const int k = 2;
  const Tensor x = random_tensor({3, 4}, DType::f64, 52);
  const Tensor slots = slots_of({5, 0, 3});  // slots 1, 2 and 4 were dropped
  Tensor rows = nan_tensor({3, 4});
  ops::moe_permute(x, slots, k, rows, stream);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c)
      EXPECT_EQ(rows.data<double>()[r * 4 + c],
                x.data<double>()[(slots.data<int32_t>()[r] / k) * 4 + c]);

  Tensor y_slots = nan_tensor({6, 4});
  ops::moe_unpermute(rows, slots, y_slots, stream);
  for (int64_t s = 0; s < 6; ++s)
    for (int64_t c = 0; c < 4; ++c) {
      const bool kept = s == 0 || s == 3 || s == 5;
      EXPECT_EQ(y_slots.data<double>()[s * 4 + c], kept ? x.data<double>()[(s / k) * 4 + c] : 0.0)
          << "slot " << s;
    }
}

TEST(MoePermute, PermuteAndUnpermuteGradientsMatchFiniteDifferences) {
  Stream stream;
  const int k = 3;
  const int64_t tokens = 4, width = 5;
  // Slots in no particular order, two of them dropped (4 and 9): the backward scatter must sum the
  // three rows of token 2 and leave nothing for the dropped slots.
  const Tensor slots = slots_of({0, 7, 11, 3, 6, 8, 1, 2, 5, 10});
  Tensor x = random_tensor({tokens, width}, DType::f64, 53);
  Tensor rows = Tensor::zeros({slots.numel(), width}, DType::f64);
  const Tensor projection = random_tensor(rows.shape(), DType::f64, 54);
  auto permute_loss = [&] {
    ops::moe_permute(x, slots, k, rows, stream);
    return testing::dot(rows, projection);
  };
  Tensor dx = nan_tensor(x.shape());
  ops::moe_permute_backward(projection, slots, k, dx, stream);
  EXPECT_TRUE(testing::gradients_match(permute_loss, {{"x", x, dx}}));

  Tensor y = random_tensor(rows.shape(), DType::f64, 55);
  Tensor y_slots = Tensor::zeros({tokens * k, width}, DType::f64);
  const Tensor slot_projection = random_tensor(y_slots.shape(), DType::f64, 56);
  auto unpermute_loss = [&] {
    ops::moe_unpermute(y, slots, y_slots, stream);
    return testing::dot(y_slots, slot_projection);
  };
  Tensor dy = nan_tensor(y.shape());
  ops::moe_unpermute_backward(slot_projection, slots, dy, stream);
  EXPECT_TRUE(testing::gradients_match(unpermute_loss, {{"y", y, dy}}));
}

TEST(MoePermute, CombineGradientMatchesFiniteDifferences) {
  Stream stream;
  const int64_t tokens = 4, k = 2, width = 6;
  Tensor y_slots = random_tensor({tokens * k, width}, DType::f64, 57);
  Tensor probs = random_tensor({tokens, k}, DType::f64, 58, 0.0, 1.0);
  Tensor out = Tensor::zeros({tokens, width}, DType::f64);
  const Tensor projection = random_tensor(out.shape(), DType::f64, 59);
  auto loss = [&] {
    ops::moe_combine(y_slots, probs, out, stream);
    return testing::dot(out, projection);
  };
  Tensor dy_slots = nan_tensor(y_slots.shape()), dprobs = nan_tensor(probs.shape());
  ops::moe_combine_backward(projection, y_slots, probs, dy_slots, dprobs, stream);
  EXPECT_TRUE(
      testing::gradients_match(loss, {{"y_slots", y_slots, dy_slots}, {"probs", probs, dprobs}}));
}

// sort -> permute -> (identity experts) -> unpermute -> combine with gates 1/k gives x back
// exactly.
TEST(MoePermute, DispatchWithIdentityExpertsAndEqualGatesReturnsTheInput) {
  Stream stream;
  const int64_t tokens = 9, k = 2, width = 5;
  const Tensor ids = Tensor::from_vector<int32_t>(
      {tokens, k}, {0, 3, 1, 2, 3, 0, 2, 1, 1, 3, 0, 2, 3, 1, 2, 0, 1, 3});
  const SortedSlots sorted = sort_by_expert(ids, 4);
  const Tensor x = random_tensor({tokens, width}, DType::f32, 60);
  Tensor rows = Tensor::empty({tokens * k, width}, DType::f32);
  ops::moe_permute(x, sorted.slots, k, rows, stream);
  Tensor y_slots = Tensor::empty({tokens * k, width}, DType::f32);
  ops::moe_unpermute(rows, sorted.slots, y_slots, stream);
  Tensor gates = Tensor::empty({tokens, k}, DType::f32);
  ops::fill(gates, 0.5, stream);
  Tensor out = Tensor::empty({tokens, width}, DType::f32);
  ops::moe_combine(y_slots, gates, out, stream);
  EXPECT_TRUE(testing::all_close(out, x, 0.0, 0.0));
}

TEST(MoePermute, RejectsBadArguments) {
  Stream stream;
  const Tensor ids = Tensor::from_vector<int32_t>({2, 2}, {0, 1, 4, 1});
  Tensor slots = Tensor::zeros({4}, DType::i32), counts = Tensor::zeros({4}, DType::i64);
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::moe_sort_by_expert(ids, 4, slots, counts, stream); }),
               "expert_ids[1, 0] = 4 is outside [0, 4)"));
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::moe_sort_by_expert(ids, 0, slots, counts, stream); }),
               "num_experts must be >= 1, got 0"));
  const Tensor float_ids = Tensor::zeros({2, 2}, DType::f32);
  EXPECT_TRUE(mentions(
      input_error_message([&] { ops::moe_sort_by_expert(float_ids, 4, slots, counts, stream); }),
      "expert_ids"));
  Tensor int32_counts = Tensor::zeros({4}, DType::i32);
  EXPECT_TRUE(mentions(
      input_error_message([&] { ops::moe_sort_by_expert(ids, 4, slots, int32_counts, stream); }),
      "counts"));

  const Tensor x = Tensor::zeros({2, 3}, DType::f32);
  Tensor rows = Tensor::zeros({3, 3}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::moe_permute(x, slots_of({0, 4, 1}), 2, rows, stream);
                       }),
                       "sorted_slots[1] = 4 is outside [0, 4)"));
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::moe_permute(x, slots_of({0, 1, 2}), 0, rows, stream);
                       }),
                       "k must be >= 1, got 0"));
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::moe_permute(x, slots_of({0, 1, 2, 3, 0}), 2, rows, stream);
                       }),
                       "5 sorted slots for 2 tokens with k=2"));
  Tensor wide_rows = Tensor::zeros({3, 4}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         ops::moe_permute(x, slots_of({0, 1, 2}), 2, wide_rows, stream);
                       }),
                       "out"));
  const Tensor i64_slots = Tensor::zeros({3}, DType::i64);
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::moe_permute(x, i64_slots, 2, rows, stream); }),
               "sorted_slots"));

  const Tensor y_slots = Tensor::zeros({4, 3}, DType::f32),
               probs = Tensor::zeros({2, 3}, DType::f32);
  Tensor out = Tensor::zeros({2, 3}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { ops::moe_combine(y_slots, probs, out, stream); }),
                       "y_slots"));
}

// N = 5 tokens, k = 2, one slot dropped, width 12, values in [-1, 1], probs in [0, 1] (f32 next
// to bf16). permute copies (exact); its backward sums at most k rows in f32 (k roundings, |.| <=
// k); combine sums k products in f32 (2k, |.| <= k); combine backward: dy = p dout (1, <= 1) and
// dprobs, a width-long dot product in double narrowed to f32 (1, <= width).
TEST(MoePermute, Bf16RoundsTheF32ResultAndMatchesF64) {
  const int k = 2;
  const Tensor x = random_tensor({5, 12}, DType::bf16, 90);
  const Tensor slots = Tensor::from_vector<int32_t>({9}, {0, 3, 4, 9, 1, 2, 5, 8, 7});
  const Tensor dout = random_tensor({9, 12}, DType::bf16, 91);
  const Tensor y_slots = random_tensor({10, 12}, DType::bf16, 92);
  const Tensor probs = random_tensor({5, k}, DType::bf16, 93, 0, 1);
  const Tensor dcombined = random_tensor({5, 12}, DType::bf16, 94);
  auto run = [&](DType dtype) {
    Stream stream;
    const DType stats = testing::statistics_dtype(dtype);
    Tensor rows = Tensor::empty({9, 12}, dtype), dx = Tensor::empty(x.shape(), dtype);
    ops::moe_permute(testing::converted(x, dtype), slots, k, rows, stream);
    ops::moe_permute_backward(testing::converted(dout, dtype), slots, k, dx, stream);
    const Tensor y = testing::converted(y_slots, dtype), p = testing::converted(probs, stats);
    Tensor combined = Tensor::empty({5, 12}, dtype), dy = Tensor::empty(y.shape(), dtype);
    Tensor dprobs = Tensor::empty(probs.shape(), stats);
    ops::moe_combine(y, p, combined, stream);
    ops::moe_combine_backward(testing::converted(dcombined, dtype), y, p, dy, dprobs, stream);
    return std::vector<Tensor>{rows, dx, combined, dy, dprobs};
  };
  EXPECT_TRUE(testing::bf16_rounds_f32_and_matches_f64(run, {{"permuted", 0, 1},
                                                             {"dx", k, k},
                                                             {"combined", 2 * k, k},
                                                             {"dy_slots", 1, 1},
                                                             {"dprobs", 1, 12}}));
}

}  // namespace
}  // namespace moe
