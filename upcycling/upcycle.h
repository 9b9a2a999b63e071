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
// - granular (Megatron-style, METHODS.md §6): G = dense ffn_hidden / expert_hidden slices of the
//   dense FFN; expert e takes slice e mod G, scaled by a^(1/3) (SwiGLU) with a = G for
//   renormalized gates and a = E G G / k otherwise; experts gG .. gG+G-1 share one router row. With
//   G = 1 it is copy; for G > 1 the MoE only approximates the dense function (SiLU is not
//   homogeneous).
// - btx (Branch-Train-MiX): N dense models of one architecture; expert e is the FFN of model
//   e * N / E unchanged, every other tensor the element-wise mean of the N models.
// - drop (Drop-Upcycling) and noise: after copying, each expert independently picks
//   floor(ratio * d_ff) of its intermediate neurons (rows of w_gate and w_up, columns of w_down);
//   drop re-draws them from N(mean, std) of the original matrix (or of the selected slice), noise
//   adds N(0, noise_std^2). index_mode shared uses one neuron set per expert for the three
//   matrices (the paper), per_matrix one per matrix (the released code). Every draw is a function
//   of (seed, layer, expert, matrix), so a seed repeats exactly.
// - The randomness never touches what the method keeps: kept neurons are bit-identical copies.
#pragma once

#include <string>
#include <vector>

#include "config/run_config.h"

namespace moe {

struct UpcycleOptions {
  std::string method = "copy";  // copy, granular, drop, noise, btx
  double router_std = 0.02;
  double ratio = 0.5;                 // drop, noise: share of neurons per expert
  std::string index_mode = "shared";  // shared, per_matrix
  std::string statistics = "matrix";  // drop: matrix, slice
  double noise_std = 0.01;            // noise
  uint64_t seed = 0;
  bool shared_from_dense = false;  // shared experts start as the dense FFN
};

// Reads the committed dense checkpoints (one, or several for btx), builds `moe_config`'s model from
// them and writes OUTPUT/step_00000000. Returns that directory. InputError naming the tensor or
// option at fault when the models do not fit together.
std::string upcycle(const std::vector<std::string>& dense_dirs, const Config& moe_config,
                    const UpcycleOptions& options, const std::string& output);

}  // namespace moe
