// The load prediction the FSSDP planners use (METHODS.md §1.4): per expert, the mean of the
// tokens it received over the last `window` steps. Fed with loads already summed over all ranks
// (an all-reduce), so every rank predicts, and therefore plans, the same.
#pragma once

#include <deque>
#include <vector>

namespace moe {

class LoadHistory {
 public:
  LoadHistory(int experts, int window);

  void record(const std::vector<double>& load);  // one step's tokens per expert
  // The mean over the recorded steps (at most window); zeros before the first.
  std::vector<double> predict() const;

 private:
  int experts_, window_;
  std::deque<std::vector<double>> steps_;
};

}  // namespace moe
