#include "parallel/fssdp/cost_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "parallel/fssdp/replica_routing.h"

namespace moe {

std::vector<RankCounts> layer_counts(const std::vector<double>& share, const ExpertPlan& plan,
                                     const Topology& topology, const ExpertLayerShape& shape) {
  const int ranks = topology.ranks, experts = plan.experts();
  MOE_ASSERT(static_cast<int>(share.size()) == experts, "layer_counts: ", share.size(),
             " shares for ", experts, " experts");
  const double assignments = static_cast<double>(shape.tokens_per_rank) * shape.top_k;
  std::vector<int64_t> tokens(experts);
  for (int e = 0; e < experts; ++e) tokens[e] = std::llround(assignments * share[e]);
  const double row_bytes = static_cast<double>(shape.d_model) * shape.bytes_per_element;
  const double expert_bytes =
      3.0 * static_cast<double>(shape.d_model) * shape.expert_hidden * shape.bytes_per_element;
  // bytes[s][d] from rank s to rank d over the step: each dispatched row goes out and back twice
  // (forward, backward); each copy brings the expert's parameters and returns its gradient.
  std::vector<std::vector<double>> dispatch(ranks, std::vector<double>(ranks, 0)),
      sparse(ranks, std::vector<double>(ranks, 0));
  std::vector<RankCounts> counts(ranks);
  // Routed as the dispatcher does (route_every_rank): by the planner's quotas, or by balanced
  // quotas unless the even split costs the slowest rank no more (weighed with the topology's
  // traffic costs, with_row_costs); every rank routes the same share.
  std::vector<int64_t> all;
  for (int s = 0; s < ranks; ++s) all.insert(all.end(), tokens.begin(), tokens.end());
  const std::vector<std::vector<std::vector<int64_t>>> routes =
      route_every_rank(all, plan, topology);
  for (int s = 0; s < ranks; ++s) {
    const std::vector<std::vector<int64_t>>& send = routes[s];
    for (int e = 0; e < experts; ++e)
      for (int d = 0; d < ranks; ++d) {
        counts[d].rows += send[e][d];
        if (d == s) continue;
        dispatch[s][d] += 2 * row_bytes * static_cast<double>(send[e][d]);
        dispatch[d][s] += 2 * row_bytes * static_cast<double>(send[e][d]);
      }
  }
  for (int e = 0; e < experts; ++e)
    for (int holder : plan.holders[e])
      if (holder != plan.owner[e]) {
        sparse[plan.owner[e]][holder] += expert_bytes;
        sparse[holder][plan.owner[e]] += expert_bytes;
      }
  // A rank's bytes to its node and to other nodes: the larger of what it sends and receives.
  auto traffic = [&](const std::vector<std::vector<double>>& bytes, int rank, double& intra,
                     double& inter) {
    double out_intra = 0, out_inter = 0, in_intra = 0, in_inter = 0;
    for (int p = 0; p < ranks; ++p) {
      const bool near = topology.node_of(p) == topology.node_of(rank);
      (near ? out_intra : out_inter) += bytes[rank][p];
      (near ? in_intra : in_inter) += bytes[p][rank];
    }
    intra = std::max(out_intra, in_intra);
    inter = std::max(out_inter, in_inter);
  };
  for (int r = 0; r < ranks; ++r) {
    traffic(dispatch, r, counts[r].dispatch_intra, counts[r].dispatch_inter);
    traffic(sparse, r, counts[r].sparse_intra, counts[r].sparse_inter);
  }
  return counts;
}

LayerTime predict(const std::vector<RankCounts>& counts, const Topology& topology,
                  const ExpertLayerShape& shape, const Cluster& cluster) {
  MOE_ASSERT(static_cast<int>(counts.size()) == topology.ranks && cluster.flops > 0 &&
                 cluster.intra_node_bw > 0 && cluster.inter_node_bw > 0,
             "predict: counts for ", counts.size(), " ranks, cluster rates must be positive");
  const double flops_per_row =
      18.0 * static_cast<double>(shape.d_model) * static_cast<double>(shape.expert_hidden);
  LayerTime slowest;
  double rows = 0, most = 0;
  for (const RankCounts& c : counts) {
    LayerTime t;
    t.compute = static_cast<double>(c.rows) * flops_per_row / cluster.flops;
    t.dispatch =
        c.dispatch_intra / cluster.intra_node_bw + c.dispatch_inter / cluster.inter_node_bw;
    t.sparse = c.sparse_intra / cluster.intra_node_bw + c.sparse_inter / cluster.inter_node_bw;
    t.total = t.compute + t.dispatch + t.sparse;
    if (t.total > slowest.total) slowest = t;
    rows += static_cast<double>(c.rows);
    most = std::max(most, static_cast<double>(c.rows));
  }
  slowest.balance = rows > 0 ? most * static_cast<double>(counts.size()) / rows : 1.0;
  return slowest;
}

Topology with_row_costs(Topology topology, const ExpertLayerShape& shape, const Cluster& cluster) {
  const auto d = static_cast<double>(shape.d_model);
  const double compute = 18.0 * d * static_cast<double>(shape.expert_hidden) / cluster.flops;
  const double bytes = 2.0 * d * shape.bytes_per_element;
  topology.intra_node_row_cost = bytes / cluster.intra_node_bw / compute;
  topology.inter_node_row_cost = bytes / cluster.inter_node_bw / compute;
  topology.copy_rows = 1.5 * static_cast<double>(shape.expert_hidden);  // 3 D F / 2 D
  return topology;
}

}  // namespace moe
