#include "parallel/fssdp/materialization.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace moe {

// One more holder of `expert`: the rank with a free slot on the node with the fewest copies of it,
// then the most free slots; there the rank with the most free slots, lowest index first. -1 when
// no rank can take it.
static int pick_rank(const ExpertPlan& plan, int expert, const std::vector<int>& free_slots,
                     const Topology& topology) {
  std::vector<int> copies(topology.nodes(), 0), node_free(topology.nodes(), 0);
  for (int rank : plan.holders[expert]) ++copies[topology.node_of(rank)];
  for (int rank = 0; rank < topology.ranks; ++rank)
    if (!plan.holds(expert, rank)) node_free[topology.node_of(rank)] += free_slots[rank];
  int best = -1;
  for (int rank = 0; rank < topology.ranks; ++rank) {
    if (free_slots[rank] == 0 || plan.holds(expert, rank)) continue;
    if (best < 0) {
      best = rank;
      continue;
    }
    const int n = topology.node_of(rank), b = topology.node_of(best);
    if (n != b) {
      if (copies[n] != copies[b] ? copies[n] < copies[b] : node_free[n] > node_free[b]) best = rank;
    } else if (free_slots[rank] > free_slots[best]) {
      best = rank;
    }
  }
  return best;
}

static void add_holder(ExpertPlan& plan, int expert, int rank) {
  std::vector<int>& ranks = plan.holders[expert];
  ranks.insert(std::upper_bound(ranks.begin(), ranks.end(), rank), rank);
}

ExpertPlan plan_materialization(const std::vector<int>& owner, const std::vector<double>& load,
                                const MaterializationBudget& budget, const Topology& topology) {
  MOE_ASSERT(owner.size() == load.size(), "plan_materialization: ", owner.size(), " owners but ",
             load.size(), " loads");
  MOE_ASSERT(budget.slots >= 0 && budget.overlap >= 0, "plan_materialization: negative budget");
  for (double l : load) MOE_ASSERT(l >= 0 && std::isfinite(l), "plan_materialization: load ", l);
  ExpertPlan plan = owners_only(owner);
  check_plan(plan, topology);
  const int experts = static_cast<int>(owner.size());
  const int t = std::min(budget.overlap, experts);
  const int m = std::min(budget.slots, t);
  const std::vector<int> order = order_by_load(load);
  if (m == 0) return plan;
  if (t <= m) {
    for (int i = 0; i < t && load[order[i]] > 0; ++i)
      for (int rank = 0; rank < topology.ranks; ++rank)
        if (!plan.holds(order[i], rank)) add_holder(plan, order[i], rank);
    return plan;
  }
  const double total_load = std::accumulate(load.begin(), load.end(), 0.0);
  const int total_slots = topology.ranks * m;
  std::vector<int> free_slots(topology.ranks, m);
  for (int expert : order) {
    if (load[expert] == 0) break;
    const auto share = static_cast<int>(std::lround(total_slots * load[expert] / total_load));
    for (int copy = 0; copy < std::min(share, topology.ranks - 1); ++copy) {
      const int rank = pick_rank(plan, expert, free_slots, topology);
      if (rank < 0) break;
      add_holder(plan, expert, rank);
      --free_slots[rank];
    }
  }
  return plan;
}

}  // namespace moe
