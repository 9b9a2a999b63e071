// The model's own description: the decoder's shape (model.*) and its experts (moe.*), the part of
// a run config that layers/, checkpoint/ and upcycling/ read.
//
// Decisions:
// - "0 = derived" keys (head_dim, shared_expert_hidden) keep the 0, so the printed config is what
//   the user wrote; effective_*() resolve them.
// - Enum keys carry their YAML words in enum_words() beside the enum (config/schema.h).
// - RoPE scaling is a member of ModelConfig, so it reaches the layers with the model's shape, but a
//   YAML section of its own (rope_scaling), visited by Config: sections do not nest.
#pragma once

#include <array>
#include <string_view>

#include "config/schema.h"

namespace moe {

enum class ModelKind { decoder, bts };
constexpr std::array<std::string_view, 2> enum_words(ModelKind) { return {"decoder", "bts"}; }

enum class QkNormScope { head, projection };
constexpr std::array<std::string_view, 2> enum_words(QkNormScope) { return {"head", "projection"}; }

// model.attention: grouped-query attention (Llama family) or multi-head latent attention
// (DeepSeek-V2/V3: keys and values from a low-rank latent, a RoPE key shared by all heads).
enum class AttentionKind { mha, mla };
constexpr std::array<std::string_view, 2> enum_words(AttentionKind) { return {"mha", "mla"}; }

enum class RouterScore { softmax, sigmoid };
constexpr std::array<std::string_view, 2> enum_words(RouterScore) { return {"softmax", "sigmoid"}; }

enum class DropPolicy { probs, position };
constexpr std::array<std::string_view, 2> enum_words(DropPolicy) { return {"probs", "position"}; }

enum class AuxLossType { micro_batch, sequence, global_batch };
constexpr std::array<std::string_view, 3> enum_words(AuxLossType) {
  return {"micro_batch", "sequence", "global_batch"};
}

enum class AuxLossNorm { megatron, hf, switch_ };
constexpr std::array<std::string_view, 3> enum_words(AuxLossNorm) {
  return {"megatron", "hf", "switch"};
}

// rope_scaling.type: how the rotary frequencies are stretched for a context longer than the one
// the model was trained on (METHODS.md §7.2; layers/rope_frequencies.cpp).
enum class RopeScalingType { none, linear, llama3, yarn };
constexpr std::array<std::string_view, 4> enum_words(RopeScalingType) {
  return {"none", "linear", "llama3", "yarn"};
}
inline std::string_view refusal_reason(RopeScalingType, std::string_view word) {
  if (word == "default") return "write none: the unscaled frequencies";
  if (word == "dynamic" || word == "longrope")
    return "this rope type is not implemented in MoEForge";
  return {};
}

// The rope_scaling section, Hugging Face's rope_scaling (transformers 4) or rope_parameters (5).
// 0 means "not set" where transformers has no default, so that validation can ask for the value.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::none;
  double factor = 0;
  int original_max_seq_len = 0;
  double low_freq_factor = 0;
  double high_freq_factor = 0;
  double beta_fast = 32;
  double beta_slow = 1;
  double mscale = 0;
  double mscale_all_dim = 0;
  double attention_factor = 0;

  template <class V>
  void visit(V& v) {
    v.field("type", type, "none, or how the RoPE frequencies are scaled (linear, llama3, yarn)");
    v.field("factor", factor, Range::at_least(0),
            "context extension factor; required by linear, llama3 and yarn");
    v.field("original_max_seq_len", original_max_seq_len, Range::at_least(0),
            "llama3, yarn: context length of pre-training; 0 = model.max_seq_len");
    v.field(
        "low_freq_factor", low_freq_factor, Range::at_least(0),
        "llama3: wavelengths above original_max_seq_len / low_freq_factor are divided by factor");
    v.field("high_freq_factor", high_freq_factor, Range::at_least(0),
            "llama3: wavelengths below original_max_seq_len / high_freq_factor are kept");
    v.field("beta_fast", beta_fast, Range::above(0),
            "yarn: a pair turning more often over the original context keeps its frequency");
    v.field("beta_slow", beta_slow, Range::above(0),
            "yarn: a pair turning less often over the original context is divided by factor");
    v.field(
        "mscale", mscale, Range::at_least(0),
        "yarn: with mscale_all_dim, attention_factor = m(mscale) / m(mscale_all_dim); 0 = unset");
    v.field("mscale_all_dim", mscale_all_dim, Range::at_least(0), "yarn: see mscale; 0 = unset");
    v.field("attention_factor", attention_factor, Range::at_least(0),
            "yarn: multiplies cos and sin; 0 = derived from factor (and mscale)");
  }
  int effective_original_max_seq_len(int max_seq_len) const {
    return original_max_seq_len > 0 ? original_max_seq_len : max_seq_len;
  }
  bool operator==(const RopeScaling&) const = default;
};

