// A model small enough for whole-model finite-difference checks, shared by the layer tests.
#pragma once

#include "trainer/config.h"

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

}  // namespace moe::testing
