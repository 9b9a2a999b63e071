// Expert capacity: hand-worked examples of both drop policies, ties, random routing against a
// reference written from the definition (slot s survives when fewer than `capacity` slots of its
// expert beat it), the limits (capacity 0 keeps nothing, capacity >= every count keeps everything),
// working in place, and the argument errors.
// bf16 probs: an InputError (capacity stays f32 in bf16 training).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"

namespace moe {
namespace {

using ops::DropPolicy;
using testing::input_error_message;
using testing::mentions;
using testing::random_tensor;

struct Kept {
  std::vector<int32_t> slots;  // kept_slots[0, R)
  std::vector<int64_t> counts;
};

Kept apply_capacity(const Tensor& sorted_slots, const Tensor& counts, const Tensor& probs,
                    int64_t capacity, DropPolicy policy) {
  Stream stream;
  Tensor kept_slots = Tensor::empty({sorted_slots.numel()}, DType::i32);
  Tensor kept_counts = Tensor::empty(counts.shape(), DType::i64);
  const int64_t rows = ops::moe_apply_capacity(sorted_slots, counts, probs, capacity, policy,
                                               kept_slots, kept_counts, stream);
  std::vector<int32_t> slots = kept_slots.to_vector<int32_t>();
  slots.resize(static_cast<size_t>(rows));
  return {slots, kept_counts.to_vector<int64_t>()};
}

// 5 tokens, k = 2, 3 experts: token 0 -> experts 0, 1; 1 -> 0, 2; 2 -> 1, 0; 3 -> 0, 1; 4 -> 2, 0.
// Grouped by expert (as moe_sort_by_expert lists them): expert 0 has slots 0 2 5 6 9, expert 1 has
// 1 4 7, expert 2 has 3 8.
Tensor example_sorted() {
  return Tensor::from_vector<int32_t>({10}, {0, 2, 5, 6, 9, 1, 4, 7, 3, 8});
}
Tensor example_counts() { return Tensor::from_vector<int64_t>({3}, {5, 3, 2}); }

Kept apply_to_example(const std::vector<double>& probs_by_slot, int64_t capacity,
                      DropPolicy policy) {
  const Tensor probs = Tensor::from_vector<double>({5, 2}, probs_by_slot);
  return apply_capacity(example_sorted(), example_counts(), probs, capacity, policy);
}

// Probs by slot:                       0    1    2    3    4    5    6    7    8    9
const std::vector<double> kExampleProbs = {0.6, 0.4, 0.3, 0.7, 0.2, 0.8, 0.9, 0.1, 0.5, 0.5};

TEST(MoeCapacity, PositionPolicyKeepsEachExpertsFirstSlots) {
  const Kept kept = apply_to_example(kExampleProbs, 2, DropPolicy::position);
  EXPECT_EQ(kept.slots, (std::vector<int32_t>{0, 2, 1, 4, 3, 8}));
  EXPECT_EQ(kept.counts, (std::vector<int64_t>{2, 2, 2}));
}

TEST(MoeCapacity, ProbsPolicyKeepsTheHighestProbsInTokenOrder) {
  // Expert 0 keeps 6 (0.9) and 5 (0.8), listed as 5, 6; expert 1 keeps 1 (0.4) and 4 (0.2).
  Kept kept = apply_to_example(kExampleProbs, 2, DropPolicy::probs);
  EXPECT_EQ(kept.slots, (std::vector<int32_t>{5, 6, 1, 4, 3, 8}));
  EXPECT_EQ(kept.counts, (std::vector<int64_t>{2, 2, 2}));
  kept = apply_to_example(kExampleProbs, 3, DropPolicy::probs);
  EXPECT_EQ(kept.slots, (std::vector<int32_t>{0, 5, 6, 1, 4, 7, 3, 8}));
  EXPECT_EQ(kept.counts, (std::vector<int64_t>{3, 3, 2}));
}

TEST(MoeCapacity, ProbsPolicyBreaksTiesToTheEarlierSlotAndRanksNanLast) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Expert 0 keeps 5 (0.9), then 2 and 9 tie at 0.5 for the second place: 2 wins.
  // Expert 1: slot 1 is NaN, so 4 (0.2) and 7 (0.1) are kept.
  const Kept kept =
      apply_to_example({0.3, nan, 0.5, 0.1, 0.2, 0.9, 0.1, 0.1, 0.5, 0.5}, 2, DropPolicy::probs);
  EXPECT_EQ(kept.slots, (std::vector<int32_t>{2, 5, 4, 7, 3, 8}));
  // All equal: the earliest slots win, exactly as under the position policy.
  const std::vector<double> equal(10, 0.25);
  EXPECT_EQ(apply_to_example(equal, 2, DropPolicy::probs).slots,
            apply_to_example(equal, 2, DropPolicy::position).slots);
}

struct Routing {
  Tensor sorted_slots, counts, probs;
};

Routing random_routing(int64_t tokens, int k, int experts, uint64_t seed) {
  Stream stream;
  const Tensor draws = random_tensor({tokens, k}, DType::f64, seed, 0.0, experts);
  Tensor ids = Tensor::empty({tokens, k}, DType::i32);
  for (int64_t s = 0; s < tokens * k; ++s)
    ids.data<int32_t>()[s] = static_cast<int32_t>(draws.data<double>()[s]);
  Routing r{Tensor::empty({tokens * k}, DType::i32), Tensor::empty({experts}, DType::i64),
            random_tensor({tokens, k}, DType::f64, seed + 1, 0.0, 1.0)};
  // Probs in quarters: many exact ties, so that capacity often cuts through a tie.
  for (int64_t s = 0; s < tokens * k; ++s)
    r.probs.data<double>()[s] = std::floor(4 * r.probs.data<double>()[s]) / 4;
  ops::moe_sort_by_expert(ids, experts, r.sorted_slots, r.counts, stream);
  return r;
}

// From the definition: within each expert group, slot s survives when fewer than `capacity` slots
// come before it (position) or beat it (probs: a higher prob, or an equal one on an earlier slot).
Kept reference_capacity(const Routing& r, int64_t capacity, DropPolicy policy) {
  const std::vector<int32_t> slots = r.sorted_slots.to_vector<int32_t>();
  const std::vector<int64_t> counts = r.counts.to_vector<int64_t>();
  const double* p = r.probs.data<double>();
  Kept kept{{}, std::vector<int64_t>(counts.size(), 0)};
  int64_t begin = 0;
  for (size_t e = 0; e < counts.size(); begin += counts[e], ++e)
    for (int64_t i = begin; i < begin + counts[e]; ++i) {
      int64_t ahead = 0;
      for (int64_t j = begin; j < begin + counts[e]; ++j)
        ahead +=
            policy == DropPolicy::position
                ? j < i
                : p[slots[j]] > p[slots[i]] || (p[slots[j]] == p[slots[i]] && slots[j] < slots[i]);
      if (ahead < capacity) {
        kept.slots.push_back(slots[i]);
        ++kept.counts[e];
      }
    }
  return kept;
}

TEST(MoeCapacity, RandomRoutingMatchesTheDefinition) {
  const Routing r = random_routing(60, 2, 5, 81);
  for (DropPolicy policy : {DropPolicy::position, DropPolicy::probs})
    for (int64_t capacity : {1, 7, 20}) {
      const Kept kept = apply_capacity(r.sorted_slots, r.counts, r.probs, capacity, policy);
      const Kept expected = reference_capacity(r, capacity, policy);
      EXPECT_EQ(kept.slots, expected.slots) << "capacity " << capacity;
      EXPECT_EQ(kept.counts, expected.counts) << "capacity " << capacity;
    }
}

TEST(MoeCapacity, CapacityZeroKeepsNothingAndEnoughCapacityKeepsEverything) {
  const Routing r = random_routing(40, 3, 4, 82);
  const std::vector<int64_t> counts = r.counts.to_vector<int64_t>();
  const int64_t max_count = *std::max_element(counts.begin(), counts.end());
  for (DropPolicy policy : {DropPolicy::position, DropPolicy::probs}) {
    const Kept none = apply_capacity(r.sorted_slots, r.counts, r.probs, 0, policy);
    EXPECT_TRUE(none.slots.empty());
    EXPECT_EQ(none.counts, std::vector<int64_t>(counts.size(), 0));
    for (int64_t capacity : {max_count, max_count + 5}) {
      const Kept all = apply_capacity(r.sorted_slots, r.counts, r.probs, capacity, policy);
      EXPECT_EQ(all.slots, r.sorted_slots.to_vector<int32_t>());
      EXPECT_EQ(all.counts, counts);
    }
  }
}

TEST(MoeCapacity, KeptSlotsMayBeTheSortedSlotsThemselves) {
  Stream stream;
  const Routing r = random_routing(60, 2, 5, 83);
  for (DropPolicy policy : {DropPolicy::position, DropPolicy::probs}) {
    const Kept expected = apply_capacity(r.sorted_slots, r.counts, r.probs, 7, policy);
    Tensor slots = r.sorted_slots.clone(), kept_counts = Tensor::empty({5}, DType::i64);
    const int64_t rows =
        ops::moe_apply_capacity(slots, r.counts, r.probs, 7, policy, slots, kept_counts, stream);
    std::vector<int32_t> kept = slots.to_vector<int32_t>();
    kept.resize(static_cast<size_t>(rows));
    EXPECT_EQ(kept, expected.slots);
  }
}

TEST(MoeCapacity, RejectsBadArguments) {
  Stream stream;
  const Tensor probs = Tensor::zeros({5, 2}, DType::f32);
  auto error = [&](const Tensor& sorted_slots, const Tensor& counts, const Tensor& p,
                   int64_t capacity, Tensor kept_slots, Tensor kept_counts) {
    return input_error_message([&] {
      ops::moe_apply_capacity(sorted_slots, counts, p, capacity, DropPolicy::probs, kept_slots,
                              kept_counts, stream);
    });
  };
  const Tensor sorted = example_sorted(), counts = example_counts();
  const Tensor kept_slots = Tensor::zeros({10}, DType::i32);
  const Tensor kept_counts = Tensor::zeros({3}, DType::i64);
  EXPECT_TRUE(mentions(error(sorted, counts, probs, -1, kept_slots, kept_counts),
                       "capacity must be >= 0, got -1"));
  EXPECT_TRUE(mentions(error(sorted, Tensor::from_vector<int64_t>({3}, {5, 3, 1}), probs, 2,
                             kept_slots, kept_counts),
                       "counts add up to 9, but there are 10 sorted slots"));
  EXPECT_TRUE(mentions(error(sorted, Tensor::from_vector<int64_t>({3}, {6, -1, 5}), probs, 2,
                             kept_slots, kept_counts),
                       "counts[1] = -1 is negative"));
  EXPECT_TRUE(mentions(error(sorted, Tensor::from_vector<int32_t>({3}, {5, 3, 2}), probs, 2,
                             kept_slots, kept_counts),
                       "argument 'counts' has dtype i32, expected i64"));
  EXPECT_TRUE(mentions(error(sorted, counts, probs, 2, Tensor::zeros({9}, DType::i32), kept_counts),
                       "kept_slots has 9 elements, fewer than the 10 sorted slots"));
  EXPECT_TRUE(mentions(error(sorted, counts, probs, 2, kept_slots, Tensor::zeros({4}, DType::i64)),
                       "'kept_counts' has shape [4], expected [3]"));
  EXPECT_TRUE(
      mentions(error(sorted, counts, Tensor::zeros({5, 2}, DType::i32), 2, kept_slots, kept_counts),
               "argument 'probs' has dtype i32, expected a float dtype"));
  EXPECT_TRUE(
      mentions(error(sorted, counts, Tensor::zeros({4, 2}, DType::f32), 2, kept_slots, kept_counts),
               "10 sorted slots for probs [4, 2]"));
  const Tensor bad_slots = Tensor::from_vector<int32_t>({10}, {0, 2, 5, 6, 10, 1, 4, 7, 3, 8});
  EXPECT_TRUE(mentions(error(bad_slots, counts, probs, 2, kept_slots, kept_counts),
                       "sorted_slots[4] = 10 is outside [0, 10)"));
}

TEST(MoeCapacity, Bf16ProbsAreAnErrorThatNamesTheF32Recipe) {
  Stream stream;
  const Tensor sorted = Tensor::from_vector<int32_t>({2}, {0, 1});
  const Tensor counts = Tensor::from_vector<int64_t>({2}, {1, 1});
  const Tensor probs = Tensor::zeros({2, 1}, DType::bf16);
  Tensor kept = Tensor::empty({2}, DType::i32), kept_counts = Tensor::empty({2}, DType::i64);
  EXPECT_TRUE(testing::mentions(testing::input_error_message([&] {
                                  ops::moe_apply_capacity(sorted, counts, probs, 1,
                                                          ops::DropPolicy::probs, kept, kept_counts,
                                                          stream);
                                }),
                                "bf16 training keeps this op in f32"));
}

}  // namespace
}  // namespace moe
