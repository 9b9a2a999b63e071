// Least-Loaded Expert Parallelism (LLEP, Nguyen et al. 2026), as a planner over FSSDP's
// machinery: experts stay on their expert-parallel owners (contiguous blocks), and each forward
// spills the tokens an owner cannot take within capacity, with the expert's weights, to the
// least-loaded ranks. Planned from this forward's token counts alone (no prediction); the weights
// move by the sparse all-gather and their gradients return by the sparse reduce-scatter.
//
// Decisions (following the authors' planner):
// - Below the imbalance threshold (max / mean of the owners' token loads) nothing moves.
// - Capacity per rank: floor(capacity_factor x tokens / ranks), at least 1. Experts go hottest
//   first (lower index on ties); the owner keeps what fits under capacity, counting its own
//   experts still to come; the rest goes in chunks to the other ranks in order of least load
//   (lower rank on ties), each taking what fits. A chunk smaller than min_tokens is only sent
//   when it is the whole remainder.
// - Memory: a rank takes at most `slots` foreign experts per layer. What no rank can take under
//   capacity goes to the least-loaded rank that may hold the expert (its owner, a rank already
//   helping with it, or one with a free slot), past capacity: every token is processed.
// - The plan carries each holder's token quota; replica_routing.h fills the quotas from every
//   rank's tokens, nearest first (the holder's own rank, its node, any rank).
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe {

struct LeastLoadedBudget {
  double capacity_factor = 1.1;      // alpha: a rank's tokens up to this times the mean
  int64_t min_tokens = 1024;         // m: the smallest chunk worth moving an expert for
  double imbalance_threshold = 1.3;  // lambda: plan only from this max / mean on; 0 = always
  int slots = 2;                     // foreign experts a rank may hold per layer
};

// owner: each expert's rank; tokens: this forward's tokens per expert, summed over the ranks.
ExpertPlan plan_least_loaded(const std::vector<int>& owner, const std::vector<int64_t>& tokens,
                             const LeastLoadedBudget& budget, int ranks);

}  // namespace moe
