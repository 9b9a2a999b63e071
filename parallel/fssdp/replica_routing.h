// Token routing to replicas (Hecate §4.4, METHODS.md §1.6): once an expert is held by several
// ranks, where this rank's tokens for it go. The result feeds the usual all-to-all-v dispatch.
//
// Decisions:
// - A token stays on its rank when the rank holds the expert; otherwise it goes to the holders on
//   its own node, and only when its node has none, to all holders. Tokens are split evenly among
//   the chosen holders, the remainder one each to the holders starting at index (rank mod their
//   number), so that the remainders of different source ranks land on different holders.
// - Pure and per source rank: each rank routes its own tokens; no rank needs another's counts.
// - With quotas (the least-loaded planner's) a holder must receive exactly its quota, which
//   depends on every rank's counts: the cut of the concatenated tokens does that, and every rank
//   computes every rank's routing from the same gathered counts.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe {

// tokens[e]: this rank's tokens routed to expert e of the plan's layer. Returns send[e][d]: how
// many of them go to rank d (zero unless d holds e); every row sums to tokens[e].
std::vector<std::vector<int64_t>> route_to_replicas(const std::vector<int64_t>& tokens,
                                                    const ExpertPlan& plan,
                                                    const Topology& topology, int rank);

// The same for a plan with quotas (ExpertPlan::quota): every expert's tokens, source rank after
// source rank (all[s * E + e]: rank s's tokens of expert e), are cut into its holders' quotas in
// holder order; source's share of each cut goes to that holder. Needs every rank's counts.
std::vector<std::vector<int64_t>> route_by_quota(const std::vector<int64_t>& all,
                                                 const ExpertPlan& plan, int ranks, int source);

}  // namespace moe
