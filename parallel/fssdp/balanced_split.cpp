#include "parallel/fssdp/balanced_split.h"

#include <algorithm>

#include "core/error.h"

namespace moe {

constexpr int kPasses = 4;  // over the copied experts: the first, then three refinements

void balance_holders(ExpertPlan& plan, const std::vector<int64_t>& tokens, int ranks) {
  const int experts = plan.experts();
  MOE_ASSERT(static_cast<int>(tokens.size()) == experts, "balance_holders: ", tokens.size(),
             " token counts for ", experts, " experts");
  std::vector<int64_t> load(ranks, 0);
  plan.quota.assign(experts, {});
  for (int e = 0; e < experts; ++e) {
    MOE_ASSERT(tokens[e] >= 0, "balance_holders: expert ", e, " has ", tokens[e], " tokens");
    plan.quota[e].assign(plan.holders[e].size(), 0);
    if (plan.holders[e].size() == 1) {
      plan.quota[e][0] = tokens[e];
      load[plan.holders[e][0]] += tokens[e];
    }
  }
  // Fills the least-loaded holders of e up to a common level with its tokens, given the others'.
  auto fill = [&](int e) {
    std::vector<size_t> by_load(plan.holders[e].size());  // holder indices, least loaded first
    for (size_t i = 0; i < by_load.size(); ++i) by_load[i] = i;
    auto rank_load = [&](size_t i) { return load[plan.holders[e][i]]; };
    std::stable_sort(by_load.begin(), by_load.end(),
                     [&](size_t a, size_t b) { return rank_load(a) < rank_load(b); });
    // The k least-loaded holders rise together while the tokens reach the next one's level.
    size_t k = 1;
    int64_t filled = rank_load(by_load[0]);  // their loads' sum
    while (k < by_load.size() &&
           rank_load(by_load[k]) * static_cast<int64_t>(k) - filled <= tokens[e]) {
      filled += rank_load(by_load[k]);
      ++k;
    }
    const int64_t total = filled + tokens[e], level = total / static_cast<int64_t>(k);
    const int64_t extra = total % static_cast<int64_t>(k);
    for (size_t j = 0; j < k; ++j) {
      const size_t i = by_load[j];
      const int64_t take = level + (static_cast<int64_t>(j) < extra ? 1 : 0) - rank_load(i);
      plan.quota[e][i] = take;
      load[plan.holders[e][i]] += take;
    }
  };
  std::vector<int> copied;  // hottest first
  for (int e : order_by_load({tokens.begin(), tokens.end()}))
    if (plan.holders[e].size() > 1) copied.push_back(e);
  for (int e : copied) fill(e);
  // Each later pass takes one expert's tokens back and fills them again given every other
  // expert's: the busiest holder never gets busier, and the first pass's greedy order matters less.
  for (int pass = 1; pass < kPasses; ++pass)
    for (int e : copied) {
      for (size_t i = 0; i < plan.holders[e].size(); ++i) {
        load[plan.holders[e][i]] -= plan.quota[e][i];
        plan.quota[e][i] = 0;
      }
      fill(e);
    }
}

}  // namespace moe
