#include "checkpoint/hf_deepseek.h"

#include "checkpoint/hf_rope.h"

namespace moe {
namespace {

int integer(const JsonNode& root, const char* key) {
  return static_cast<int>(root.at(key).as_int());
}

// A string key that transformers ignores: absent, or the value its code implements.
void expect_word(const JsonNode& root, const std::string& path, const char* key,
                 const std::string& implemented, const std::string& type) {
  const std::optional<JsonNode> node = root.find(key);
  MOE_CHECK(!node || node->as_string() == implemented, path, ": ", key, " '",
            node ? node->as_string() : "", "' is not converted: transformers' ", type,
            " implements ", key, " '", implemented, "' only, whatever the key says");
}

}  // namespace

bool is_deepseek(const std::string& type) { return type == "deepseek_v2" || type == "deepseek_v3"; }

void deepseek_from_hf(const JsonNode& root, const std::string& path, HfImport& out) {
  const bool v3 = out.model_type == "deepseek_v3";
  ModelConfig& m = out.config.model;
  MoeConfig& moe = out.config.moe;
  MOE_CHECK(!root.find("quantization_config"), path,
            ": quantization_config is not converted (FP8 weights with block scales): dequantize "
            "the checkpoint to bf16 or f32 first");
  m.attention = AttentionKind::mla;
  m.head_dim = 0;  // transformers writes qk_rope_head_dim there; the MLA keys give every size
  MOE_CHECK(m.n_kv_heads == m.n_heads, path, ": num_key_value_heads = ", m.n_kv_heads,
            " differs from num_attention_heads = ", m.n_heads,
            ": multi-head latent attention gives every head its own key and value");
  const JsonNode q_lora = root.at("q_lora_rank");  // null: queries projected from the input
  m.q_lora_rank = q_lora.is_null() ? 0 : static_cast<int>(q_lora.as_int());
  MOE_CHECK(q_lora.is_null() || m.q_lora_rank > 0, path,
            ": q_lora_rank = 0; write null for queries projected from the input directly");
  m.kv_lora_rank = integer(root, "kv_lora_rank");
  m.qk_nope_head_dim = integer(root, "qk_nope_head_dim");
  m.qk_rope_head_dim = integer(root, "qk_rope_head_dim");
  m.v_head_dim = integer(root, "v_head_dim");
  const std::optional<JsonNode> rope =
      root.find("rope_parameters") ? root.find("rope_parameters") : root.find("rope_scaling");
  const std::optional<JsonNode> all_dim = rope ? rope->find("mscale_all_dim") : std::nullopt;
  MOE_CHECK(m.rope_scaling.type == RopeScalingType::yarn || !all_dim || all_dim->as_number() == 0,
            path, ": mscale_all_dim with a rope type other than yarn is not converted");
  const std::optional<JsonNode> interleave = root.find("rope_interleave");
  out.rope_interleaved = !v3 || !interleave || interleave->as_bool();

  moe.top_k = integer(root, "num_experts_per_tok");
  moe.num_experts = integer(root, "n_routed_experts");
  moe.expert_hidden = integer(root, "moe_intermediate_size");
  moe.shared_experts = integer(root, "n_shared_experts");
  MOE_CHECK(moe.shared_experts >= 1, path, ": n_shared_experts = ", moe.shared_experts,
            " is not converted (transformers builds a shared MLP of width moe_intermediate_size "
            "* n_shared_experts in every MoE layer)");
  moe.first_k_dense = integer(root, "first_k_dense_replace");
  if (const std::optional<JsonNode> freq = root.find("moe_layer_freq"))
    MOE_CHECK(freq->as_int() == 1, path, ": moe_layer_freq = ", freq->as_int(),
              " is not converted: transformers makes every layer from first_k_dense_replace on "
              "an MoE layer, DeepSeek's code only every moe_layer_freq-th");
  moe.routed_scaling = root.at("routed_scaling_factor").as_number();
  // DeepSeek's name for the load-balancing loss weight (transformers ignores it)
  moe.aux_loss_coeff = root.find("aux_loss_alpha") ? root.at("aux_loss_alpha").as_number() : 0.001;
  if (v3) {
    const std::optional<JsonNode> mtp = root.find("num_nextn_predict_layers")
                                            ? root.find("num_nextn_predict_layers")
                                            : root.find("num_mtp_layers");
    m.mtp_depth = mtp ? static_cast<int>(mtp->as_int()) : 0;
    expect_word(root, path, "scoring_func", "sigmoid", out.model_type);
    expect_word(root, path, "topk_method", "noaux_tc", out.model_type);
    moe.router_score = RouterScore::sigmoid;
    moe.expert_bias = true;
    moe.renormalize = root.at("norm_topk_prob").as_bool();
    moe.n_group = integer(root, "n_group");
    moe.topk_group = integer(root, "topk_group");
    MOE_CHECK(moe.n_group < 1 || moe.num_experts / moe.n_group >= 2, path,
              ": n_group = ", moe.n_group,
              " makes groups of one expert; transformers ranks a group by its two "
              "best experts");
    return;
  }
  expect_word(root, path, "scoring_func", "softmax", out.model_type);
  const std::optional<JsonNode> method = root.find("topk_method");
  MOE_CHECK(!method || method->as_string() == "greedy", path, ": topk_method '",
            method ? method->as_string() : "",
            "' is not converted: MoEForge ranks expert groups by the sum of their two best scores "
            "(DeepSeek-V3), group_limited_greedy by the best one (implemented: greedy)");
  const std::optional<JsonNode> normalize = root.find("norm_topk_prob");
  MOE_CHECK(!normalize || !normalize->as_bool(), path,
            ": norm_topk_prob true is not converted: transformers' deepseek_v2 ignores it, "
            "DeepSeek's code renormalizes the top-k weights");
  moe.router_score = RouterScore::softmax;
  moe.renormalize = false;
}

std::vector<std::pair<std::string, std::string>> deepseek_to_hf(const Config& config,
                                                                const std::string& type) {
  const ModelConfig& m = config.model;
  const MoeConfig& moe = config.moe;
  const bool v3 = type == "deepseek_v3";
  auto refuse = [&](bool condition, const std::string& feature) {
    MOE_CHECK(!condition, "cannot export a model exported as ", type, ": ", feature);
  };
  refuse(m.attention != AttentionKind::mla,
         type + " has multi-head latent attention (model.attention = mla)");
  refuse(moe.shared_experts < 1 || moe.shared_expert_gate ||
             moe.effective_shared_expert_hidden() != moe.expert_hidden,
         type +
             " has ungated shared experts as wide as a routed one (moe.shared_experts >= 1, "
             "moe.shared_expert_hidden = moe.expert_hidden, no moe.shared_expert_gate)");
  refuse(moe.moe_layer_freq != 1, "moe_layer_freq other than 1");
  if (v3) {
    refuse(moe.router_score != RouterScore::sigmoid || !moe.expert_bias,
           "deepseek_v3 routes on sigmoid scores with a correction bias (moe.router_score = "
           "sigmoid, moe.expert_bias true)");
    refuse(moe.num_experts / moe.n_group < 2,
           "transformers ranks an expert group by its two best experts; moe.n_group makes groups "
           "of one");
  } else {
    refuse(moe.router_score != RouterScore::softmax || moe.expert_bias || moe.renormalize ||
               moe.n_group != 1,
           "deepseek_v2 routes greedily on softmax scores without renormalizing (moe.router_score "
           "= softmax, no moe.expert_bias, moe.renormalize false, moe.n_group 1)");
  }
  auto number = [](int x) { return std::to_string(x); };
  std::vector<std::pair<std::string, std::string>> keys = {
      {"q_lora_rank", m.q_lora_rank > 0 ? number(m.q_lora_rank) : "null"},
      {"kv_lora_rank", number(m.kv_lora_rank)},
      {"qk_nope_head_dim", number(m.qk_nope_head_dim)},
      {"qk_rope_head_dim", number(m.qk_rope_head_dim)},
      {"v_head_dim", number(m.v_head_dim)},
      {"moe_intermediate_size", number(moe.expert_hidden)},
      {"n_routed_experts", number(moe.num_experts)},
      {"n_shared_experts", number(moe.shared_experts)},
      {"first_k_dense_replace", number(moe.first_k_dense)},
      {"norm_topk_prob", moe.renormalize ? "true" : "false"},
      {"routed_scaling_factor", json_float(moe.routed_scaling)},
      {"aux_loss_alpha", json_float(moe.aux_loss_coeff)},
      {"scoring_func", v3 ? "\"sigmoid\"" : "\"softmax\""},
      {"topk_method", v3 ? "\"noaux_tc\"" : "\"greedy\""},
      {"n_group", v3 ? number(moe.n_group) : "null"},
      {"topk_group", v3 ? number(moe.topk_group) : "null"}};
  if (v3) {
    keys.push_back({"rope_interleave", "true"});
    keys.push_back({"num_nextn_predict_layers", number(m.mtp_depth)});
  }
  return keys;
}

}  // namespace moe
