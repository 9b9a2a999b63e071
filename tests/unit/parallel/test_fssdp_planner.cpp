// The FSSDP planners as pure functions (METHODS.md §1.4-1.6) on synthetic loads and topologies:
// - materialization: the hottest experts everywhere when slots allow, otherwise replicas in
//   proportion to load, spread over nodes; over random cases every expert keeps its one owner,
//   no rank exceeds its slots and no node gets a second copy while another with room has fewer;
// - resharding: every expert one owner, equal counts per rank, a rank may own several experts of
//   one layer, and skewed loads end up better balanced per layer than contiguous placement;
// - routing: tokens stay local, else on their node, else go anywhere, evenly; none is lost;
// - the load history's window mean.
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "parallel/fssdp/load_history.h"
#include "parallel/fssdp/materialization.h"
#include "parallel/fssdp/replica_routing.h"
#include "parallel/fssdp/resharding.h"

namespace moe {
namespace {

// 1 to 4 nodes of 1 to 4 ranks.
Topology random_topology(std::mt19937& rng) {
  const int per_node = 1 + static_cast<int>(rng() % 4);
  return {per_node * (1 + static_cast<int>(rng() % 4)), per_node};
}

// Random owners and loads (a quarter of them zero) for `experts` experts.
void random_experts(std::mt19937& rng, int experts, const Topology& topology,
                    std::vector<int>& owner, std::vector<double>& load) {
  owner.resize(experts);
  load.resize(experts);
  for (int e = 0; e < experts; ++e) {
    owner[e] = static_cast<int>(rng() % topology.ranks);
    load[e] = rng() % 4 == 0 ? 0.0 : static_cast<double>(rng() % 1000);
  }
}

int replicas_on(const ExpertPlan& plan, int rank) {
  return static_cast<int>(plan.replicas_on(rank).size());
}

TEST(Materialization, WithoutABudgetOnlyOwnersHoldExperts) {
  const Topology topology{4, 2};
  const std::vector<int> owner{0, 1, 2, 3};
  const std::vector<double> load{9, 1, 1, 1};
  EXPECT_EQ(plan_materialization(owner, load, {0, 4}, topology), owners_only(owner));
  EXPECT_EQ(plan_materialization(owner, load, {4, 0}, topology), owners_only(owner));
}

TEST(Materialization, TheHottestExpertsGoEverywhereWhenSlotsAllow) {
  const Topology topology{4, 2};
  const std::vector<int> owner{0, 0, 1, 1, 2, 2, 3, 3};
  const std::vector<double> load{1, 2, 30, 4, 5, 40, 6, 7};
  const ExpertPlan plan = plan_materialization(owner, load, {2, 2}, topology);
  for (int e = 0; e < 8; ++e) {
    if (e == 2 || e == 5)
      EXPECT_EQ(plan.holders[e], (std::vector<int>{0, 1, 2, 3})) << e;
    else
      EXPECT_EQ(plan.holders[e], std::vector<int>{owner[e]}) << e;
  }
  // More slots than the overlap allows do not add more experts.
  EXPECT_EQ(plan_materialization(owner, load, {6, 2}, topology), plan);
}

TEST(Materialization, ShortSlotsAreSharedInProportionToLoadAndSpreadOverNodes) {
  const Topology topology{8, 4};
  const std::vector<int> owner{0, 1, 2, 3, 4, 5, 6, 7};
  // Expert 0 has half the load: half of the 8 slots, 2 on each node.
  const std::vector<double> load{80, 40, 20, 10, 5, 5, 0, 0};
  const ExpertPlan plan = plan_materialization(owner, load, {1, 8}, topology);
  EXPECT_EQ(plan.holders[0].size(), 5u);  // the owner and 4 replicas
  int first_node = 0;
  for (int rank : plan.holders[0]) first_node += topology.node_of(rank) == 0;
  EXPECT_GE(first_node, 2);
  EXPECT_LE(first_node, 3);
  EXPECT_EQ(plan.holders[1].size(), 3u);  // a quarter: 2 replicas
  EXPECT_EQ(plan.holders[2].size(), 2u);  // an eighth: 1
  EXPECT_EQ(plan.holders[6].size(), 1u);  // no load, no replica
  for (int rank = 0; rank < 8; ++rank) EXPECT_LE(replicas_on(plan, rank), 1);
}

TEST(Materialization, RandomCasesKeepTheInvariants) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const Topology topology = random_topology(rng);
    const int experts = 1 + static_cast<int>(rng() % 16);
    std::vector<int> owner;
    std::vector<double> load;
    random_experts(rng, experts, topology, owner, load);
    const MaterializationBudget budget{static_cast<int>(rng() % 5), static_cast<int>(rng() % 9)};
    const ExpertPlan plan = plan_materialization(owner, load, budget, topology);
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    check_plan(plan, topology);
    EXPECT_EQ(plan.owner, owner);
    const int cap = std::min({budget.slots, budget.overlap, experts});
    for (int rank = 0; rank < topology.ranks; ++rank) EXPECT_LE(replicas_on(plan, rank), cap);
    for (int e = 0; e < experts; ++e) {
      if (load[e] == 0) {
        EXPECT_EQ(plan.holders[e].size(), 1u);
      }
      // A node with a rank that has room and no copy never has 2 fewer copies than another.
      std::vector<int> copies(topology.nodes(), 0);
      std::vector<bool> room(topology.nodes(), false);
      for (int rank = 0; rank < topology.ranks; ++rank) {
        copies[topology.node_of(rank)] += plan.holds(e, rank);
        if (!plan.holds(e, rank) && replicas_on(plan, rank) < cap)
          room[topology.node_of(rank)] = true;
      }
      if (budget.overlap > budget.slots || budget.slots == 0) {
        for (int a = 0; a < topology.nodes(); ++a)
          for (int b = 0; b < topology.nodes(); ++b)
            if (room[b]) {
              EXPECT_LE(copies[a] - copies[b], 1) << "expert " << e;
            }
      }
    }
  }
}

