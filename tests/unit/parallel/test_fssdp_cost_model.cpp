// The FSSDP cost model (parallel/fssdp/cost_model.h): counts checked by hand on two ranks, rows
// conserved on a cluster, and the behaviour the model exists to show: expert parallelism slows
// down as routing skews while FSSDP's copies keep the expert work balanced, so FSSDP loses with
// balanced routing (its copies are pure extra traffic) and wins under strong skew.
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "parallel/fssdp/cost_model.h"
#include "parallel/fssdp/materialization.h"
#include "parallel/fssdp/resharding.h"

namespace moe {
namespace {

const ExpertLayerShape kShape{1000, 2, 64, 128, 2};
const Cluster kCluster{1e12, 1e11, 1e10};

TEST(CostModel, TwoRanksByHand) {
  const Topology topology{2, 1};              // one rank per node: all traffic crosses the network
  const std::vector<double> share{1.0, 0.0};  // every assignment to expert 0 (rank 0's)
  // EP: rank 1 sends its 2000 rows to rank 0 and gets them back, twice (forward, backward).
  const std::vector<RankCounts> ep = layer_counts(share, owners_only({0, 1}), topology, kShape);
  EXPECT_EQ(ep[0].rows, 4000);
  EXPECT_EQ(ep[1].rows, 0);
  const double row_bytes = 64 * 2;
  EXPECT_DOUBLE_EQ(ep[1].dispatch_inter, 2000 * row_bytes * 2);
  EXPECT_DOUBLE_EQ(ep[0].dispatch_inter, 2000 * row_bytes * 2);
  EXPECT_EQ(ep[0].sparse_inter, 0);
  const LayerTime t = predict(ep, topology, kShape, kCluster);
  EXPECT_DOUBLE_EQ(t.compute, 4000 * 18.0 * 64 * 128 / 1e12);
  EXPECT_DOUBLE_EQ(t.dispatch, 2000 * row_bytes * 2 / 1e10);
  EXPECT_DOUBLE_EQ(t.balance, 2.0);
  // FSSDP with expert 0 on both ranks: every row stays home; the copy costs the expert's
  // parameters one way and its gradient the other.
  const ExpertPlan both{{0, 1}, {{0, 1}, {1}}};
  const std::vector<RankCounts> fssdp = layer_counts(share, both, topology, kShape);
  EXPECT_EQ(fssdp[0].rows, 2000);
  EXPECT_EQ(fssdp[1].rows, 2000);
  EXPECT_EQ(fssdp[0].dispatch_inter + fssdp[1].dispatch_inter, 0);
  EXPECT_DOUBLE_EQ(fssdp[1].sparse_inter, 3.0 * 64 * 128 * 2);
  const LayerTime u = predict(fssdp, topology, kShape, kCluster);
  EXPECT_DOUBLE_EQ(u.balance, 1.0);
  EXPECT_DOUBLE_EQ(u.total, 2000 * 18.0 * 64 * 128 / 1e12 + 3.0 * 64 * 128 * 2 / 1e10);
}

// p_e proportional to (e + 1)^-skew.
std::vector<double> zipf(int experts, double skew) {
  std::vector<double> share(experts);
  for (int e = 0; e < experts; ++e) share[e] = std::pow(e + 1.0, -skew);
  const double sum = std::accumulate(share.begin(), share.end(), 0.0);
  for (double& s : share) s /= sum;
  return share;
}

TEST(CostModel, RowsAreConservedAndStayOnTheirNodeWhenACopyIsThere) {
  const Topology topology{16, 8};
  const std::vector<double> share = zipf(32, 1.2);
  const std::vector<int> owner = contiguous_owners(1, 32, topology);
  std::vector<double> load(share);
  const ExpertPlan plan = plan_materialization(owner, load, {2, 32}, topology);
  const std::vector<RankCounts> counts = layer_counts(share, plan, topology, kShape);
  int64_t rows = 0;
  for (const RankCounts& c : counts) rows += c.rows;
  EXPECT_NEAR(static_cast<double>(rows), 16 * 2000, 16 * 32);  // per-expert rounding only
}

// A GPT-MoE-S layer on 4 nodes of 8 GPUs (the defaults of bench/fssdp_cost_sweep.cpp).
TEST(CostModel, ExpertParallelismSlowsWithSkewWhileFssdpBalances) {
  const Topology topology{32, 8};
  const ExpertLayerShape shape{16384, 2, 768, 1536, 2};
  const Cluster cluster{4e14, 4.5e11, 5e10};  // 400 TFLOP/s, NVLink, 400 Gb/s
  const int experts = 64;
  const std::vector<int> owner = contiguous_owners(1, experts, topology);
  double previous_ep = 0;
  for (double skew : {0.0, 0.5, 1.0, 1.5, 2.0}) {
    SCOPED_TRACE(::testing::Message() << "skew " << skew);
    const std::vector<double> share = zipf(experts, skew);
    const std::vector<RankCounts> ep_counts =
        layer_counts(share, owners_only(owner), topology, shape);
    const LayerTime ep = predict(ep_counts, topology, shape, cluster);
    // Without copy slots FSSDP is expert parallelism, to the byte.
    const ExpertPlan none = plan_materialization(owner, share, {0, experts}, topology);
    const LayerTime same =
        predict(layer_counts(share, none, topology, shape), topology, shape, cluster);
    EXPECT_EQ(same.total, ep.total);
    EXPECT_GT(ep.total, previous_ep);
    previous_ep = ep.total;
    if (skew < 0.5) continue;
    const ExpertPlan plan = plan_materialization(owner, share, {4, experts}, topology);
    const LayerTime fssdp =
        predict(layer_counts(share, plan, topology, shape), topology, shape, cluster);
    EXPECT_LT(fssdp.balance, 0.5 * ep.balance);
    EXPECT_LT(fssdp.total, ep.total);
    EXPECT_GT(fssdp.sparse, 0);
    // Balanced quotas (calibrated FSSDP) level the same holders further than the even split.
    ExpertPlan balanced = plan;
    balanced.balance = true;
    const LayerTime level =
        predict(layer_counts(share, balanced, topology, shape), topology, shape, cluster);
    EXPECT_LT(level.balance, fssdp.balance);
  }
}

// Weighed with the cluster's traffic costs (with_row_costs), calibrated routing's choice between
// balanced quotas and the even split is the one predict() times faster, at every skew and copy
// budget; by rows alone it takes the quotas where the even split is faster (mild skew on several
// nodes, where the quotas send tokens between nodes).
TEST(CostModel, TrafficCostsMakeRoutingChooseTheFasterSplit) {
  const Topology nodes{32, 8};
  const ExpertLayerShape shape{16384, 2, 768, 1536, 2};
  const Cluster cluster{4e14, 4.5e11, 5e10};
  const Topology costed = with_row_costs(nodes, shape, cluster);
  EXPECT_GT(costed.inter_node_row_cost, costed.intra_node_row_cost);
  const int experts = 64;
  const std::vector<int> owner = contiguous_owners(1, experts, nodes);
  int better_than_rows_only = 0;
  for (int slots : {1, 2, 4})
    for (double skew : {0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0}) {
      SCOPED_TRACE(::testing::Message() << "slots " << slots << ", skew " << skew);
      const std::vector<double> share = zipf(experts, skew);
      ExpertPlan plan = plan_materialization(owner, share, {slots, experts}, nodes);
      const auto time = [&](const ExpertPlan& p, const Topology& t) {
        return predict(layer_counts(share, p, t, shape), nodes, shape, cluster).total;
      };
      const double even = time(plan, nodes);
      plan.balance = true;
      const double weighed = time(plan, costed), rows_only = time(plan, nodes);
      EXPECT_LE(weighed, std::min(even, rows_only) * (1 + 1e-12));
      better_than_rows_only += weighed < rows_only * (1 - 1e-3);
    }
  EXPECT_GT(better_than_rows_only, 0);
}

}  // namespace
}  // namespace moe
