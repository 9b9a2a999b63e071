// How a decoder runs, apart from its shape (ModelConfig, MoeConfig): the few run settings the
// layers need, which trainer/make_model maps from the run config.
//
// Decisions:
// - Plain values with every "0 = derived" already resolved, so the layers never read the run
//   config and hold no reference into it.
#pragma once

#include <optional>

#include "parallel/fssdp/coordinator.h"

namespace moe {

struct ModelOptions {
  bool recompute = false;        // train.recompute: activations rebuilt in backward
  bool bf16 = false;             // train.precision: bf16 activations and weight compute copies
  bool decay_embedding = false;  // weight decay on the token embedding
  std::optional<FssdpPlacement> fssdp = std::nullopt;  // parallel.experts: fssdp or llep
};

}  // namespace moe
