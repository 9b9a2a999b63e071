// Constraints within model.* and moe.*.
#include "config/validation.h"

namespace moe {

void validate_model_shape(const Config& config, const std::string& where) {
  const ModelConfig& m = config.model;
  const MoeConfig& moe = config.moe;
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
  MOE_CHECK(moe.first_k_dense <= m.n_layers, "invalid config in ", where,
            ": moe.first_k_dense = ", moe.first_k_dense, " exceeds model.n_layers = ", m.n_layers);
}

}  // namespace moe
