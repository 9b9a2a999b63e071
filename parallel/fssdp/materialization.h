// Sparse materialization (Hecate's Algorithm 1, METHODS.md §1.4): which ranks get a replica of
// which expert of one MoE layer for the next step, from the predicted per-expert load, a memory
// budget and the topology. A pure function: every rank computes the same plan from the same
// all-reduced loads.
//
// Decisions:
// - `overlap` (the paper's t) is how many expert copies the step can hide behind other work and
//   `slots` (m) how many replicas a rank may hold for the layer; both are capped as in the paper
//   (t <= E, m <= t). When t <= m, the t hottest experts go to every rank. Otherwise the ranks'
//   ranks * m slots are shared out in proportion to load, hottest expert first (rounded to
//   nearest, at most one replica per rank): each replica goes to the node with the fewest copies
//   of that expert, then the most free slots, and there to the rank with the most free slots,
//   lowest index on ties, so copies spread over nodes and memory fills evenly.
// - Experts with zero load get no replicas; owners are never moved here (resharding.h does that).
#pragma once

#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe {

struct MaterializationBudget {
  int slots = 0;    // replicas one rank may hold for the layer (memory)
  int overlap = 0;  // expert copies one step can hide (communication)
};

// owner: each expert's owner rank; load: its predicted tokens (>= 0), same length.
ExpertPlan plan_materialization(const std::vector<int>& owner, const std::vector<double>& load,
                                const MaterializationBudget& budget, const Topology& topology);

}  // namespace moe