struct ModelConfig {
  ModelKind kind = ModelKind::decoder;
  int vocab_size = 257;
  int d_model = 128;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;
  int head_dim = 0;
  int ffn_hidden = 512;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool qk_norm = false;
  QkNormScope qk_norm_scope = QkNormScope::head;
  bool qkv_bias = false;
  bool tie_embeddings = true;
  int max_seq_len = 256;
  double init_std = 0.02;
  AttentionKind attention = AttentionKind::mha;
  int q_lora_rank = 0;  // MLA keys (0 = unset; q_lora_rank 0 = queries projected directly)
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  int mtp_depth = 0;
  double mtp_loss_weight = 0.3;
  RopeScaling rope_scaling;  // its own section, rope_scaling (config/run_config.h)

  template <class V>
  void visit(V& v) {
    v.field("kind", kind,
            "a decoder, or frozen decoders joined by trained stitch layers (section bts)");
    v.field("vocab_size", vocab_size, Range::at_least(1), "token vocabulary size");
    v.field("d_model", d_model, Range::at_least(1), "model width (residual stream)");
    v.field("n_layers", n_layers, Range::at_least(1), "decoder blocks");
    v.field("n_heads", n_heads, Range::at_least(1), "attention query heads");
    v.field("n_kv_heads", n_kv_heads, Range::at_least(1), "key/value heads (GQA); divides n_heads");
    v.field("head_dim", head_dim, Range::at_least(0), "size of one head; 0 = d_model / n_heads");
    v.field("ffn_hidden", ffn_hidden, Range::at_least(1), "hidden size of the dense SwiGLU FFN");
    v.field("rope_theta", rope_theta, Range::above(0), "RoPE base");
    v.field("norm_eps", norm_eps, Range::above(0), "RMSNorm epsilon");
    v.field("qk_norm", qk_norm, "RMSNorm on each query and key head");
    v.field("qk_norm_scope", qk_norm_scope,
            "qk_norm over each head (Qwen3) or over the whole q and k projections (OLMoE)");
    v.field("qkv_bias", qkv_bias, "bias on the query/key/value projections");
    v.field("tie_embeddings", tie_embeddings, "LM head shares the token embedding");
    v.field("max_seq_len", max_seq_len, Range::at_least(1), "longest sequence (RoPE table)");
    v.field("init_std", init_std, Range::above(0), "std of the normal init of weights");
    v.field("attention", attention,
            "mha: grouped-query attention; mla: multi-head latent attention (DeepSeek-V2/V3)");
    v.field("q_lora_rank", q_lora_rank, Range::at_least(0),
            "mla: rank of the query latent; 0 = queries projected from the input directly");
    v.field("kv_lora_rank", kv_lora_rank, Range::at_least(0),
            "mla: rank of the key/value latent (required)");
    v.field("qk_nope_head_dim", qk_nope_head_dim, Range::at_least(0),
            "mla: per-head query/key size without RoPE (required)");
    v.field(
        "qk_rope_head_dim", qk_rope_head_dim, Range::at_least(0),
        "mla: per-head query/key size with RoPE; the RoPE key is shared by all heads (required)");
    v.field("v_head_dim", v_head_dim, Range::at_least(0), "mla: per-head value size (required)");
    v.field("mtp_depth", mtp_depth, Range::at_least(0),
            "multi-token prediction modules (DeepSeek-V3): module k predicts the token k + 1 "
            "ahead; 0 = off");
    v.field("mtp_loss_weight", mtp_loss_weight, Range::at_least(0),
            "weight of the mean of the modules' cross-entropies in the objective (lambda)");
  }
  int effective_head_dim() const { return head_dim > 0 ? head_dim : d_model / n_heads; }
  // The dimensions RoPE rotates in a head: the whole head, or MLA's RoPE part.
  int rotary_dim() const {
    return attention == AttentionKind::mla ? qk_rope_head_dim : effective_head_dim();
  }
  bool operator==(const ModelConfig&) const = default;
};

