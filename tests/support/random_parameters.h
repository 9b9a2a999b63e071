// Parameters set to random values for tests that must leave an initialization's symmetries
// (zero projections, uniform gates) behind.
#pragma once

#include <functional>
#include <vector>

#include "kernels/ops.h"
#include "layers/parameters.h"
#include "tests/support/gradcheck.h"

namespace moe::testing {

// Sets each parameter that `select` accepts (every one when it is empty), in store order, to
// random_tensor(shape, seed++, lo, hi), and returns them with their gradients for gradients_match.
inline std::vector<GradInput> randomize_parameters(
    ParameterStore& store, uint64_t seed, double lo, double hi,
    const std::function<bool(const Parameter&)>& select = {}) {
  std::vector<GradInput> inputs;
  Stream stream;
  for (Parameter& p : store.parameters()) {
    if (select && !select(p)) continue;
    Tensor r = random_tensor(p.shape, store.dtype(), seed++, lo, hi);
    ops::copy(r, p.value, stream);
    inputs.push_back({p.name, p.value, p.grad});
  }
  return inputs;
}

}  // namespace moe::testing
