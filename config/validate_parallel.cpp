// Constraints of parallel.* against the shapes they split.
#include "config/validation.h"

namespace moe {

void validate_parallel_layout(const Config& config, const std::string& where) {
  const ModelConfig& m = config.model;
  const MoeConfig& moe = config.moe;
  const ParallelConfig& p = config.parallel;
  MOE_CHECK(m.n_heads % p.tp == 0 && m.n_kv_heads % p.tp == 0, "invalid config in ", where,
            ": parallel.tp = ", p.tp, " must divide model.n_heads = ", m.n_heads,
            " and model.n_kv_heads = ", m.n_kv_heads);
  MOE_CHECK(m.ffn_hidden % p.tp == 0, "invalid config in ", where, ": parallel.tp = ", p.tp,
            " must divide model.ffn_hidden = ", m.ffn_hidden);
  MOE_CHECK(
      !m.qk_norm || m.qk_norm_scope == QkNormScope::head || p.tp == 1, "invalid config in ", where,
      ": model.qk_norm_scope = projection normalizes across heads, which parallel.tp = ", p.tp,
      " splits; it needs parallel.tp = 1");
  MOE_CHECK(m.vocab_size % p.tp == 0, "invalid config in ", where, ": parallel.tp = ", p.tp,
            " must divide model.vocab_size = ", m.vocab_size,
            " (the vocabulary is split over TP; a larger vocab_size than the tokenizer's is fine)");
  const int64_t shared_hidden = int64_t{moe.shared_experts} * moe.effective_shared_expert_hidden();
  MOE_CHECK(shared_hidden % p.tp == 0, "invalid config in ", where, ": parallel.tp = ", p.tp,
            " must divide the shared experts' hidden size moe.shared_experts x "
            "moe.shared_expert_hidden = ",
            shared_hidden);
  MOE_CHECK(!p.expert_tp || moe.expert_hidden % p.tp == 0, "invalid config in ", where,
            ": parallel.tp = ", p.tp, " must divide moe.expert_hidden = ", moe.expert_hidden,
            " when parallel.expert_tp is set");
  MOE_CHECK(p.experts != ExpertPlacement::llep || !p.expert_tp, "invalid config in ", where,
            ": parallel.experts = llep moves whole experts between ranks: it does not split them "
            "over TP (parallel.expert_tp; LLEP needs parallel.tp = 1, where it splits nothing)");
  MOE_CHECK(p.experts != ExpertPlacement::llep || p.tp == 1, "invalid config in ", where,
            ": parallel.experts = llep needs parallel.tp = 1 (got ", p.tp,
            "): its token quotas cut each expert's whole token list, which TP shares out");
  if (p.experts != ExpertPlacement::fssdp) {
    MOE_CHECK(moe.num_experts % p.ep == 0, "invalid config in ", where, ": parallel.ep = ", p.ep,
              " must divide moe.num_experts = ", moe.num_experts,
              " (parallel.experts: fssdp places any number of experts on each rank)");
  }
  MOE_CHECK(p.dp == 0 || p.dp % p.ep == 0, "invalid config in ", where, ": parallel.ep = ", p.ep,
            " must divide parallel.dp = ", p.dp);
}

}  // namespace moe
