// A model small enough for whole-model finite-difference checks, shared by the layer tests.
#pragma once

#include <vector>

#include "config/run_config.h"
#include "core/tensor.h"
#include "layers/language_model.h"

namespace moe::testing {

// 2 layers, d_model 8, 2 query heads over 1 kv head, 4 experts top-2, vocab 11, no dense layers.
// init_std is large so that router scores are well separated: the top-k choice must not flip under
// a finite-difference step.
inline Config tiny_moe_config() {
  Config c;
  c.model.vocab_size = 11;
  c.model.d_model = 8;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.ffn_hidden = 12;
  c.model.max_seq_len = 8;
  c.model.init_std = 0.4;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 6;
  c.moe.aux_loss_coeff = 0.1;
  c.moe.z_loss_coeff = 0.01;
  c.data.seq_len = 4;
  return c;
}

struct TinyBatch {
  Tensor inputs, targets;
};

// `batch` sequences of data.seq_len fixed token ids (host tensors), one target ignored.
inline TinyBatch tiny_batch(const Config& config, int64_t batch = 2) {
  const int64_t seq = config.data.seq_len;
  std::vector<int32_t> inputs, targets;
  for (int64_t i = 0; i < batch * seq; ++i) {
    inputs.push_back(static_cast<int32_t>((7 * i + 3) % config.model.vocab_size));
    targets.push_back(static_cast<int32_t>((5 * i + 1) % config.model.vocab_size));
  }
  targets[3] = LanguageModel::ignore_index;
  return {Tensor::from_vector<int32_t>({batch, seq}, inputs),
          Tensor::from_vector<int32_t>({batch, seq}, targets)};
}

}  // namespace moe::testing
