// The least-loaded planner (LLEP, parallel/fssdp/least_loaded.h) and the quota routing it feeds
// (replica_routing.h), as pure functions: hand-worked cases for each rule (the threshold, the
// owner keeping room for its own experts still to come, the smallest chunk, the slots), and over
// random cases the invariants: every token is placed once, the owner among the holders, no rank
// over its slots, and with room everywhere no rank over capacity.
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "parallel/fssdp/least_loaded.h"
#include "parallel/fssdp/replica_routing.h"
#include "tests/support/quota_load.h"

namespace moe {
namespace {

LeastLoadedBudget budget(double capacity_factor, int64_t min_tokens, double threshold,
                         int slots = 8) {
  return {capacity_factor, min_tokens, threshold, slots};
}

TEST(LeastLoaded, BelowTheThresholdEveryExpertStaysWithItsOwner) {
  const ExpertPlan plan =
      plan_least_loaded({0, 1, 2, 3}, {100, 90, 110, 100}, budget(1, 1, 1.3), 4);
  EXPECT_EQ(plan.holders, (std::vector<std::vector<int>>{{0}, {1}, {2}, {3}}));
  EXPECT_EQ(plan.quota, (std::vector<std::vector<int64_t>>{{100}, {90}, {110}, {100}}));
}

TEST(LeastLoaded, AHotExpertSpillsItsExcessToTheLeastLoadedRanks) {
  // Capacity 100 each: the owner keeps 100, ranks 1, 2, 3 (all idle, lower first) take 100 each.
  const ExpertPlan plan = plan_least_loaded({0, 1, 2, 3}, {400, 0, 0, 0}, budget(1, 1, 0), 4);
  EXPECT_EQ(plan.holders[0], (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(plan.quota[0], (std::vector<int64_t>{100, 100, 100, 100}));
}

TEST(LeastLoaded, TheOwnerKeepsRoomForItsOwnExpertsStillToCome) {
  // Rank 0 owns experts 0 and 1 (60 and 40 tokens), capacity 50: of expert 0 it keeps only 10,
  // so that expert 1's 40 still fit; rank 1 takes expert 0's other 50.
  const ExpertPlan plan = plan_least_loaded({0, 0, 1, 1}, {60, 40, 0, 0}, budget(1, 1, 0), 2);
  EXPECT_EQ(plan.holders[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(plan.quota[0], (std::vector<int64_t>{10, 50}));
  EXPECT_EQ(plan.quota[1], (std::vector<int64_t>{40}));
  EXPECT_EQ(testing::quota_load(plan, 2), (std::vector<int64_t>{50, 50}));
}

TEST(LeastLoaded, ChunksBelowTheMinimumMoveOnlyAsAWholeRemainder) {
  // Capacity 100 leaves chunks of 100 < 150 on each helper: none is sent, and the 300 left go,
  // past capacity, to the least-loaded rank (rank 1).
  const ExpertPlan plan = plan_least_loaded({0, 1, 2, 3}, {400, 0, 0, 0}, budget(1, 150, 0), 4);
  EXPECT_EQ(plan.holders[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(plan.quota[0], (std::vector<int64_t>{100, 300}));
}

TEST(LeastLoaded, SlotsLimitTheExpertsARankTakesFromOthers) {
  // Two hot experts on rank 0, capacity 100: with one slot per rank each helper takes one expert.
  const std::vector<int> owner{0, 0, 1, 1, 2, 2, 3, 3};
  const std::vector<int64_t> tokens{200, 200, 0, 0, 0, 0, 0, 0};
  const ExpertPlan one = plan_least_loaded(owner, tokens, budget(1, 1, 0, 1), 4);
  EXPECT_EQ(one.holders[0], (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(one.quota[0], (std::vector<int64_t>{0, 100, 100}));
  EXPECT_EQ(one.holders[1], (std::vector<int>{0, 3}));
  EXPECT_EQ(one.quota[1], (std::vector<int64_t>{100, 100}));
  // No slots: nothing can move, the owner takes everything.
  const ExpertPlan none = plan_least_loaded(owner, tokens, budget(1, 1, 0, 0), 4);
  EXPECT_EQ(none.copies(), 0);
  EXPECT_EQ(none.quota[0], (std::vector<int64_t>{200}));
}

TEST(LeastLoaded, RandomCasesPlaceEveryTokenWithinSlotsAndCapacity) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const int ranks = 1 + static_cast<int>(rng() % 8), per_rank = 1 + static_cast<int>(rng() % 4);
    std::vector<int> owner;
    std::vector<int64_t> tokens;
    for (int e = 0; e < ranks * per_rank; ++e) {
      owner.push_back(e / per_rank);
      tokens.push_back(rng() % 3 == 0 ? 0 : 100 + static_cast<int64_t>(rng() % 5000));
    }
    const int slots = static_cast<int>(rng() % 3);
    const ExpertPlan plan = plan_least_loaded(owner, tokens, budget(1.1, 1, 0, slots), ranks);
    ASSERT_NO_THROW(check_plan(plan, {ranks, ranks}));
    std::vector<int> foreign(ranks, 0);
    for (int e = 0; e < plan.experts(); ++e) {
      EXPECT_EQ(std::accumulate(plan.quota[e].begin(), plan.quota[e].end(), int64_t{0}), tokens[e]);
      for (int r : plan.holders[e]) foreign[r] += r != owner[e];
    }
    for (int r = 0; r < ranks; ++r) EXPECT_LE(foreign[r], slots) << "trial " << trial;
    if (slots == 0) continue;
    // Enough slots for every spill when each rank owns one expert: then capacity holds.
    if (per_rank == 1 && slots >= ranks) {
      const int64_t total = std::accumulate(tokens.begin(), tokens.end(), int64_t{0});
      const auto capacity = static_cast<int64_t>(1.1 * static_cast<double>(total) / ranks);
      for (int64_t load : testing::quota_load(plan, ranks))
        EXPECT_LE(load, std::max<int64_t>(capacity, 1));
    }
  }
}

TEST(QuotaRouting, EveryHolderReceivesExactlyItsQuota) {
  // 3 ranks, 2 experts; rank s's tokens: {5, 0}, {3, 4}, {2, 6}. Expert 0's holders, ranks 0 and
  // 2 with quotas 4 and 6, keep their own (4 of rank 0's 5, rank 2's 2); rank 2 then takes rank
  // 0's last and rank 1's 3. Expert 1 stays on its owner, rank 1.
  ExpertPlan plan{{0, 1}, {{0, 2}, {1}}, {{4, 6}, {10}}};
  const std::vector<int64_t> all{5, 0, 3, 4, 2, 6};
  const Topology one_node{3, 3};
  using Sends = std::vector<std::vector<int64_t>>;
  EXPECT_EQ(route_by_quota(all, plan, one_node, 0), (Sends{{4, 0, 1}, {0, 0, 0}}));
  EXPECT_EQ(route_by_quota(all, plan, one_node, 1), (Sends{{0, 0, 3}, {0, 4, 0}}));
  EXPECT_EQ(route_by_quota(all, plan, one_node, 2), (Sends{{0, 0, 2}, {0, 6, 0}}));
  plan.quota[0] = {4, 5};
  EXPECT_THROW(route_by_quota(all, plan, one_node, 0), InternalError);
}

TEST(QuotaRouting, QuotasFillFromTheNearestRanksFirst) {
  // 3 nodes of one rank; expert 0 held by ranks 1 and 2, quotas 2 and 2; tokens 2, 2, 0. Rank 1
  // keeps its own two and rank 0's go to rank 2: 2 tokens cross nodes (a cut in rank order would
  // send rank 0's to rank 1 and rank 1's to rank 2: 4).
  const ExpertPlan plan{{1}, {{1, 2}}, {{2, 2}}};
  const std::vector<int64_t> all{2, 2, 0};
  const Topology three_nodes{3, 1};
  using Sends = std::vector<std::vector<int64_t>>;
  EXPECT_EQ(route_by_quota(all, plan, three_nodes, 0), (Sends{{0, 0, 2}}));
  EXPECT_EQ(route_by_quota(all, plan, three_nodes, 1), (Sends{{0, 2, 0}}));
  EXPECT_EQ(route_by_quota(all, plan, three_nodes, 2), (Sends{{0, 0, 0}}));
  // 2 nodes of 2 ranks; expert 0 held by ranks 0 and 3, quotas 3 and 5; tokens 1, 4, 2, 1. Rank 0
  // keeps its 1 and takes 2 of its node-mate rank 1's; rank 3 keeps its 1, takes rank 2's 2 on
  // its node, and rank 1's other 2 last.
  const ExpertPlan two{{0}, {{0, 3}}, {{3, 5}}};
  const Topology two_nodes{4, 2};
  const std::vector<int64_t> tokens{1, 4, 2, 1};
  EXPECT_EQ(route_by_quota(tokens, two, two_nodes, 0), (Sends{{1, 0, 0, 0}}));
  EXPECT_EQ(route_by_quota(tokens, two, two_nodes, 1), (Sends{{2, 0, 0, 2}}));
  EXPECT_EQ(route_by_quota(tokens, two, two_nodes, 2), (Sends{{0, 0, 0, 2}}));
  EXPECT_EQ(route_by_quota(tokens, two, two_nodes, 3), (Sends{{0, 0, 0, 1}}));
}

// route_every_rank: 2 ranks on one node, one expert held by both. Balanced quotas that level the
// ranks are followed; ones that leave the busiest rank no better off than the even split give way
// to it (which keeps each rank's tokens home); a planner's quotas (LLEP) are always followed.
TEST(QuotaRouting, BalancedQuotasGiveWayWhenTheEvenSplitDoesAsWell) {
  const Topology topology{2, 2};
  using Routes = std::vector<std::vector<std::vector<int64_t>>>;
  ExpertPlan plan{{0}, {{0, 1}}, {{3, 3}}};
  plan.balance = true;
  // Tokens 6 and 0: the even split keeps rank 0's six on rank 0 (busiest 6), the quotas 3 and 3.
  EXPECT_EQ(route_every_rank({6, 0}, plan, topology), (Routes{{{3, 3}}, {{0, 0}}}));
  // Tokens 3 and 3: the even split keeps both home (busiest 3), against quotas 5 and 1 (5).
  plan.quota = {{5, 1}};
  EXPECT_EQ(route_every_rank({3, 3}, plan, topology), (Routes{{{3, 0}}, {{0, 3}}}));
  // The same quotas from the least-loaded planner stand.
  plan.balance = false;
  EXPECT_EQ(route_every_rank({3, 3}, plan, topology), (Routes{{{3, 0}}, {{2, 1}}}));
}

// Two nodes of one rank, one expert held by both; tokens 6 and 2. The even split keeps each rank's
// own (rows 6 and 2); the balanced quotas 4 and 4 move 2 of rank 0's to rank 1, so each rank
// exchanges 2 rows across nodes. The copy (rank 1 holds the expert rank 0 owns) weighs 10 rows on
// both: the slowest rank costs 4 + 2c + 10c against 6 + 10c with an inter-node row cost c.
TEST(QuotaRouting, BalancedQuotasAreWeighedAgainstTheirTraffic) {
  ExpertPlan plan{{0}, {{0, 1}}};
  plan.balance = true;
  using Routes = std::vector<std::vector<std::vector<int64_t>>>;
  const Routes quotas{{{4, 2}}, {{0, 2}}}, even{{{6, 0}}, {{0, 2}}};
  for (const double cost : {0.0, 0.5, 0.99})
    EXPECT_EQ(route_every_rank({6, 2}, plan, Topology{2, 1, 0, cost, 10}), quotas) << cost;
  for (const double cost : {1.0, 2.0})
    EXPECT_EQ(route_every_rank({6, 2}, plan, Topology{2, 1, 0, cost, 10}), even) << cost;
  // On one node only the intra-node cost counts.
  EXPECT_EQ(route_every_rank({6, 2}, plan, Topology{2, 2, 0, 5}), quotas);
  EXPECT_EQ(route_every_rank({6, 2}, plan, Topology{2, 2, 1}), even);
}

}  // namespace
}  // namespace moe
