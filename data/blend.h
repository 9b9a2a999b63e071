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
// - The index keeps only the rule's state after the last sample it placed (O(datasets) memory):
//   reading forward, as training does, costs O(datasets) per sample; asking for an earlier sample
//   (a resume) replays the rule from sample 0 once.
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
  std::vector<double> weights_;         // normalized
  mutable std::vector<int64_t> taken_;  // samples given to each dataset among the first next_
  mutable int64_t next_ = 0;            // samples placed so far
  mutable std::pair<int, int64_t> last_{0, 0};  // where sample next_ - 1 went
};

}  // namespace moe
