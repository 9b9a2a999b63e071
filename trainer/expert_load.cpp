#include "trainer/expert_load.h"

#include <algorithm>
#include <cmath>

namespace moe {

LoadSummary summarize_load(const std::vector<int64_t>& tokens_per_expert) {
  LoadSummary s;
  if (tokens_per_expert.empty()) return s;
  const double n = static_cast<double>(tokens_per_expert.size());
  double sum = 0, max = 0;
  for (int64_t t : tokens_per_expert) {
    sum += static_cast<double>(t);
    max = std::max(max, static_cast<double>(t));
    s.idle_experts += t == 0;
  }
  if (sum == 0) return {0, 0, 0};
  const double mean = sum / n;
  double squares = 0;
  for (int64_t t : tokens_per_expert) squares += (t - mean) * (t - mean);
  s.max_over_mean = max / mean;
  s.cv = std::sqrt(squares / n) / mean;
  return s;
}

}  // namespace moe
