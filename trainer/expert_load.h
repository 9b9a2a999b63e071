// Summaries of how evenly an MoE layer spread its tokens over experts, for the log line and the
// metrics file: max/mean (1 = perfectly even, E = everything on one expert), the coefficient of
// variation (std/mean, population std) and the number of experts that got no tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

struct LoadSummary {
  double max_over_mean = 0;
  double cv = 0;
  int64_t idle_experts = 0;
};

// All zero for an empty or all-zero load.
LoadSummary summarize_load(const std::vector<int64_t>& tokens_per_expert);

}  // namespace moe
