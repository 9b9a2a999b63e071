// Test helper for plans with token quotas (LLEP, calibrated FSSDP): the tokens each rank processes.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe::testing {

inline std::vector<int64_t> quota_load(const ExpertPlan& plan, int ranks) {
  std::vector<int64_t> load(ranks, 0);
  for (int e = 0; e < plan.experts(); ++e)
    for (size_t h = 0; h < plan.holders[e].size(); ++h)
      load[plan.holders[e][h]] += plan.quota[e][h];
  return load;
}

}  // namespace moe::testing