TEST(Materialization, BadInputIsAnInternalError) {
  EXPECT_THROW(plan_materialization({0, 1}, {1.0}, {1, 1}, {2, 1}), InternalError);
  EXPECT_THROW(plan_materialization({0, 5}, {1, 1}, {1, 1}, {2, 1}), InternalError);
  EXPECT_THROW(plan_materialization({0, 1}, {1, -1}, {1, 1}, {2, 1}), InternalError);
}

// The largest per-layer load one rank owns.
double max_owned_load(const std::vector<std::vector<double>>& load, const std::vector<int>& owner,
                      int ranks) {
  double worst = 0;
  const int experts = static_cast<int>(load[0].size());
  for (size_t l = 0; l < load.size(); ++l) {
    std::vector<double> owned(ranks, 0);
    for (int e = 0; e < experts; ++e) owned[owner[l * experts + e]] += load[l][e];
    worst = std::max(worst, *std::max_element(owned.begin(), owned.end()));
  }
  return worst;
}

TEST(Resharding, EveryRankOwnsItsShareAndEveryExpertOneOwner) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const Topology topology = random_topology(rng);
    const int layers = 1 + static_cast<int>(rng() % 4), experts = 1 + static_cast<int>(rng() % 12);
    std::vector<std::vector<double>> load(layers, std::vector<double>(experts));
    for (auto& layer : load)
      for (double& l : layer) l = static_cast<double>(rng() % 100);
    const std::vector<int> owner = shard_experts(load, static_cast<int>(rng() % 3), topology);
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    ASSERT_EQ(owner.size(), static_cast<size_t>(layers * experts));
    const int n = layers * experts;
    for (int rank = 0; rank < topology.ranks; ++rank)
      EXPECT_EQ(std::count(owner.begin(), owner.end(), rank),
                n / topology.ranks + (rank < n % topology.ranks ? 1 : 0));
    EXPECT_EQ(shard_experts(load, 1, topology), shard_experts(load, 1, topology));
  }
}

TEST(Resharding, SkewedLoadIsBalancedPerLayerBetterThanContiguousPlacement) {
  const Topology topology{4, 2};
  // Two layers of 8 experts; the first two experts of each layer take most tokens (as a router
  // biased toward a few experts does), which contiguous placement puts on one rank.
  const std::vector<std::vector<double>> load{{400, 300, 50, 50, 50, 50, 50, 50},
                                              {50, 50, 50, 50, 50, 50, 500, 200}};
  const std::vector<int> owner = shard_experts(load, 0, topology);
  const double contiguous = max_owned_load(load, contiguous_owners(2, 8, topology), 4);
  const double sharded = max_owned_load(load, owner, 4);
  EXPECT_EQ(contiguous, 700);
  EXPECT_LE(sharded, 500);  // the hottest expert alone, nothing added to its rank in that layer
  // Heterogeneous: some rank owns three or more of one layer's experts, another fewer than two.
  bool uneven = false;
  for (int l = 0; l < 2; ++l) {
    std::vector<int> count(4, 0);
    for (int e = 0; e < 8; ++e) ++count[owner[l * 8 + e]];
    uneven |= *std::max_element(count.begin(), count.end()) >= 3 &&
              *std::min_element(count.begin(), count.end()) <= 1;
  }
  EXPECT_TRUE(uneven);
}

TEST(Resharding, ReplicatedExpertsDoNotSteerThePlacement) {
  const Topology topology{2, 1};
  // Expert 0 is replicated everywhere: its load must not push experts 1..3 off rank 0's side.
  const std::vector<int> owner = shard_experts({{1000, 30, 20, 10}}, 1, topology);
  const std::vector<int> without = shard_experts({{31, 30, 20, 10}}, 1, topology);
  EXPECT_EQ(owner, without);
  EXPECT_EQ(max_owned_load({{0, 30, 20, 10}}, owner, 2), 30);
}

