#include "checkpoint/hf_rope.h"

#include <variant>

#include "config/rules.h"

namespace moe {
namespace {

double number_or(const JsonNode& node, const char* key, double fallback) {
  const std::optional<JsonNode> value = node.find(key);
  return value ? value->as_number() : fallback;
}

// A member transformers requires for this rope type.
double required(const JsonNode& node, const char* key, const std::string& type) {
  const std::optional<JsonNode> value = node.find(key);
  if (!value) node.fail("has rope type '" + type + "' but no " + key);
  return value->as_number();
}

}  // namespace

std::string json_float(double x) {
  std::string s = format_number(x);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

void rope_from_hf(const JsonNode& root, ModelConfig& model) {
  const std::optional<JsonNode> parameters = root.find("rope_parameters");
  const std::optional<JsonNode> scaling = parameters ? parameters : root.find("rope_scaling");
  model.rope_theta = number_or(root, "rope_theta", 10000.0);
  model.rope_scaling = RopeScaling{};
  if (!scaling) return;
  const JsonNode& r = *scaling;
  for (const auto& [key, value] : r.as_object())
    if (std::holds_alternative<JsonObject>(value.data()))
      r.fail("has rope parameters per layer type ('" + key +
             "'), which MoEForge does not implement");
  model.rope_theta = number_or(r, "rope_theta", model.rope_theta);
  if (number_or(r, "partial_rotary_factor", 1.0) != 1.0)
    r.fail("has partial_rotary_factor other than 1, which MoEForge does not implement");
  const std::optional<JsonNode> type_node =
      r.find("rope_type") ? r.find("rope_type") : r.find("type");
  const std::string type = type_node ? type_node->as_string() : "default";
  RopeScaling& s = model.rope_scaling;
  if (type == "default") return;
  if (!parse_word(type, s.type) || s.type == RopeScalingType::none)
    r.fail("has rope type '" + type +
           "', which MoEForge does not implement (implemented: default, linear, llama3, yarn)");
  const double original = number_or(r, "original_max_position_embeddings", model.max_seq_len);
  if (s.type != RopeScalingType::linear) s.original_max_seq_len = static_cast<int>(original);
  if (s.type == RopeScalingType::yarn && !r.find("factor")) {
    s.factor = model.max_seq_len / original;
  } else {
    s.factor = required(r, "factor", type);
  }
  if (s.type == RopeScalingType::llama3) {
    s.low_freq_factor = required(r, "low_freq_factor", type);
    s.high_freq_factor = required(r, "high_freq_factor", type);
  }
  if (s.type == RopeScalingType::yarn) {
    // transformers reads these with `or`: a 0 falls back to the default too
    if (const double beta = number_or(r, "beta_fast", 0); beta != 0) s.beta_fast = beta;
    if (const double beta = number_or(r, "beta_slow", 0); beta != 0) s.beta_slow = beta;
    s.mscale = number_or(r, "mscale", 0);
    s.mscale_all_dim = number_or(r, "mscale_all_dim", 0);
    s.attention_factor = number_or(r, "attention_factor", 0);
    if (const std::optional<JsonNode> truncate = r.find("truncate");
        truncate && !truncate->as_bool())
      r.fail(
          "has truncate false (yarn without rounding its ramp ends), which MoEForge does not "
          "implement");
  }
}

std::string rope_to_hf(const ModelConfig& model) {
  const RopeScaling& s = model.rope_scaling;
  std::string out = "  \"rope_theta\": " + json_float(model.rope_theta) + ",\n  \"rope_scaling\": ";
  if (s.type == RopeScalingType::none) return out + "null,\n";
  std::string members = "\"rope_type\": \"" + std::string(word_of(s.type)) + "\"";
  auto add = [&](const char* key, const std::string& value) {
    members += ", \"" + std::string(key) + "\": " + value;
  };
  add("factor", json_float(s.factor));
  if (s.type != RopeScalingType::linear)
    add("original_max_position_embeddings",
        std::to_string(s.effective_original_max_seq_len(model.max_seq_len)));
  if (s.type == RopeScalingType::llama3) {
    add("low_freq_factor", json_float(s.low_freq_factor));
    add("high_freq_factor", json_float(s.high_freq_factor));
  }
  if (s.type == RopeScalingType::yarn) {
    add("beta_fast", json_float(s.beta_fast));
    add("beta_slow", json_float(s.beta_slow));
    if (s.mscale > 0) add("mscale", json_float(s.mscale));
    if (s.mscale_all_dim > 0) add("mscale_all_dim", json_float(s.mscale_all_dim));
    if (s.attention_factor > 0) add("attention_factor", json_float(s.attention_factor));
  }
  return out + "{" + members + "},\n";
}

}  // namespace moe