struct MoeConfig {
  int num_experts = 8;
  int top_k = 2;
  int expert_hidden = 256;
  int shared_experts = 0;
  int shared_expert_hidden = 0;
  bool shared_expert_gate = false;
  int first_k_dense = 0;
  int moe_layer_freq = 1;
  RouterScore router_score = RouterScore::softmax;
  int n_group = 1;
  int topk_group = 1;
  bool renormalize = true;
  double routed_scaling = 1.0;
  double capacity_factor = 0.0;
  DropPolicy drop_policy = DropPolicy::probs;
  double aux_loss_coeff = 0.01;
  AuxLossType aux_loss_type = AuxLossType::micro_batch;
  AuxLossNorm aux_loss_norm = AuxLossNorm::megatron;
  double z_loss_coeff = 0.001;
  bool expert_bias = false;
  double expert_bias_rate = 0.001;
  double router_skew = 0;

  template <class V>
  void visit(V& v) {
    v.field("num_experts", num_experts, Range::at_least(1), "routed experts per MoE layer");
    v.field("top_k", top_k, Range::at_least(1), "experts per token, <= num_experts");
    v.field("expert_hidden", expert_hidden, Range::at_least(1), "hidden size of a routed expert");
    v.field("shared_experts", shared_experts, Range::at_least(0), "always-active shared experts");
    v.field("shared_expert_hidden", shared_expert_hidden, Range::at_least(0),
            "hidden size of a shared expert; 0 = expert_hidden");
    v.field("shared_expert_gate", shared_expert_gate,
            "scale the shared experts' output by a learned sigmoid gate per token (Qwen2-MoE)");
    v.field("first_k_dense", first_k_dense, Range::at_least(0), "the first k layers are dense");
    v.field("moe_layer_freq", moe_layer_freq, Range::at_least(1),
            "after those, layer i is MoE when i % moe_layer_freq == 0");
    v.field("router_score", router_score, "router scoring function");
    v.field("n_group", n_group, Range::at_least(1),
            "group-limited routing (DeepSeek-V3): experts in n_group groups of consecutive ids; "
            "1 = off");
    v.field("topk_group", topk_group, Range::at_least(1),
            "with n_group > 1, tokens choose among the experts of the topk_group groups whose two "
            "best scores (plus expert bias) sum highest");
    v.field("renormalize", renormalize, "top-k gate weights renormalized to sum to 1");
    v.field("routed_scaling", routed_scaling, Range::above(0),
            "scale of the routed experts' output");
    v.field("capacity_factor", capacity_factor, Range::at_least(0),
            "expert capacity; 0 = dropless");
    v.field("drop_policy", drop_policy,
            "over capacity, drop the lowest-probability or the latest tokens");
    v.field("aux_loss_coeff", aux_loss_coeff, Range::at_least(0), "load-balancing loss; 0 = off");
    v.field("aux_loss_type", aux_loss_type, "tokens over which expert load is counted");
    v.field("aux_loss_norm", aux_loss_norm, "scaling convention of the load-balancing loss");
    v.field("z_loss_coeff", z_loss_coeff, Range::at_least(0), "router z-loss; 0 = off");
    v.field("expert_bias", expert_bias, "aux-loss-free balancing bias on expert selection");
    v.field("expert_bias_rate", expert_bias_rate, Range::at_least(0), "expert bias update rate");
    v.field("router_skew", router_skew, Range::at_least(0),
            "benchmarks: favor low-numbered experts in the choice (adds skew * (1 - e / (E - 1)) / "
            "E to expert e's score); 0 = off");
  }
  int effective_shared_expert_hidden() const {
    return shared_expert_hidden > 0 ? shared_expert_hidden : expert_hidden;
  }
  bool is_moe_layer(int layer) const {
    return layer >= first_k_dense && layer % moe_layer_freq == 0;
  }
  bool operator==(const MoeConfig&) const = default;
};

}  // namespace moe
