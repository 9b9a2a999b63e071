// Heterogeneous sharding (Hecate's Algorithm 2, METHODS.md §1.5): which rank owns each expert of
// every MoE layer, chosen from the experts' loads so that owned load is balanced per layer while
// every rank owns the same number of experts (over all layers together; a rank may own any number
// of one layer's experts). Owners carry master weights and optimizer state, so the trainer re-runs
// this rarely and moves state only when the result changes.
//
// Decisions:
// - The `replicated` hottest experts of each layer (the planner's t: materialized everywhere
//   anyway) are placed last, into whatever slots are left, in (layer, expert) order.
// - The others go layer by layer, the layer with the highest maximum load first, its experts by
//   decreasing load: to the node whose ranks own the least load of that layer (ties: fewer of the
//   layer's experts, then fewer free slots as in the paper, then lower index), there to the rank
//   owning the least load of the layer (ties: fewer of the layer's experts, then more free slots,
//   then lower index). Loads are per layer because layers run one after the other: a rank is a
//   straggler in a layer, not on a sum over layers.
// - Ties among equal loads fall to the lower expert index, so the result is a pure function of
//   its inputs; with no load at all (the first owners) each layer is dealt round-robin over the
//   nodes and their ranks.
#pragma once

#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe {

// load[l][e]: expert e of MoE layer l (every layer has the same number of experts). Returns the
// owner of each expert, indexed l * experts + e. Rank r owns n / ranks experts, one more when
// r < n % ranks (n = layers * experts).
std::vector<int> shard_experts(const std::vector<std::vector<double>>& load, int replicated,
                               const Topology& topology);

// The owners plain expert parallelism would have (expert e of every layer on rank e * ranks / E,
// contiguous blocks): the starting point and the reference for comparisons.
std::vector<int> contiguous_owners(int layers, int experts, const Topology& topology);

}  // namespace moe
