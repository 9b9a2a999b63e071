// How a calibrated FSSDP plan splits each expert's tokens among its holders (fssdp.calibrate): as
// quotas that even out the ranks' loads, instead of replica routing's even split, which keeps
// every token on its own rank when that rank holds the expert.
//
// Decisions:
// - Experts with one holder are pinned to it. Then, hottest expert first (lower index on ties),
//   an expert's tokens fill its least-loaded holders up to a common level (water-filling); the
//   rounding remainder goes one token each to the lowest of them, lower rank first on ties.
//   Three more passes take each copied expert's tokens back and fill them again given all the
//   others (coordinate descent on the busiest rank: a refill never raises it), which undoes most
//   of what the greedy first order got wrong.
// - Exact loads only: the quotas must add up to this forward's tokens, so a predicted plan
//   (calibrate: false) keeps the even split.
// - route_every_rank (replica_routing.h) computes them from every rank's gathered counts and
//   follows them unless the even split leaves the busiest rank no more rows; the dispatcher calls
//   it once per TP share of the tokens, so that each TP rank's share is balanced on its own.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe {

// tokens: this forward's tokens per expert, summed over the ranks. Sets plan.quota.
void balance_holders(ExpertPlan& plan, const std::vector<int64_t>& tokens, int ranks);

}  // namespace moe
