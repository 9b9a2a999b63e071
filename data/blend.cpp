#include "data/blend.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace moe {

std::vector<BlendEntry> parse_blend(const std::string& spec, const std::string& key) {
  std::vector<BlendEntry> entries;
  std::stringstream items(spec);
  for (std::string item; std::getline(items, item, ',');) {
    std::stringstream words(item);
    BlendEntry entry;
    std::string weight, extra;
    words >> entry.prefix >> weight >> extra;
    MOE_CHECK(!entry.prefix.empty() && extra.empty(), key, ": '", item,
              "' is not 'PREFIX' or 'PREFIX WEIGHT'");
    if (!weight.empty()) {
      size_t used = 0;
      try {
        entry.weight = std::stod(weight, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      MOE_CHECK(used == weight.size() && std::isfinite(entry.weight) && entry.weight >= 0, key,
                ": the weight '", weight, "' of ", entry.prefix, " is not a number >= 0");
    }
    entries.push_back(entry);
  }
  MOE_CHECK(!entries.empty(), key, " lists no dataset");
  double total = 0;
  for (const BlendEntry& e : entries) total += e.weight;
  MOE_CHECK(total > 0, key, ": the weights sum to zero in '", spec, "'");
  return entries;
}

BlendIndex::BlendIndex(std::vector<double> weights)
    : weights_(std::move(weights)), taken_(weights_.size(), 0) {
  double total = 0;
  for (double w : weights_) total += w;
  MOE_ASSERT(total > 0, "blend weights sum to ", total);
  for (double& w : weights_) w /= total;
}

std::pair<int, int64_t> BlendIndex::locate(int64_t g) const {
  MOE_ASSERT(g >= 0, "negative sample index ", g);
  if (g + 1 < next_) {  // an earlier sample: replay from the start
    std::fill(taken_.begin(), taken_.end(), 0);
    next_ = 0;
  }
  while (next_ <= g) {
    const double placed = static_cast<double>(next_) + 1.0;
    int best = 0;
    double best_deficit = -INFINITY;
    for (size_t d = 0; d < weights_.size(); ++d) {
      const double deficit = weights_[d] * placed - static_cast<double>(taken_[d]);
      if (deficit > best_deficit) {
        best_deficit = deficit;
        best = static_cast<int>(d);
      }
    }
    last_ = {best, taken_[best]++};
    ++next_;
  }
  return last_;
}

}  // namespace moe
