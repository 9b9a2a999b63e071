#include "parallel/fssdp/least_loaded.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"

namespace moe {

namespace {

// Ranks other than `skip`, least loaded first (lower rank on ties).
std::vector<int> by_load(const std::vector<int64_t>& load, int skip) {
  std::vector<int> ranks;
  for (int r = 0; r < static_cast<int>(load.size()); ++r)
    if (r != skip) ranks.push_back(r);
  std::stable_sort(ranks.begin(), ranks.end(), [&](int a, int b) { return load[a] < load[b]; });
  return ranks;
}

}  // namespace

ExpertPlan plan_least_loaded(const std::vector<int>& owner, const std::vector<int64_t>& tokens,
                             const LeastLoadedBudget& budget, int ranks) {
  MOE_ASSERT(owner.size() == tokens.size(), "plan_least_loaded: ", owner.size(), " owners but ",
             tokens.size(), " token counts");
  MOE_ASSERT(budget.capacity_factor > 0 && budget.min_tokens >= 1 && budget.slots >= 0 &&
                 budget.imbalance_threshold >= 0,
             "plan_least_loaded: bad budget");
  ExpertPlan plan = owners_only(owner);
  check_plan(plan, Topology{ranks, ranks});
  const int experts = plan.experts();
  for (int e = 0; e < experts; ++e) {
    MOE_ASSERT(tokens[e] >= 0, "plan_least_loaded: expert ", e, " has ", tokens[e], " tokens");
    plan.quota.push_back({tokens[e]});
  }
  std::vector<int64_t> pending(ranks, 0);  // owners' tokens of experts not yet placed
  for (int e = 0; e < experts; ++e) pending[owner[e]] += tokens[e];
  const int64_t total = std::accumulate(tokens.begin(), tokens.end(), int64_t{0});
  const double mean = static_cast<double>(total) / ranks;
  const int64_t most = *std::max_element(pending.begin(), pending.end());
  if (total == 0 || static_cast<double>(most) < budget.imbalance_threshold * mean) return plan;

  const auto capacity = std::max<int64_t>(1, static_cast<int64_t>(budget.capacity_factor * mean));
  std::vector<int64_t> assigned(ranks, 0);
  std::vector<int> foreign(ranks, 0);
  auto load = [&](int r) { return assigned[r] + pending[r]; };
  auto room = [&](int r) { return capacity - load(r); };
  std::vector<double> as_double(tokens.begin(), tokens.end());
  for (int e : order_by_load(as_double)) {
    const int64_t n = tokens[e];
    if (n == 0) break;
    const int home = owner[e];
    pending[home] -= n;
    std::map<int, int64_t> share;  // rank -> tokens of e
    share[home] = std::clamp<int64_t>(room(home), 0, n);
    assigned[home] += share[home];
    int64_t rest = n - share[home];
    auto may_hold = [&](int r) { return share.count(r) > 0 || foreign[r] < budget.slots; };
    auto give = [&](int r, int64_t chunk) {
      if (share.count(r) == 0) ++foreign[r];
      share[r] += chunk;
      assigned[r] += chunk;
      rest -= chunk;
    };
    while (rest > 0) {
      int helper = -1;
      int64_t chunk = 0;
      std::vector<int64_t> loads(ranks);
      for (int r = 0; r < ranks; ++r) loads[r] = load(r);
      for (int r : by_load(loads, home)) {
        const int64_t c = std::min(rest, room(r));
        if (c <= 0 || !may_hold(r) || (c < budget.min_tokens && c < rest)) continue;
        helper = r;
        chunk = c;
        break;
      }
      if (helper < 0) break;
      give(helper, chunk);
    }
    if (rest > 0) {  // past capacity: the least-loaded rank that may hold e
      int target = home;
      for (int r = 0; r < ranks; ++r)
        if (may_hold(r) && load(r) < load(target)) target = r;
      give(target, rest);
    }
    plan.holders[e].clear();
    plan.quota[e].clear();
    for (const auto& [r, count] : share) {
      plan.holders[e].push_back(r);
      plan.quota[e].push_back(count);
    }
  }
  return plan;
}

}  // namespace moe
