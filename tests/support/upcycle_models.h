// What the upcycling tests start from: a small dense model, the MoE of the same shape whose
// experts have the dense FFN's size (so copy upcycling reproduces it), and the logits both are
// compared on.
#pragma once

#include <vector>

#include "config/run_config.h"
#include "layers/model.h"

namespace moe::testing {

// 2 layers, d_model 16, 2 heads, SwiGLU FFN 24, untied head, large init (well-separated routing).
inline Config small_dense_config(int vocab_size, int n_kv_heads) {
  Config c;
  c.model.vocab_size = vocab_size;
  c.model.d_model = 16;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = n_kv_heads;
  c.model.ffn_hidden = 24;
  c.model.max_seq_len = 8;
  c.model.init_std = 0.3;
  c.model.tie_embeddings = false;
  c.moe.first_k_dense = c.model.n_layers;  // no MoE layer
  c.moe.num_experts = 1;
  c.moe.top_k = 1;
  c.data.seq_len = 8;
  return c;
}

// Every layer MoE, `experts` experts of the dense FFN's size, top-k with renormalized gates.
inline Config upcycled_moe_config(const Config& dense, int experts, int k) {
  Config c = dense;
  c.moe.first_k_dense = 0;
  c.moe.num_experts = experts;
  c.moe.top_k = k;
  c.moe.expert_hidden = c.model.ffn_hidden;
  c.moe.renormalize = true;
  return c;
}

// The whole vocabulary's logits [16, V] of two fixed sequences of 8 tokens (ids below 10).
inline Tensor fixed_token_logits(Model& model) {
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};
  Stream stream;
  const Tensor inputs = Tensor::from_vector<int32_t>({2, 8}, ids);
  const Tensor targets =
      Tensor::from_vector<int32_t>({2, 8}, std::vector<int32_t>(ids.size(), Model::ignore_index));
  const ModelOutput out = model.forward(inputs, targets, false, stream);
  return model.full_logits(out.logits, stream);
}

}  // namespace moe::testing
