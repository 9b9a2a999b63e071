#include "parallel/fssdp/expert_plan.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace moe {

bool ExpertPlan::holds(int expert, int rank) const {
  const std::vector<int>& ranks = holders[expert];
  return std::binary_search(ranks.begin(), ranks.end(), rank);
}

std::vector<int> ExpertPlan::replicas_on(int rank) const {
  std::vector<int> experts;
  for (int e = 0; e < this->experts(); ++e)
    if (owner[e] != rank && holds(e, rank)) experts.push_back(e);
  return experts;
}

int64_t ExpertPlan::copies() const {
  int64_t n = 0;
  for (const std::vector<int>& h : holders) n += static_cast<int64_t>(h.size()) - 1;
  return n;
}

std::vector<int> order_by_load(const std::vector<double>& load) {
  std::vector<int> order(load.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return load[a] > load[b]; });
  return order;
}

ExpertPlan owners_only(const std::vector<int>& owner) {
  ExpertPlan plan{owner, {}};
  for (int rank : owner) plan.holders.push_back({rank});
  return plan;
}

void check_plan(const ExpertPlan& plan, const Topology& topology) {
  MOE_ASSERT(plan.holders.size() == plan.owner.size(), "FSSDP plan: ", plan.owner.size(),
             " owners but ", plan.holders.size(), " holder lists");
  MOE_ASSERT(plan.quota.empty() || plan.quota.size() == plan.owner.size(),
             "FSSDP plan: ", plan.quota.size(), " quotas for ", plan.owner.size(), " experts");
  for (int e = 0; e < plan.experts(); ++e) {
    const std::vector<int>& ranks = plan.holders[e];
    MOE_ASSERT(plan.quota.empty() || plan.quota[e].size() == ranks.size(), "FSSDP plan: expert ", e,
               " has ", ranks.size(), " holders but ", plan.quota[e].size(), " quotas");
    MOE_ASSERT(plan.owner[e] >= 0 && plan.owner[e] < topology.ranks, "FSSDP plan: expert ", e,
               " has owner ", plan.owner[e], " of ", topology.ranks, " ranks");
    MOE_ASSERT(std::is_sorted(ranks.begin(), ranks.end()) &&
                   std::adjacent_find(ranks.begin(), ranks.end()) == ranks.end(),
               "FSSDP plan: expert ", e, "'s holders are not sorted and distinct");
    MOE_ASSERT(plan.holds(e, plan.owner[e]), "FSSDP plan: expert ", e, "'s owner ", plan.owner[e],
               " is not among its holders");
    MOE_ASSERT(ranks.front() >= 0 && ranks.back() < topology.ranks, "FSSDP plan: expert ", e,
               " has a holder outside [0, ", topology.ranks, ")");
  }
}

}  // namespace moe
