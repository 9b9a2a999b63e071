// Megatron-style tensor-parallel placements over groups.tp (DESIGN.md §3). A weight [out, in] is
// column parallel when its output rows are split (each TP rank computes a slice of the outputs
// from the whole input; the input gradients are partial sums, all-reduced by the module) or row
// parallel when its input columns are split (each rank computes a partial sum of the whole output,
// all-reduced by the module). Tokens are replicated over the TP group between modules.
#pragma once

#include "core/error.h"
#include "layers/parameters.h"
#include "parallel/parallel_groups.h"

namespace moe {

// n / tp: this rank's share of a dimension split over TP, which tp must divide (`what` names it).
inline int64_t tp_share(int64_t n, const char* what, const ParallelGroups& groups) {
  const int tp = group_size(groups.tp);
  MOE_CHECK(n % tp == 0, "parallel.tp = ", tp, " must divide ", what, " = ", n);
  return n / tp;
}

inline Split tp_split(const ParallelGroups& groups, int dim) {
  return {dim, group_rank(groups.tp), group_size(groups.tp)};
}

inline Placement column_parallel(const ParallelGroups& groups) {
  return {ParamGroup::dense, TpMode::split, {tp_split(groups, 0)}};
}

inline Placement row_parallel(const ParallelGroups& groups) {
  return {ParamGroup::dense, TpMode::split, {tp_split(groups, 1)}};
}

// Whether this rank holds the primary copy of its block of a parameter: of the ranks that hold the
// same block (TP copies, data-parallel replicas), the one that checkpoints write and norms count.
inline bool holds_primary_copy(const Placement& placement, const ParallelGroups& groups) {
  if (placement.tp != TpMode::split && group_rank(groups.tp) != 0) return false;
  return group_rank(placement.group == ParamGroup::dense ? groups.dp : groups.edp) == 0;
}

}  // namespace moe
