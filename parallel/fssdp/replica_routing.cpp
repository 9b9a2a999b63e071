#include "parallel/fssdp/replica_routing.h"

#include "core/error.h"

namespace moe {

std::vector<std::vector<int64_t>> route_to_replicas(const std::vector<int64_t>& tokens,
                                                    const ExpertPlan& plan,
                                                    const Topology& topology, int rank) {
  MOE_ASSERT(static_cast<int>(tokens.size()) == plan.experts(),
             "route_to_replicas: ", tokens.size(), " token counts for ", plan.experts(),
             " experts");
  std::vector<std::vector<int64_t>> send(tokens.size(), std::vector<int64_t>(topology.ranks, 0));
  for (int e = 0; e < plan.experts(); ++e) {
    if (plan.holds(e, rank)) {
      send[e][rank] = tokens[e];
      continue;
    }
    std::vector<int> targets;
    for (int holder : plan.holders[e])
      if (topology.node_of(holder) == topology.node_of(rank)) targets.push_back(holder);
    if (targets.empty()) targets = plan.holders[e];
    const auto k = static_cast<int64_t>(targets.size());
    for (int64_t i = 0; i < k; ++i) {
      const int64_t extra = (i - rank % k + k) % k < tokens[e] % k ? 1 : 0;
      send[e][targets[i]] = tokens[e] / k + extra;
    }
  }
  return send;
}

}  // namespace moe
