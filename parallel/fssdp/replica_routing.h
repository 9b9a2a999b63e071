// Token routing to replicas (Hecate §4.4, METHODS.md §1.6): once an expert is held by several
// ranks, where this rank's tokens for it go. The result feeds the usual all-to-all-v dispatch.
//
// Decisions:
// - A token stays on its rank when the rank holds the expert; otherwise it goes to the holders on
//   its own node, and only when its node has none, to all holders. Tokens are split evenly among
//   the chosen holders, the remainder one each to the holders starting at index (rank mod their
//   number), so that the remainders of different source ranks land on different holders.
// - Pure and per source rank: each rank routes its own tokens; no rank needs another's counts.
// - With quotas (the least-loaded planner's, or calibrated FSSDP's balanced ones) a holder must
//   receive exactly its quota, which depends on every rank's counts: every rank computes every
//   rank's routing from the same gathered counts. The quotas are filled nearest first (a holder
//   takes its own rank's tokens, then its node's, then any rank's), so that only what the quotas
//   force crosses ranks and nodes: a cut of the tokens in rank order sent up to twice that across
//   nodes from three nodes on.
// - Balanced quotas against the even split is decided by the slowest rank's rows and traffic,
//   the same sum of compute and transfer time the cost model charges (cost_model.h).
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

// The same for a plan with quotas (ExpertPlan::quota), for rank `source`: every holder of an
// expert is given exactly its quota of the expert's tokens of all ranks (all[s * E + e]: rank
// s's tokens of expert e), from its own rank first, then from its node's ranks, then from any,
// holders and sources in rank order within each of the three. Needs every rank's counts.
std::vector<std::vector<int64_t>> route_by_quota(const std::vector<int64_t>& all,
                                                 const ExpertPlan& plan, const Topology& topology,
                                                 int source);

// Every rank's routing, routes[s][e][d], of the tokens all[s * E + e]: by the plan's quotas where
// it has them (a plan with ExpertPlan::balance and no quotas yet gets balanced ones from these
// tokens, balanced_split.h), except that balanced quotas (calibrated FSSDP) give way to the even
// split when it costs the slowest rank no more: its rows plus the transfer costs of the rows it
// sends and receives and of its copies (Topology's costs). The even split keeps tokens nearer, so
// on several nodes with mild skew it can win on traffic what it loses on balance. A planner's
// quotas (LLEP) are always followed.
std::vector<std::vector<std::vector<int64_t>>> route_every_rank(const std::vector<int64_t>& all,
                                                                const ExpertPlan& plan,
                                                                const Topology& topology);

}  // namespace moe
