// Constraints within model.* and moe.*.
#include <utility>

#include "config/validation.h"

namespace moe {
namespace {

// Multi-head latent attention's keys: all set with model.attention = mla, none without it.
void validate_latent_attention(const ModelConfig& m, const std::string& where) {
  const std::pair<const char*, int> required[] = {{"kv_lora_rank", m.kv_lora_rank},
                                                  {"qk_nope_head_dim", m.qk_nope_head_dim},
                                                  {"qk_rope_head_dim", m.qk_rope_head_dim},
                                                  {"v_head_dim", m.v_head_dim}};
  if (m.attention == AttentionKind::mha) {
    for (const auto& [key, value] : required)
      MOE_CHECK(value == 0, "invalid config in ", where, ": model.", key, " = ", value,
                " is a multi-head latent attention key, but model.attention = mha");
    MOE_CHECK(m.q_lora_rank == 0, "invalid config in ", where,
              ": model.q_lora_rank = ", m.q_lora_rank,
              " is a multi-head latent attention key, but model.attention = mha");
    return;
  }
  for (const auto& [key, value] : required)
    MOE_CHECK(value > 0, "invalid config in ", where, ": model.", key,
              " must be set (>= 1) with model.attention = mla");
  MOE_CHECK(m.qk_rope_head_dim % 2 == 0, "invalid config in ", where,
            ": model.qk_rope_head_dim = ", m.qk_rope_head_dim,
            " must be even (RoPE rotates pairs)");
  MOE_CHECK(m.n_kv_heads == m.n_heads, "invalid config in ", where,
            ": model.n_kv_heads = ", m.n_kv_heads, " must equal model.n_heads = ", m.n_heads,
            " with model.attention = mla (each head has its own key and value)");
  MOE_CHECK(m.head_dim == 0, "invalid config in ", where, ": model.head_dim = ", m.head_dim,
            " must be 0 with model.attention = mla (the head sizes are model.qk_nope_head_dim, "
            "model.qk_rope_head_dim and model.v_head_dim)");
  MOE_CHECK(!m.qk_norm, "invalid config in ", where,
            ": model.qk_norm is not available with model.attention = mla (its latents have their "
            "own norms)");
  MOE_CHECK(!m.qkv_bias, "invalid config in ", where,
            ": model.qkv_bias is not available with model.attention = mla");
}

}  // namespace

void validate_model_shape(const Config& config, const std::string& where) {
  const ModelConfig& m = config.model;
  const MoeConfig& moe = config.moe;
  validate_latent_attention(m, where);
  MOE_CHECK(m.n_heads % m.n_kv_heads == 0, "invalid config in ", where,
            ": model.n_kv_heads = ", m.n_kv_heads, " must divide model.n_heads = ", m.n_heads);
  MOE_CHECK(m.head_dim > 0 || m.d_model % m.n_heads == 0, "invalid config in ", where,
            ": model.n_heads = ", m.n_heads, " must divide model.d_model = ", m.d_model,
            " when model.head_dim is 0 (derived)");
  MOE_CHECK(moe.top_k <= moe.num_experts, "invalid config in ", where, ": moe.top_k = ", moe.top_k,
            " is out of range: allowed [1, moe.num_experts] = [1, ", moe.num_experts, "]");
  MOE_CHECK(moe.num_experts % moe.n_group == 0, "invalid config in ", where,
            ": moe.n_group = ", moe.n_group, " must divide moe.num_experts = ", moe.num_experts);
  MOE_CHECK(moe.topk_group <= moe.n_group, "invalid config in ", where,
            ": moe.topk_group = ", moe.topk_group,
            " is out of range: allowed [1, moe.n_group] = [1, ", moe.n_group, "]");
  MOE_CHECK(moe.topk_group * (moe.num_experts / moe.n_group) >= moe.top_k, "invalid config in ",
            where, ": moe.topk_group = ", moe.topk_group, " groups of ",
            moe.num_experts / moe.n_group,
            " experts (moe.num_experts / moe.n_group) hold fewer "
            "than moe.top_k = ",
            moe.top_k, " experts");
  MOE_CHECK(!moe.shared_expert_gate || moe.shared_experts > 0, "invalid config in ", where,
            ": moe.shared_expert_gate needs shared experts (moe.shared_experts = 0)");
  MOE_CHECK(m.mtp_depth == 0 || config.data.seq_len > m.mtp_depth, "invalid config in ", where,
            ": data.seq_len = ", config.data.seq_len,
            " must exceed model.mtp_depth = ", m.mtp_depth,
            " (module k predicts the token k + 1 ahead within a sequence)");
  MOE_CHECK(moe.first_k_dense <= m.n_layers + m.mtp_depth, "invalid config in ", where,
            ": moe.first_k_dense = ", moe.first_k_dense, " exceeds model.n_layers = ", m.n_layers,
            m.mtp_depth > 0 ? " + model.mtp_depth = " + std::to_string(m.n_layers + m.mtp_depth)
                            : std::string(),
            " (the blocks)");
}

}  // namespace moe
