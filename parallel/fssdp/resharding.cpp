#include "parallel/fssdp/resharding.h"

#include <algorithm>
#include <tuple>

#include "core/error.h"

namespace moe {

std::vector<int> shard_experts(const std::vector<std::vector<double>>& load, int replicated,
                               const Topology& topology) {
  MOE_ASSERT(!load.empty(), "shard_experts: no layers");
  const int layers = static_cast<int>(load.size());
  const int experts = static_cast<int>(load[0].size());
  for (const std::vector<double>& layer : load)
    MOE_ASSERT(static_cast<int>(layer.size()) == experts, "shard_experts: layers differ in size");
  const int n = layers * experts, ranks = topology.ranks;
  std::vector<int> free_slots(ranks);
  for (int r = 0; r < ranks; ++r) free_slots[r] = n / ranks + (r < n % ranks ? 1 : 0);
  std::vector<int> owner(n, -1);

  std::vector<double> peak(layers);
  for (int l = 0; l < layers; ++l) peak[l] = *std::max_element(load[l].begin(), load[l].end());
  for (int l : order_by_load(peak)) {
    std::vector<double> rank_load(ranks, 0), node_load(topology.nodes(), 0);
    std::vector<int> rank_count(ranks, 0), node_count(topology.nodes(), 0);  // of this layer
    const std::vector<int> order = order_by_load(load[l]);
    for (size_t i = std::min<size_t>(replicated, order.size()); i < order.size(); ++i) {
      const int e = order[i];
      std::vector<int> node_free(topology.nodes(), 0);
      for (int r = 0; r < ranks; ++r) node_free[topology.node_of(r)] += free_slots[r];
      int node = -1;
      for (int candidate = 0; candidate < topology.nodes(); ++candidate) {
        if (node_free[candidate] == 0) continue;
        if (node < 0 ||
            std::tuple(node_load[candidate], node_count[candidate], node_free[candidate]) <
                std::tuple(node_load[node], node_count[node], node_free[node]))
          node = candidate;
      }
      int rank = -1;
      for (int r = 0; r < ranks; ++r) {
        if (topology.node_of(r) != node || free_slots[r] == 0) continue;
        if (rank < 0 || std::tuple(rank_load[r], rank_count[r], -free_slots[r]) <
                            std::tuple(rank_load[rank], rank_count[rank], -free_slots[rank]))
          rank = r;
      }
      owner[l * experts + e] = rank;
      --free_slots[rank];
      rank_load[rank] += load[l][e];
      node_load[node] += load[l][e];
      ++rank_count[rank];
      ++node_count[node];
    }
  }
  int rank = 0;
  for (int g = 0; g < n; ++g) {
    if (owner[g] >= 0) continue;
    while (free_slots[rank] == 0) ++rank;
    owner[g] = rank;
    --free_slots[rank];
  }
  return owner;
}

std::vector<int> contiguous_owners(int layers, int experts, const Topology& topology) {
  std::vector<int> owner;
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < experts; ++e)
      owner.push_back(static_cast<int>(int64_t{e} * topology.ranks / experts));
  return owner;
}

}  // namespace moe
