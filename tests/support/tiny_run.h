// A training run small enough for tests that train for real (a few seconds on one CPU): a 2-layer
// model, dense then MoE (4 experts, top-2), d_model 32, sequences of 32 tokens, on `dataset`.
#pragma once

#include <string>

#include "config/run_config.h"

namespace moe::testing {

inline Config tiny_run(const std::string& dataset) {
  Config c;
  c.model.d_model = 32;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.ffn_hidden = 64;
  c.model.max_seq_len = 32;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 32;
  c.moe.first_k_dense = 1;
  c.data.train = dataset;
  c.data.seq_len = 32;
  c.train.micro_batch_size = 4;
  c.train.grad_accum = 2;
  return c;
}

}  // namespace moe::testing
