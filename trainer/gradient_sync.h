// How each rank's gradients become the gradient of the global batch's mean loss (DESIGN.md §3).
//
// - TP: split parameters need nothing; replicated ones computed the same gradient on every TP
//   rank; partial ones (TpMode::partial) are summed over TP, once per step.
// - DP: every rank's gradient is that of the mean loss over its own slice, so the sum over data
//   parallel ranks divided by dp is the global gradient. Dense parameters are summed over dp. An
//   expert's gradient already sums the tokens of its whole EP group (they were dispatched to it),
//   so expert parameters are summed over edp only, and also divided by dp.
// Each is one collective per contiguous arena range (the store orders its arena for this).
#pragma once

#include "layers/parameters.h"
#include "parallel/parallel_groups.h"

namespace moe {

// The group a parameter group's gradients are summed (or, under ZeRO-1, sharded) over.
Communicator* reduction_group(const ParallelGroups& groups, ParamGroup group);
void sum_partial_gradients(ParameterStore& store, const ParallelGroups& groups, Stream& stream);
void average_gradients(ParameterStore& store, const ParallelGroups& groups, Stream& stream);

}  // namespace moe
