// Upcycling: a dense checkpoint becomes the initial state of an MoE model (METHODS.md §2, §6).
//
// Decisions:
// - Everything works on global names: every tensor of the MoE model that also exists in the dense
//   model (embedding, attention, norms, LM head, the FFNs of layers that stay dense) is copied and
//   must have the same shape; a routed expert is made from the dense FFN of its layer; the router
//   is new. The output is a weights-only step-0 checkpoint (AdamW starts from zero moments), with
//   the MoE config embedded, that any layout loads.
// - copy (sparse upcycling): every expert is the dense FFN, so with renormalized top-k gates the
//   MoE computes exactly the dense function at step 0. The router weights are uniform noise with
//   mean 0 and std router_std.
// - drop (Drop-Upcycling) and noise: after copying, each expert independently picks
//   floor(ratio * d_ff) of its intermediate neurons (rows of w_gate and w_up, columns of w_down);
//   drop re-draws them from N(mean, std) of the original matrix (or of the selected slice), noise
//   adds N(0, noise_std^2). index_mode shared uses one neuron set per expert for the three
//   matrices (the paper), per_matrix one per matrix (the released code). Every draw is a function
//   of (seed, layer, expert, matrix), so a seed repeats exactly.
// - The randomness never touches what the method keeps: kept neurons are bit-identical copies.
#pragma once

#include <string>

#include "trainer/config.h"

namespace moe {

struct UpcycleOptions {
  std::string method = "copy";  // copy, drop, noise
  double router_std = 0.02;
  double ratio = 0.5;                 // drop, noise: share of neurons per expert
  std::string index_mode = "shared";  // shared, per_matrix
  std::string statistics = "matrix";  // drop: matrix, slice
  double noise_std = 0.01;            // noise
  uint64_t seed = 0;
  bool shared_from_dense = false;  // shared experts start as the dense FFN
};

// Reads the committed dense checkpoint `dense_dir`, builds `moe_config`'s model from it and writes
// OUTPUT/step_00000000. Returns that directory. InputError naming the tensor or option at fault
// when the two models do not fit together.
std::string upcycle(const std::string& dense_dir, const Config& moe_config,
                    const UpcycleOptions& options, const std::string& output);

}  // namespace moe
