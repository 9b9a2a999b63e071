// The calibrated FSSDP plan's token quotas (parallel/fssdp/balanced_split.h): hand-worked
// water-filling cases (one where the refining passes matter), and over random plans the invariants:
// each expert's quotas add up to its tokens, and the holders of the last copied expert split end
// within one token of each other, and those left without its tokens no lower.
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "parallel/fssdp/balanced_split.h"
#include "tests/support/quota_load.h"

namespace moe {
namespace {

TEST(BalancedSplit, PinnedExpertsFirstThenTheCopiesLevelTheHolders) {
  // Rank 0 owns expert 0 (10 tokens), rank 1 expert 1 (2), rank 2 expert 2 (0); expert 3 (30
  // tokens) is held by all three: it fills rank 2 to 2, then ranks 1 and 2 to 10, then all three
  // rise together to (10 + 2 + 0 + 30) / 3 = 14.
  ExpertPlan plan{{0, 1, 2, 0}, {{0}, {1}, {2}, {0, 1, 2}}, {}};
  balance_holders(plan, {10, 2, 0, 30}, 3);
  EXPECT_EQ(plan.quota, (std::vector<std::vector<int64_t>>{{10}, {2}, {0}, {4, 12, 14}}));
  EXPECT_EQ(testing::quota_load(plan, 3), (std::vector<int64_t>{14, 14, 14}));
}

TEST(BalancedSplit, LaterPassesUndoTheGreedyOrder) {
  // Expert 0 (12 tokens) on ranks 0 and 1, expert 1 (12) on ranks 1 and 2, expert 2 (6) pinned to
  // rank 2. One greedy pass splits expert 0 6/6, then expert 1 6/6: ranks at 6, 12, 12. The
  // refills move expert 0 towards rank 0 and expert 1 towards rank 1: 10 each.
  ExpertPlan plan{{0, 1, 2}, {{0, 1}, {1, 2}, {2}}, {}};
  balance_holders(plan, {12, 12, 6}, 3);
  EXPECT_EQ(testing::quota_load(plan, 3), (std::vector<int64_t>{10, 10, 10}));
}

TEST(BalancedSplit, TooFewTokensStayWithTheLeastLoadedHolders) {
  // Expert 1 (4 tokens) on ranks 0 and 1, rank 0 already at 10: all four go to rank 1.
  ExpertPlan plan{{0, 0}, {{0}, {0, 1}}, {}};
  balance_holders(plan, {10, 4}, 2);
  EXPECT_EQ(plan.quota[1], (std::vector<int64_t>{0, 4}));
}

TEST(BalancedSplit, TheRoundingRemainderGoesToTheLowestHoldersLowerRankFirst) {
  ExpertPlan plan{{0}, {{0, 1, 2}}, {}};
  balance_holders(plan, {8}, 3);
  EXPECT_EQ(plan.quota[0], (std::vector<int64_t>{3, 3, 2}));
}

TEST(BalancedSplit, RandomPlansSplitEveryTokenAndLevelEachCopiedExpert) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int ranks = 1 + static_cast<int>(rng() % 6), experts = 1 + static_cast<int>(rng() % 10);
    ExpertPlan plan;
    std::vector<int64_t> tokens;
    for (int e = 0; e < experts; ++e) {
      plan.owner.push_back(static_cast<int>(rng() % ranks));
      std::vector<int> holders{plan.owner.back()};
      for (int r = 0; r < ranks; ++r)
        if (r != plan.owner.back() && rng() % 3 == 0) holders.push_back(r);
      std::sort(holders.begin(), holders.end());
      plan.holders.push_back(holders);
      tokens.push_back(static_cast<int64_t>(rng() % 500));
    }
    balance_holders(plan, tokens, ranks);
    ASSERT_NO_THROW(check_plan(plan, {ranks, ranks}));
    for (int e = 0; e < experts; ++e)
      EXPECT_EQ(std::accumulate(plan.quota[e].begin(), plan.quota[e].end(), int64_t{0}), tokens[e]);
    // The last expert to be split (the coldest with copies) leaves its holders that got tokens
    // within one token of each other and no lower than those that got none.
    const std::vector<int64_t> load = testing::quota_load(plan, ranks);
    for (int e = experts - 1; e >= 0; --e) {
      if (plan.holders[e].size() < 2 || tokens[e] == 0) continue;
      bool coldest = true;
      for (int f = 0; f < experts; ++f)
        coldest = coldest && (plan.holders[f].size() < 2 || f == e || tokens[f] > tokens[e] ||
                              (tokens[f] == tokens[e] && f < e));
      if (!coldest) continue;
      int64_t low = INT64_MAX, high = 0,
              idle = INT64_MAX;  // idle: the lowest holder without tokens
      for (size_t h = 0; h < plan.holders[e].size(); ++h) {
        const int64_t l = load[plan.holders[e][h]];
        if (plan.quota[e][h] > 0) {
          low = std::min(low, l);
          high = std::max(high, l);
        } else {
          idle = std::min(idle, l);
        }
      }
      EXPECT_LE(high - low, 1) << "trial " << trial << " expert " << e;
      if (idle != INT64_MAX) {
        EXPECT_GE(idle + 1, high) << "trial " << trial << " expert " << e;
      }
    }
  }
}

}  // namespace
}  // namespace moe
