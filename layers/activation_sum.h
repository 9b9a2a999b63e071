// Sums of activations over a group (tensor-parallel partial outputs, duplicate-token expert rows).
//
// Decisions:
// - bf16 activations are widened to f32, summed over the group in f32 and rounded once: MPI has no
//   bf16 sum, and one rounding of the whole sum is what one rank computing it alone does, so tensor
//   parallel stays as close to one rank as the f32 summation order allows. Other dtypes are summed
//   as they are.
#pragma once

#include "parallel/parallel_groups.h"

namespace moe {

// x = the sum over the group of x; nothing on a group of one.
void all_reduce_activations(Communicator* group, Tensor& x, Stream& stream);
// out = this rank's block of the sum over the group of `in` (Communicator::reduce_scatter).
void reduce_scatter_activations(Communicator& group, const Tensor& in, Tensor& out, Stream& stream);

}  // namespace moe
