// The rotary frequencies of a model: inv_freq[j] = theta^(-2j/dim), j < dim/2, where dim is
// ModelConfig::rotary_dim (the head, or MLA's RoPE part), scaled as model.rope_scaling says (none,
// linear, llama3, yarn; METHODS.md §7.2 has the formulas), and the attention factor that
// multiplies cos and sin (yarn's; 1 otherwise).
//
// Decisions:
// - Computed once, on the host, in double; both backends' RoPE read the same table
//   (ops::rope_forward takes it), so there is one definition of the frequencies.
// - transformers computes them in f32; the differences are f32 roundings of the angles.
#pragma once

#include <vector>

#include "config/model_config.h"

namespace moe {

struct RopeFrequencies {
  std::vector<double> inv_freq;  // [rotary_dim / 2]
  double attention_factor = 1.0;
};

RopeFrequencies rope_frequencies(const ModelConfig& model);

// What multi-head latent attention multiplies its softmax scale by: m(factor, mscale_all_dim)^2
// when rope_scaling is set and gives mscale_all_dim (transformers' DeepSeek rule), else 1.
double latent_softmax_factor(const RopeScaling& scaling);

}  // namespace moe
