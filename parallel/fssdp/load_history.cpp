#include "parallel/fssdp/load_history.h"

#include "core/error.h"

namespace moe {

LoadHistory::LoadHistory(int experts, int window) : experts_(experts), window_(window) {
  MOE_ASSERT(experts > 0 && window > 0, "LoadHistory: ", experts, " experts, window ", window);
}

void LoadHistory::record(const std::vector<double>& load) {
  MOE_ASSERT(static_cast<int>(load.size()) == experts_, "LoadHistory: ", load.size(), " loads for ",
             experts_, " experts");
  steps_.push_back(load);
  if (static_cast<int>(steps_.size()) > window_) steps_.pop_front();
}

std::vector<double> LoadHistory::predict() const {
  std::vector<double> mean(experts_, 0.0);
  for (const std::vector<double>& step : steps_)
    for (int e = 0; e < experts_; ++e) mean[e] += step[e];
  if (!steps_.empty())
    for (double& m : mean) m /= static_cast<double>(steps_.size());
  return mean;
}

}  // namespace moe
