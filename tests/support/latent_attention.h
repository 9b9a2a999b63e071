// A test model's attention made multi-head latent attention (model.attention = mla): one key and
// value per head, no QK-norm or bias, the given latent ranks and per-head sizes.
#pragma once

#include "config/run_config.h"

namespace moe::testing {

struct LatentSizes {
  int q_lora_rank = 0, kv_lora_rank = 0, nope = 0, rope = 0, v = 0;
};

inline void use_latent_attention(Config& c, const LatentSizes& s) {
  c.model.attention = AttentionKind::mla;
  c.model.n_kv_heads = c.model.n_heads;
  c.model.qk_norm = false;
  c.model.qkv_bias = false;
  c.model.q_lora_rank = s.q_lora_rank;
  c.model.kv_lora_rank = s.kv_lora_rank;
  c.model.qk_nope_head_dim = s.nope;
  c.model.qk_rope_head_dim = s.rope;
  c.model.v_head_dim = s.v;
}

}  // namespace moe::testing
