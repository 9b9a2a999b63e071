// How a decoder runs, apart from its shape (ModelConfig, MoeConfig): the few run settings the
// layers need, which trainer/make_model maps from the run config.
//
// Decisions:
// - Plain values with every "0 = derived" already resolved, so the layers never read the run
//   config and hold no reference into it.
#pragma once

#include <optional>

#include "parallel/fssdp/materialization.h"

namespace moe {

// parallel.experts: fssdp: how the MoE layers' experts are owned and copied (fssdp.* keys).
struct FssdpPlacement {
  MaterializationBudget budget;  // copies per rank and layer (slots), per step (overlap)
  int window = 1;                // steps of load the copies are planned from
  int ranks_per_node = 1;        // of the FSSDP group, for placing copies near their tokens
  bool rematerialize = false;    // gather copies again in backward instead of keeping them
  int reshard_interval = 0;      // steps between owner moves; 0 = never
};

struct ModelOptions {
  bool recompute = false;        // train.recompute: activations rebuilt in backward
  bool bf16 = false;             // train.precision: bf16 activations and weight compute copies
  bool decay_embedding = false;  // weight decay on the token embedding
  std::optional<FssdpPlacement> fssdp = std::nullopt;
};

}  // namespace moe
