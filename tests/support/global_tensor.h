// Assembles a parameter's global tensor from the blocks every rank holds, so that tests compare a
// parallel layout with one rank parameter by parameter. Every rank of `world` must call it.
#pragma once

#include "layers/parameters.h"
#include "parallel/communicator.h"

namespace moe::testing {

struct GlobalTensor {
  Tensor values;           // f64, the parameter's global shape
  int64_t uncovered = 0;   // elements no rank holds
  int64_t mismatched = 0;  // elements two ranks hold with different bits (TP copies, replicas)
};

// local: this rank's block of p (p.value, p.grad, or a tensor shaped like them), f32 or f64.
GlobalTensor gather_global(const Parameter& p, const Tensor& local, Communicator& world);

}  // namespace moe::testing
