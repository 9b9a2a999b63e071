// Dataset blends: which dataset each global training sample comes from.
//
// Decisions:
// - The spec is the config string "PREFIX WEIGHT, PREFIX WEIGHT, ..." (Megatron's data-path blend
//   with commas); a single "PREFIX" has weight 1. Weights are normalized; a negative, non-numeric
//   or all-zero weight is an InputError quoting the entry.
// - Assignment is Megatron's greedy deficit rule: sample g goes to the dataset d with the largest
//   weight_d * (g + 1) - taken_d (ties to the lower d). The realized mix over any prefix of the
//   stream is within one sample per dataset of the weights, and the assignment of sample g
//   depends on nothing but the weights, so it is the same on every rank and after a resume.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe {

struct BlendEntry {
  std::string prefix;
  double weight = 1.0;
};

// Parses the spec; `key` names the config key in errors.
std::vector<BlendEntry> parse_blend(const std::string& spec, const std::string& key);

class BlendIndex {
 public:
  explicit BlendIndex(std::vector<double> weights);
  // (dataset, index of the sample within that dataset) of global sample g.
  std::pair<int, int64_t> locate(int64_t g) const;

 private:
  void extend_to(int64_t g) const;

  std::vector<double> weights_;  // normalized
  mutable std::vector<int64_t> taken_;
  mutable std::vector<std::pair<int, int64_t>> assigned_;
};

}  // namespace moe