TEST(Resharding, WithoutLoadEachLayerIsDealtOverAllNodesAndRanks) {
  // 2 nodes of 2 ranks, 3 layers of 4 experts: every rank gets one expert of every layer.
  const std::vector<int> owner =
      shard_experts(std::vector<std::vector<double>>(3, std::vector<double>(4, 0.0)), 0, {4, 2});
  for (int l = 0; l < 3; ++l) {
    std::vector<int> layer(owner.begin() + l * 4, owner.begin() + (l + 1) * 4);
    std::sort(layer.begin(), layer.end());
    EXPECT_EQ(layer, (std::vector<int>{0, 1, 2, 3})) << "layer " << l;
  }
}

TEST(Resharding, ContiguousOwnersAreExpertParallelism) {
  EXPECT_EQ(contiguous_owners(2, 4, {2, 1}), (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1}));
}

TEST(ReplicaRouting, TokensStayLocalThenOnTheirNodeThenSplitEvenly) {
  const Topology topology{4, 2};
  ExpertPlan plan{{0, 1, 2}, {{0, 3}, {1, 2, 3}, {2}}};
  // Rank 0 holds expert 0: all local. Expert 1: rank 1 is on node 0, so only rank 1. Expert 2:
  // held on node 1 only.
  auto send = route_to_replicas({10, 7, 5}, plan, topology, 0);
  EXPECT_EQ(send[0], (std::vector<int64_t>{10, 0, 0, 0}));
  EXPECT_EQ(send[1], (std::vector<int64_t>{0, 7, 0, 0}));
  EXPECT_EQ(send[2], (std::vector<int64_t>{0, 0, 5, 0}));
  // From rank 2 (node 1), expert 0 is on rank 3 only there; expert 1 is local.
  send = route_to_replicas({10, 7, 5}, plan, topology, 2);
  EXPECT_EQ(send[0], (std::vector<int64_t>{0, 0, 0, 10}));
  EXPECT_EQ(send[1], (std::vector<int64_t>{0, 0, 7, 0}));
  // Split evenly, remainders rotated by source rank.
  plan = ExpertPlan{{0}, {{0, 1}}};
  const Topology flat{3, 3};
  EXPECT_EQ(route_to_replicas({7}, plan, flat, 2)[0], (std::vector<int64_t>{4, 3, 0}));
  plan = ExpertPlan{{2}, {{0, 2}}};
  EXPECT_EQ(route_to_replicas({7}, plan, flat, 1)[0], (std::vector<int64_t>{3, 0, 4}));
}

TEST(ReplicaRouting, RandomPlansLoseNoTokenAndSendOnlyToHolders) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const Topology topology = random_topology(rng);
    const int experts = 1 + static_cast<int>(rng() % 8);
    std::vector<int> owner;
    std::vector<double> load;
    random_experts(rng, experts, topology, owner, load);
    std::vector<int64_t> tokens(experts);
    for (int64_t& t : tokens) t = static_cast<int64_t>(rng() % 50);
    const ExpertPlan plan = plan_materialization(owner, load, {2, 3}, topology);
    const int rank = static_cast<int>(rng() % topology.ranks);
    const auto send = route_to_replicas(tokens, plan, topology, rank);
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    for (int e = 0; e < experts; ++e) {
      EXPECT_EQ(std::accumulate(send[e].begin(), send[e].end(), int64_t{0}), tokens[e]);
      bool node_has = false;
      for (int h : plan.holders[e]) node_has |= topology.node_of(h) == topology.node_of(rank);
      int64_t most = 0, least = tokens[e];
      for (int d = 0; d < topology.ranks; ++d) {
        if (send[e][d] > 0) {
          EXPECT_TRUE(plan.holds(e, d));
        }
        if (node_has && send[e][d] > 0) {
          EXPECT_EQ(topology.node_of(d), topology.node_of(rank));
        }
        if (plan.holds(e, d) && (!node_has || topology.node_of(d) == topology.node_of(rank))) {
          most = std::max(most, send[e][d]);
          least = std::min(least, send[e][d]);
        }
      }
      if (!plan.holds(e, rank)) {
        EXPECT_LE(most - least, 1);
      }
    }
  }
}

TEST(LoadHistory, PredictsTheMeanOfTheLastWindow) {
  LoadHistory history(2, 2);
  EXPECT_EQ(history.predict(), (std::vector<double>{0, 0}));
  history.record({4, 0});
  EXPECT_EQ(history.predict(), (std::vector<double>{4, 0}));
  history.record({2, 2});
  history.record({6, 4});
  EXPECT_EQ(history.predict(), (std::vector<double>{4, 3}));
  EXPECT_THROW(history.record({1}), InternalError);
}

}  // namespace
}  // namespace moe
