#include "parallel/fssdp/replica_routing.h"

#include <algorithm>

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

std::vector<std::vector<int64_t>> route_by_quota(const std::vector<int64_t>& all,
                                                 const ExpertPlan& plan, int ranks, int source) {
  const int experts = plan.experts();
  MOE_ASSERT(static_cast<int64_t>(all.size()) == int64_t{ranks} * experts &&
                 static_cast<int>(plan.quota.size()) == experts && source >= 0 && source < ranks,
             "route_by_quota: ", all.size(), " counts, ", plan.quota.size(), " quotas for ",
             experts, " experts on ", ranks, " ranks (source ", source, ")");
  std::vector<std::vector<int64_t>> send(experts, std::vector<int64_t>(ranks, 0));
  for (int e = 0; e < experts; ++e) {
    int64_t first = 0, total = 0;  // source's tokens of e: [first, first + all[source, e])
    for (int s = 0; s < ranks; ++s) {
      if (s == source) first = total;
      total += all[int64_t{s} * experts + e];
    }
    const int64_t last = first + all[int64_t{source} * experts + e];
    int64_t cut = 0;
    for (size_t h = 0; h < plan.holders[e].size(); ++h) {
      const int64_t begin = cut, end = cut + plan.quota[e][h];
      send[e][plan.holders[e][h]] =
          std::max<int64_t>(0, std::min(end, last) - std::max(begin, first));
      cut = end;
    }
    MOE_ASSERT(cut == total, "route_by_quota: expert ", e, "'s quotas sum to ", cut, " for ", total,
               " tokens");
  }
  return send;
}

}  // namespace moe
