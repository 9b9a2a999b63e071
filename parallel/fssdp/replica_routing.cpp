#include "parallel/fssdp/replica_routing.h"

#include <algorithm>

#include "core/error.h"
#include "parallel/fssdp/balanced_split.h"

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

// Every source's routing by the plan's quotas, routes[s][e][d]: one filling of the quotas serves
// all sources.
static std::vector<std::vector<std::vector<int64_t>>> route_all_by_quota(
    const std::vector<int64_t>& all, const ExpertPlan& plan, const Topology& topology) {
  const int experts = plan.experts(), ranks = topology.ranks;
  MOE_ASSERT(static_cast<int64_t>(all.size()) == int64_t{ranks} * experts &&
                 static_cast<int>(plan.quota.size()) == experts,
             "route_by_quota: ", all.size(), " counts, ", plan.quota.size(), " quotas for ",
             experts, " experts on ", ranks, " ranks");
  std::vector<std::vector<std::vector<int64_t>>> routes(
      ranks, std::vector<std::vector<int64_t>>(experts, std::vector<int64_t>(ranks, 0)));
  for (int e = 0; e < experts; ++e) {
    std::vector<int64_t> left(ranks);  // each source's tokens of e not yet placed
    int64_t total = 0;
    for (int s = 0; s < ranks; ++s) total += left[s] = all[int64_t{s} * experts + e];
    std::vector<int64_t> room = plan.quota[e];  // each holder's quota not yet filled
    int64_t quotas = 0;
    for (int64_t q : room) quotas += q;
    MOE_ASSERT(quotas == total, "route_by_quota: expert ", e, "'s quotas sum to ", quotas, " for ",
               total, " tokens");
    // Nearest first: a holder's own tokens, then its node's, then any rank's.
    for (const int reach : {0, 1, 2})
      for (size_t h = 0; h < plan.holders[e].size(); ++h) {
        const int holder = plan.holders[e][h];
        for (int s = 0; s < ranks && room[h] > 0; ++s) {
          const bool near = reach == 0   ? s == holder
                            : reach == 1 ? topology.node_of(s) == topology.node_of(holder)
                                         : true;
          if (!near || left[s] == 0) continue;
          const int64_t moved = std::min(left[s], room[h]);
          left[s] -= moved;
          room[h] -= moved;
          routes[s][e][holder] += moved;
        }
      }
  }
  return routes;
}

std::vector<std::vector<int64_t>> route_by_quota(const std::vector<int64_t>& all,
                                                 const ExpertPlan& plan, const Topology& topology,
                                                 int source) {
  MOE_ASSERT(source >= 0 && source < topology.ranks, "route_by_quota: source ", source, " of ",
             topology.ranks, " ranks");
  return route_all_by_quota(all, plan, topology)[source];
}

// The slowest rank's cost of a routing, in rows: the rows it computes, plus the transfer costs of
// the rows it exchanges (sends and receives; each goes out and comes back) and of the plan's
// copies it sends or receives, within its node and across nodes, as the cost model charges them.
static double slowest_rank(const std::vector<std::vector<std::vector<int64_t>>>& routes,
                           const ExpertPlan& plan, const Topology& topology) {
  const int ranks = topology.ranks;
  std::vector<double> rows(ranks, 0), intra(ranks, 0), inter(ranks, 0);
  for (int e = 0; e < plan.experts(); ++e)
    for (int holder : plan.holders[e])
      if (holder != plan.owner[e]) {
        std::vector<double>& exchanged =
            topology.node_of(holder) == topology.node_of(plan.owner[e]) ? intra : inter;
        exchanged[holder] += topology.copy_rows;
        exchanged[plan.owner[e]] += topology.copy_rows;
      }
  for (int s = 0; s < ranks; ++s)
    for (const std::vector<int64_t>& expert : routes[s])
      for (int d = 0; d < ranks; ++d) {
        const auto n = static_cast<double>(expert[d]);
        rows[d] += n;
        if (d == s) continue;
        std::vector<double>& exchanged = topology.node_of(s) == topology.node_of(d) ? intra : inter;
        exchanged[s] += n;
        exchanged[d] += n;
      }
  double slowest = 0;
  for (int r = 0; r < ranks; ++r)
    slowest = std::max(slowest, rows[r] + topology.intra_node_row_cost * intra[r] +
                                    topology.inter_node_row_cost * inter[r]);
  return slowest;
}

std::vector<std::vector<std::vector<int64_t>>> route_every_rank(const std::vector<int64_t>& all,
                                                                const ExpertPlan& plan,
                                                                const Topology& topology) {
  const int experts = plan.experts(), ranks = topology.ranks;
  MOE_ASSERT(static_cast<int64_t>(all.size()) == int64_t{ranks} * experts,
             "route_every_rank: ", all.size(), " counts for ", ranks, " ranks of ", experts,
             " experts");
  ExpertPlan routed = plan;
  if (plan.balance && plan.quota.empty()) {
    std::vector<int64_t> tokens(experts, 0);  // per expert, over the ranks
    for (size_t i = 0; i < all.size(); ++i) tokens[i % experts] += all[i];
    balance_holders(routed, tokens, ranks);
  }
  std::vector<std::vector<std::vector<int64_t>>> even;
  if (routed.quota.empty() || routed.balance)
    for (int s = 0; s < ranks; ++s)
      even.push_back(route_to_replicas(
          {all.begin() + int64_t{s} * experts, all.begin() + int64_t{s + 1} * experts}, plan,
          topology, s));
  if (routed.quota.empty()) return even;
  const std::vector<std::vector<std::vector<int64_t>>> quota =
      route_all_by_quota(all, routed, topology);
  if (routed.balance && slowest_rank(even, plan, topology) <= slowest_rank(quota, plan, topology))
    return even;
  return quota;
}

}  // namespace moe
