#include "checkpoint/hf_model.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "checkpoint/hf_deepseek.h"
#include "checkpoint/hf_rope.h"
#include "formats/json.h"

namespace moe {

namespace {

bool is_moe_type(const std::string& type) {
  return type == "mixtral" || type == "qwen2_moe" || type == "qwen3_moe" || type == "olmoe" ||
         is_deepseek(type);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

template <class T>
T optional_number(const JsonNode& root, const char* key, T fallback) {
  const std::optional<JsonNode> node = root.find(key);
  if (!node) return fallback;
  if constexpr (std::is_same_v<T, bool>)
    return node->as_bool();
  else if constexpr (std::is_integral_v<T>)
    return static_cast<T>(node->as_int());
  else
    return static_cast<T>(node->as_number());
}

// "model.layers.i." and the MoE block's prefix in it.
std::string moe_block(int layer, const std::string& type) {
  return "model.layers." + std::to_string(layer) +
         (type == "mixtral" ? ".block_sparse_moe." : ".mlp.");
}

// The HF names of routed expert e's gate, up and down matrices.
std::array<std::string, 3> expert_names(const std::string& block, int e, const std::string& type) {
  const std::string expert = block + "experts." + std::to_string(e) + ".";
  if (type == "mixtral") return {expert + "w1.weight", expert + "w3.weight", expert + "w2.weight"};
  return {expert + "gate_proj.weight", expert + "up_proj.weight", expert + "down_proj.weight"};
}

// The routed expert count. transformers 5 reads num_experts and num_local_experts as one key for
// mixtral, qwen3_moe (whose config it writes with the second) and olmoe; qwen2_moe has only the
// first.
int expert_count(const JsonNode& root, const std::string& path, const std::string& type) {
  const std::optional<JsonNode> experts = root.find("num_experts");
  const std::optional<JsonNode> local =
      type == "qwen2_moe" ? std::nullopt : root.find("num_local_experts");
  MOE_CHECK(!experts || !local || experts->as_int() == local->as_int(), path,
            ": num_experts and num_local_experts differ");
  return static_cast<int>((experts ? *experts : local ? *local : root.at("num_experts")).as_int());
}

// Multi-head latent attention's tensors of one layer (hf: "model.layers.i.self_attn.", ours:
// "layers.i.attn."). The query's RoPE rows are the last of each head's, the key's the last of
// kv_a_proj_with_mqa.
void mla_tensors(const ModelConfig& m, const std::string& hf, const std::string& ours,
                 std::vector<HfTensor>& list) {
  const RopeRows query{m.qk_nope_head_dim + m.qk_rope_head_dim, m.qk_nope_head_dim,
                       m.qk_rope_head_dim};
  if (m.q_lora_rank > 0) {
    list.push_back({hf + "q_a_proj.weight", ours + "wq_a.weight"});
    list.push_back({hf + "q_a_layernorm.weight", ours + "q_a_norm.weight"});
    list.push_back({hf + "q_b_proj.weight", ours + "wq_b.weight", -1, query});
  } else {
    list.push_back({hf + "q_proj.weight", ours + "wq.weight", -1, query});
  }
  list.push_back({hf + "kv_a_proj_with_mqa.weight",
                  ours + "wkv_a.weight",
                  -1,
                  {m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank, m.qk_rope_head_dim}});
  list.push_back({hf + "kv_a_layernorm.weight", ours + "kv_a_norm.weight"});
  list.push_back({hf + "kv_b_proj.weight", ours + "wkv_b.weight"});
  list.push_back({hf + "o_proj.weight", ours + "wo.weight"});
}

// The tensors of layer i: its norms, attention and FFN (an MTP module's block too).
void layer_tensors(const Config& config, const std::string& type, int i,
                   std::vector<HfTensor>& list) {
  const ModelConfig& m = config.model;
  const std::string hf = "model.layers." + std::to_string(i) + ".";
  const std::string ours = "layers." + std::to_string(i) + ".";
  list.push_back({hf + "input_layernorm.weight", ours + "attn_norm.weight"});
  list.push_back({hf + "post_attention_layernorm.weight", ours + "ffn_norm.weight"});
  if (m.attention == AttentionKind::mla) {
    mla_tensors(m, hf + "self_attn.", ours + "attn.", list);
  } else {
    for (const char* p : {"q", "k", "v", "o"})
      list.push_back({hf + "self_attn." + p + "_proj.weight", ours + "attn.w" + p + ".weight"});
  }
  if (m.qkv_bias)
    for (const char* p : {"q", "k", "v"})
      list.push_back({hf + "self_attn." + p + "_proj.bias", ours + "attn.w" + p + ".bias"});
  if (m.qk_norm)
    for (const char* p : {"q", "k"})
      list.push_back({hf + "self_attn." + p + "_norm.weight", ours + "attn." + p + "_norm.weight"});
  if (!config.moe.is_moe_layer(i)) {
    for (const auto& [theirs, mine] :
         {std::pair{"gate", "w_gate"}, {"up", "w_up"}, {"down", "w_down"}})
      list.push_back({hf + "mlp." + theirs + "_proj.weight", ours + "mlp." + mine});
    return;
  }
  const std::string block = moe_block(i, type);
  list.push_back({block + "gate.weight", ours + "moe.router.gate.weight"});
  if (config.moe.expert_bias)
    list.push_back(
        {block + "gate.e_score_correction_bias", ours + "moe.router.expert_bias", -1, {}, true});
  // qwen2_moe: one gated shared_expert; DeepSeek: shared_experts, one MLP as wide as all
  const std::string shared = is_deepseek(type) ? "shared_experts." : "shared_expert.";
  if (config.moe.shared_experts > 0)
    for (const auto& [theirs, mine] :
         {std::pair{"gate", "w_gate"}, {"up", "w_up"}, {"down", "w_down"}})
      list.push_back(
          {block + shared + theirs + "_proj.weight", ours + "moe.shared_experts." + mine});
  if (config.moe.shared_expert_gate)
    list.push_back({block + "shared_expert_gate.weight", ours + "moe.shared_expert_gate.weight"});
  for (int e = 0; e < config.moe.num_experts; ++e) {
    const std::array<std::string, 3> names = expert_names(block, e, type);
    const char* mine[] = {"w_gate", "w_up", "w_down"};
    for (int w = 0; w < 3; ++w) list.push_back({names[w], ours + "moe.experts." + mine[w], e});
  }
}

void refuse_if(bool condition, const std::string& path, const std::string& what) {
  MOE_CHECK(!condition, path, ": ", what, " has no MoEForge equivalent; not converted");
}

}  // namespace

const std::vector<std::string>& hf_model_types() {
  static const std::vector<std::string> types = {"llama",       "mistral",    "qwen2",     "qwen3",
                                                 "mixtral",     "qwen2_moe",  "qwen3_moe", "olmoe",
                                                 "deepseek_v2", "deepseek_v3"};
  return types;
}

HfImport config_from_hf(const std::string& path) {
  const JsonValue document = read_json_file(path);
  const JsonNode root(document, path, "config.json");
  HfImport out;
  out.model_type = root.at("model_type").as_string();
  const std::string& type = out.model_type;
  MOE_CHECK(
      std::find(hf_model_types().begin(), hf_model_types().end(), type) != hf_model_types().end(),
      path, ": model_type '", type, "' is not supported (supported: ", join(hf_model_types()), ")");
  const std::string act = root.find("hidden_act") ? root.at("hidden_act").as_string() : "silu";
  refuse_if(act != "silu", path, "hidden_act '" + act + "' (MoEForge's FFN is SwiGLU)");
  refuse_if(optional_number<bool>(root, "attention_bias", false), path,
            "attention_bias (it includes an o_proj bias)");
  refuse_if(optional_number<bool>(root, "mlp_bias", false), path, "mlp_bias");

  ModelConfig& m = out.config.model;
  m.vocab_size = static_cast<int>(root.at("vocab_size").as_int());
  m.d_model = static_cast<int>(root.at("hidden_size").as_int());
  m.n_layers = static_cast<int>(root.at("num_hidden_layers").as_int());
  m.n_heads = static_cast<int>(root.at("num_attention_heads").as_int());
  m.n_kv_heads = optional_number<int>(root, "num_key_value_heads", m.n_heads);
  m.head_dim = optional_number<int>(root, "head_dim", 0);
  if (m.head_dim * m.n_heads == m.d_model) m.head_dim = 0;  // the derived value
  m.ffn_hidden = static_cast<int>(root.at("intermediate_size").as_int());
  m.norm_eps = root.at("rms_norm_eps").as_number();
  m.tie_embeddings = optional_number<bool>(root, "tie_word_embeddings", false);
  m.max_seq_len = static_cast<int>(root.at("max_position_embeddings").as_int());
  rope_from_hf(root, m);  // before a sliding window shortens max_seq_len
  // Qwen2MoeConfig reads qkv_bias (default true); Qwen2Config has no such key, its q/k/v always
  // have biases.
  m.qkv_bias =
      type == "qwen2" || (type == "qwen2_moe" && optional_number<bool>(root, "qkv_bias", true));
  m.qk_norm = type == "qwen3" || type == "qwen3_moe" || type == "olmoe";
  if (type == "olmoe") {
    m.qk_norm_scope = QkNormScope::projection;
    refuse_if(root.find("clip_qkv").has_value(), path, "clip_qkv");
  }
  const bool windowed =
      type == "qwen2" || type == "qwen3" || type == "qwen2_moe" || type == "qwen3_moe"
          ? optional_number<bool>(root, "use_sliding_window", false)
          : root.find("sliding_window").has_value();
  const int window = windowed ? optional_number<int>(root, "sliding_window", 0) : 0;
  if (window > 0 && window < m.max_seq_len) {
    out.notes.push_back("sliding_window " + std::to_string(window) + " < max_position_embeddings " +
                        std::to_string(m.max_seq_len) +
                        ": model.max_seq_len is set to the window, within which attention is "
                        "the same");
    m.max_seq_len = window;
  }

  out.config.data.seq_len = std::min(out.config.data.seq_len, m.max_seq_len);
  MoeConfig& moe = out.config.moe;
  moe.z_loss_coeff = 0;
  if (is_deepseek(type)) {
    deepseek_from_hf(root, path, out);
    return out;
  }
  if (!is_moe_type(type)) {
    moe.first_k_dense = m.n_layers;  // dense: no MoE layer
    moe.num_experts = 1;
    moe.top_k = 1;
    return out;
  }
  moe.top_k = static_cast<int>(root.at("num_experts_per_tok").as_int());
  moe.aux_loss_coeff = optional_number<double>(root, "router_aux_loss_coef", 0.01);
  moe.router_score = RouterScore::softmax;
  moe.num_experts = expert_count(root, path, type);
  if (type == "mixtral") {
    moe.expert_hidden = m.ffn_hidden;
    moe.renormalize = true;
    moe.first_k_dense = 0;
    return out;
  }
  moe.renormalize = optional_number<bool>(root, "norm_topk_prob", false);
  if (type == "olmoe") {  // every layer MoE; intermediate_size is the expert's
    moe.expert_hidden = m.ffn_hidden;
    moe.first_k_dense = 0;
    return out;
  }
  moe.expert_hidden = static_cast<int>(root.at("moe_intermediate_size").as_int());
  if (type == "qwen2_moe") {  // one shared expert, gated
    moe.shared_experts = 1;
    moe.shared_expert_hidden =
        static_cast<int>(root.at("shared_expert_intermediate_size").as_int());
    moe.shared_expert_gate = true;
  }
  refuse_if(optional_number<int>(root, "decoder_sparse_step", 1) != 1, path,
            "decoder_sparse_step other than 1 (MoE layers at a stride)");
  int dense_prefix = 0;
  if (const std::optional<JsonNode> only = root.find("mlp_only_layers")) {
    const JsonArray& layers = only->as_array();
    for (size_t i = 0; i < layers.size(); ++i)
      refuse_if(only->element(i).as_int() != static_cast<int64_t>(i), path,
                "mlp_only_layers other than the first k layers");
    dense_prefix = static_cast<int>(layers.size());
  }
  moe.first_k_dense = dense_prefix;
  return out;
}

std::string default_hf_model_type(const Config& config) {
  if (config.model.attention == AttentionKind::mla)
    return config.moe.router_score == RouterScore::sigmoid ? "deepseek_v3" : "deepseek_v2";
  const bool moe = config.moe.first_k_dense < config.model.n_layers;
  if (!moe) return config.model.qk_norm ? "qwen3" : config.model.qkv_bias ? "qwen2" : "llama";
  if (config.model.qk_norm)
    return config.model.qk_norm_scope == QkNormScope::projection ? "olmoe" : "qwen3_moe";
  return config.moe.shared_experts > 0 ? "qwen2_moe" : "mixtral";
}

std::string hf_config_json(const Config& config, const std::string& type,
                           const std::string& torch_dtype) {
  const ModelConfig& m = config.model;
  const MoeConfig& moe = config.moe;
  const std::string what = "a model exported as " + type;
  auto refuse = [&](bool condition, const std::string& feature) {
    MOE_CHECK(!condition, "cannot export ", what, ": ", feature);
  };
  MOE_CHECK(
      std::find(hf_model_types().begin(), hf_model_types().end(), type) != hf_model_types().end(),
      "cannot export as '", type, "' (supported: ", join(hf_model_types()), ")");
  const bool has_moe = moe.first_k_dense < m.n_layers;
  refuse(has_moe != is_moe_type(type), has_moe ? "it has MoE layers" : "it has no MoE layer");
  refuse(m.attention == AttentionKind::mla && !is_deepseek(type),
         "multi-head latent attention exists only in deepseek_v2 and deepseek_v3");
  refuse(m.mtp_depth > 0 && type != "deepseek_v3",
         "multi-token prediction (model.mtp_depth = " + std::to_string(m.mtp_depth) +
             ") exists only in deepseek_v3");
  const std::vector<std::pair<std::string, std::string>> deepseek =
      is_deepseek(type) ? deepseek_to_hf(config, type)
                        : std::vector<std::pair<std::string, std::string>>{};
  refuse(m.qkv_bias && type != "qwen2" && type != "qwen2_moe",
         "q/k/v biases exist only in qwen2 and qwen2_moe");
  refuse(!m.qkv_bias && type == "qwen2", "qwen2 has q/k/v biases");
  refuse(m.qk_norm != (type == "qwen3" || type == "qwen3_moe" || type == "olmoe"),
         m.qk_norm ? "QK-norm exists only in qwen3, qwen3_moe and olmoe" : "it has no QK-norm");
  refuse(m.qk_norm && (m.qk_norm_scope == QkNormScope::projection) != (type == "olmoe"),
         "olmoe normalizes whole q and k projections, qwen3 each head");
  if (has_moe && !is_deepseek(type)) {
    refuse((moe.shared_experts > 0) != (type == "qwen2_moe"),
           moe.shared_experts > 0 ? "shared experts exist only in qwen2_moe"
                                  : "qwen2_moe has a shared expert");
    refuse(moe.shared_experts > 0 && !moe.shared_expert_gate,
           "qwen2_moe gates its shared expert (moe.shared_expert_gate)");
    refuse(moe.router_score != RouterScore::softmax,
           "a " + std::string(word_of(moe.router_score)) + " router");
    refuse(moe.expert_bias, "the aux-loss-free expert bias");
    refuse(moe.routed_scaling != 1.0, "routed_scaling other than 1");
    refuse(moe.moe_layer_freq != 1, "moe_layer_freq other than 1");
    refuse(type == "mixtral" && (!moe.renormalize || moe.first_k_dense != 0),
           "mixtral renormalizes the top-k gates and has no dense layers");
    refuse(type == "olmoe" && moe.first_k_dense != 0, "olmoe has no dense layers");
  }
  char number[64];
  std::string json = "{\n";
  auto field = [&](const std::string& key, const std::string& value) {
    json += "  \"" + key + "\": " + value + ",\n";
  };
  auto real = [&](double x) {
    std::snprintf(number, sizeof number, "%.17g", x);
    return std::string(number);
  };
  auto str = [](const std::string& s) { return "\"" + s + "\""; };
  static const std::pair<const char*, const char*> classes[] = {
      {"llama", "LlamaForCausalLM"},
      {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"},
      {"mixtral", "MixtralForCausalLM"},
      {"qwen2_moe", "Qwen2MoeForCausalLM"},
      {"qwen3_moe", "Qwen3MoeForCausalLM"},
      {"olmoe", "OlmoeForCausalLM"},
      {"deepseek_v2", "DeepseekV2ForCausalLM"},
      {"deepseek_v3", "DeepseekV3ForCausalLM"}};
  for (const auto& [model_type, cls] : classes)
    if (type == model_type) field("architectures", "[" + str(cls) + "]");
  field("model_type", str(type));
  field("vocab_size", std::to_string(m.vocab_size));
  field("hidden_size", std::to_string(m.d_model));
  field("num_hidden_layers", std::to_string(m.n_layers));
  field("num_attention_heads", std::to_string(m.n_heads));
  field("num_key_value_heads", std::to_string(m.n_kv_heads));
  if (!is_deepseek(type)) field("head_dim", std::to_string(m.effective_head_dim()));
  field("intermediate_size",
        std::to_string(type == "mixtral" || type == "olmoe" ? moe.expert_hidden : m.ffn_hidden));
  field("hidden_act", str("silu"));
  field("max_position_embeddings", std::to_string(m.max_seq_len));
  field("rms_norm_eps", real(m.norm_eps));
  json += rope_to_hf(m);
  field("tie_word_embeddings", m.tie_embeddings ? "true" : "false");
  field("attention_bias", "false");
  field("attention_dropout", "0.0");
  if (type == "llama") field("mlp_bias", "false");
  if (type == "mistral" || type == "mixtral") field("sliding_window", "null");
  if (type == "qwen2" || type == "qwen3" || type == "qwen3_moe")
    field("use_sliding_window", "false");
  if (type == "mixtral") field("num_local_experts", std::to_string(moe.num_experts));
  if (type == "olmoe") {
    field("num_experts", std::to_string(moe.num_experts));
    field("norm_topk_prob", moe.renormalize ? "true" : "false");
    field("clip_qkv", "null");
  }
  if (type == "qwen2_moe") {
    field("qkv_bias", m.qkv_bias ? "true" : "false");
    field("shared_expert_intermediate_size",
          std::to_string(int64_t{moe.shared_experts} * moe.effective_shared_expert_hidden()));
  }
  if (type == "qwen2_moe" || type == "qwen3_moe") {
    field("num_experts", std::to_string(moe.num_experts));
    field("moe_intermediate_size", std::to_string(moe.expert_hidden));
    field("norm_topk_prob", moe.renormalize ? "true" : "false");
    field("decoder_sparse_step", "1");
    std::string dense = "[";
    for (int i = 0; i < moe.first_k_dense; ++i) dense += (i ? ", " : "") + std::to_string(i);
    field("mlp_only_layers", dense + "]");
  }
  for (const auto& [key, value] : deepseek) field(key, value);
  if (has_moe) {
    field("num_experts_per_tok", std::to_string(moe.top_k));
    if (!is_deepseek(type)) field("router_aux_loss_coef", real(moe.aux_loss_coeff));
    field("output_router_logits", "false");
  }
  json += "  \"torch_dtype\": " + str(torch_dtype) + "\n}\n";
  return json;
}

std::vector<HfTensor> hf_tensors(const Config& config, const std::string& type) {
  const ModelConfig& m = config.model;
  std::vector<HfTensor> list = {{"model.embed_tokens.weight", "embedding.weight"}};
  for (int i = 0; i < m.n_layers; ++i) layer_tensors(config, type, i, list);
  list.push_back({"model.norm.weight", "final_norm.weight"});
  if (!m.tie_embeddings) list.push_back({"lm_head.weight", "lm_head.weight"});
  const std::string head = m.tie_embeddings ? "embedding.weight" : "lm_head.weight";
  const std::string hf_head = m.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  for (int i = m.n_layers; i < m.n_layers + m.mtp_depth; ++i) {
    layer_tensors(config, type, i, list);
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const std::string ours = "layers." + std::to_string(i) + ".";
    for (const char* name : {"enorm.weight", "hnorm.weight", "eh_proj.weight"})
      list.push_back({hf + name, ours + name});
    list.push_back({hf + "shared_head.norm.weight", ours + "final_norm.weight"});
    list.push_back({hf + "embed_tokens.weight",
                    "embedding.weight",
                    -1,
                    {},
                    false,
                    "model.embed_tokens.weight"});
    list.push_back({hf + "shared_head.head.weight", head, -1, {}, false, hf_head});
  }
  return list;
}

std::string hf_canonical_name(const std::string& name, const std::string& type) {
  const size_t at = name.find(".mlp.");
  if (type != "mixtral" || at == std::string::npos) return name;
  return name.substr(0, at) + ".block_sparse_moe." + name.substr(at + 5);
}

std::vector<HfFusedTensor> hf_fused_tensors(const Config& config, const std::string& type) {
  const int64_t experts = config.moe.num_experts, hidden = config.moe.expert_hidden,
                d_model = config.model.d_model;
  std::vector<HfFusedTensor> list;
  for (int i = 0; i < config.model.n_layers + config.model.mtp_depth; ++i) {
    if (!config.moe.is_moe_layer(i)) continue;
    const std::string block = moe_block(i, type);
    HfFusedTensor gate_up{block + "experts.gate_up_proj", {experts, 2 * hidden, d_model}, {}};
    HfFusedTensor down{block + "experts.down_proj", {experts, d_model, hidden}, {}};
    for (int e = 0; e < experts; ++e) {
      const std::array<std::string, 3> names = expert_names(block, e, type);
      gate_up.parts.insert(gate_up.parts.end(), {names[0], names[1]});
      down.parts.push_back(names[2]);
    }
    list.push_back(gate_up);
    list.push_back(down);
  }
  return list;
}

}  // namespace moe
