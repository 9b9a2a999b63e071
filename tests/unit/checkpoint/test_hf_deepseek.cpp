// DeepSeek-V2/V3 interop (checkpoint/hf_deepseek.h) on the fixtures deepseek_v3 (query latent,
// expert groups, correction bias, a multi-token prediction module: test_hf_mtp.cpp),
// deepseek_v3_yarn (queries projected directly, yarn with mscale_all_dim) and deepseek_v2 (softmax,
// greedy), which transformers 5 built and scored (tests/fixtures/hf/README.md). Their logits and
// the bit-exact export are in test_hf_interop.cpp with the other fixtures; here: the keys read, the
// export read back, that the correction bias, the group count and the RoPE row order reach the
// logits, the rope_interleave key, and an error naming the key for every refused value.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/hf_convert.h"
#include "checkpoint/hf_model.h"
#include "checkpoint/safetensors.h"
#include "tests/support/error_message.h"
#include "tests/unit/checkpoint/hf_fixture.h"

namespace moe {
namespace {

using testing::edited_fixture;
using testing::hf_fixtures;
using testing::imported_logits;
using testing::NewTensor;
using testing::temp_dir;

HfImport fixture_config(const std::string& name) {
  return config_from_hf(hf_fixtures() + "/" + name + "/config.json");
}

// The sizes and routing config.json gives (deepseek_v3/config.json; the others differ where
// checked).
TEST(HfDeepseek, ImportReadsTheLatentAttentionAndRoutingKeys) {
  const HfImport v3 = fixture_config("deepseek_v3");
  const ModelConfig& m = v3.config.model;
  const MoeConfig& moe = v3.config.moe;
  EXPECT_EQ(m.attention, AttentionKind::mla);
  EXPECT_EQ(std::tuple(m.q_lora_rank, m.kv_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim,
                       m.v_head_dim, m.head_dim, m.n_kv_heads),
            std::tuple(48, 32, 16, 8, 16, 0, 4));
  EXPECT_EQ(std::tuple(moe.num_experts, moe.top_k, moe.expert_hidden, moe.shared_experts,
                       moe.first_k_dense, moe.n_group, moe.topk_group),
            std::tuple(8, 2, 16, 1, 1, 4, 2));
  EXPECT_EQ(moe.router_score, RouterScore::sigmoid);
  EXPECT_TRUE(moe.expert_bias);
  EXPECT_TRUE(moe.renormalize);
  EXPECT_EQ(moe.routed_scaling, 2.5);
  EXPECT_EQ(m.ffn_hidden, 80);
  EXPECT_TRUE(v3.rope_interleaved);

  const HfImport yarn = fixture_config("deepseek_v3_yarn");
  EXPECT_EQ(yarn.config.model.q_lora_rank, 0);  // null
  EXPECT_EQ(yarn.config.model.rope_scaling.type, RopeScalingType::yarn);
  EXPECT_EQ(yarn.config.model.rope_scaling.mscale_all_dim, 0.707);
  EXPECT_FALSE(yarn.config.moe.renormalize);

  const HfImport v2 = fixture_config("deepseek_v2");
  EXPECT_EQ(v2.config.moe.router_score, RouterScore::softmax);
  EXPECT_FALSE(v2.config.moe.expert_bias);
  EXPECT_FALSE(v2.config.moe.renormalize);
  EXPECT_EQ(v2.config.moe.n_group, 1);
  EXPECT_EQ(v2.config.moe.routed_scaling, 2.0);
  EXPECT_TRUE(v2.rope_interleaved);  // DeepseekV2 always pairs its RoPE dimensions
}

// The config.json export writes (for the type export picks by itself) reads back as the same model.
TEST(HfDeepseek, ExportedConfigReadsBackAsTheSameModel) {
  for (const std::string name : {"deepseek_v3", "deepseek_v3_yarn", "deepseek_v2"}) {
    SCOPED_TRACE(name);
    const HfImport hf = fixture_config(name);
    const std::string type = default_hf_model_type(hf.config);
    EXPECT_EQ(type, hf.model_type);
    const std::string dir = temp_dir(name + "_config");
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/config.json") << hf_config_json(hf.config, type, "float32");
    const HfImport again = config_from_hf(dir + "/config.json");
    EXPECT_EQ(again.config.model, hf.config.model);
    EXPECT_EQ(again.config.moe, hf.config.moe);
  }
}

// Each refused value of a config.json key is an error naming the key.
TEST(HfDeepseek, RefusedKeysAreErrorsNamingTheKey) {
  const std::string type_key = "\"model_type\"";
  auto with = [&](const std::string& member) { return member + ",\n  " + type_key; };
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> cases = {
      {"deepseek_v3", "\"attention_bias\": false", "\"attention_bias\": true", "attention_bias"},
      {"deepseek_v3", "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 2",
       "num_key_value_heads = 2"},
      {"deepseek_v3", type_key, with("\"scoring_func\": \"softmax\""), "scoring_func 'softmax'"},
      {"deepseek_v3", type_key, with("\"topk_method\": \"greedy\""), "topk_method 'greedy'"},
      {"deepseek_v3", type_key, with("\"moe_layer_freq\": 2"), "moe_layer_freq = 2"},
      {"deepseek_v3", type_key, with("\"quantization_config\": {\"quant_method\": \"fp8\"}"),
       "quantization_config"},
      {"deepseek_v3", "\"n_shared_experts\": 1", "\"n_shared_experts\": 0", "n_shared_experts = 0"},
      {"deepseek_v3", "\"n_group\": 4", "\"n_group\": 8", "n_group = 8"},
      {"deepseek_v3", "\"q_lora_rank\": 48", "\"q_lora_rank\": 0", "q_lora_rank = 0"},
      {"deepseek_v3_yarn", "\"rope_type\": \"yarn\"", "\"rope_type\": \"linear\"",
       "mscale_all_dim"},
      {"deepseek_v2", "\"topk_method\": \"greedy\"", "\"topk_method\": \"group_limited_greedy\"",
       "topk_method 'group_limited_greedy'"},
      {"deepseek_v2", "\"norm_topk_prob\": false", "\"norm_topk_prob\": true",
       "norm_topk_prob true"},
      {"deepseek_v2", type_key, with("\"scoring_func\": \"sigmoid\""), "scoring_func 'sigmoid'"}};
  for (const auto& [name, from, to, key] : cases) {
    SCOPED_TRACE(name + ": " + to);
    const std::string source = edited_fixture(name, from, to, "");
    const std::string message =
        testing::input_error_message([&] { config_from_hf(source + "/config.json"); });
    EXPECT_TRUE(testing::mentions(message, key));
  }
}

// What deepseek_v3 and deepseek_v2 cannot express is refused on export with the reason.
TEST(HfDeepseek, ExportRefusesWhatTheTypeCannotExpress) {
  Config v3 = fixture_config("deepseek_v3").config;
  v3.model.mtp_depth = 0;  // refused for other types first (test_hf_mtp.cpp)
  std::vector<std::tuple<Config, std::string, std::string>> cases;
  cases.push_back({v3, "mixtral", "multi-head latent attention exists only in deepseek_v2"});
  cases.push_back({v3, "deepseek_v2", "deepseek_v2 routes greedily on softmax scores"});
  cases.push_back({fixture_config("mixtral").config, "deepseek_v3",
                   "deepseek_v3 has multi-head latent attention"});
  Config changed = v3;
  changed.moe.expert_bias = false;
  cases.push_back({changed, "deepseek_v3", "with a correction bias"});
  changed = v3;
  changed.moe.shared_expert_gate = true;
  cases.push_back({changed, "deepseek_v3", "ungated shared experts"});
  changed = v3;
  changed.moe.shared_expert_hidden = 32;
  cases.push_back({changed, "deepseek_v3", "as wide as a routed one"});
  changed = v3;
  changed.moe.moe_layer_freq = 2;
  cases.push_back({changed, "deepseek_v3", "moe_layer_freq"});
  changed = v3;
  changed.moe.n_group = 8;
  cases.push_back({changed, "deepseek_v3", "groups of one"});
  for (const auto& [config, type, reason] : cases) {
    SCOPED_TRACE(type + ": " + reason);
    const std::string message =
        testing::input_error_message([&] { hf_config_json(config, type, "float32"); });
    EXPECT_TRUE(testing::mentions(message, "cannot export a model exported as " + type));
    EXPECT_TRUE(testing::mentions(message, reason));
  }
}

// The logits of the deepseek_v3 fixture with one edit: transformers' reference is missed.
TEST(HfDeepseek, ADroppedCorrectionBiasOrAnotherGroupCountMissesTheReference) {
  const NewTensor zeros{{8}, std::vector<float>(8, 0.0f)};
  const std::string no_bias = edited_fixture(
      "deepseek_v3", "", "", "", {{"model.layers.1.mlp.gate.e_score_correction_bias", zeros}});
  EXPECT_FALSE(testing::matches_reference(imported_logits(no_bias, "deepseek_v3")));
  // 2 groups of 4, both kept: the choice is no longer limited to 2 groups of 2
  const std::string two_groups =
      edited_fixture("deepseek_v3", "\"n_group\": 4", "\"n_group\": 2", "");
  EXPECT_FALSE(testing::matches_reference(imported_logits(two_groups, "deepseek_v3")));
}

// Rows [begin, begin + dim) of every `period` rows of a [rows, cols] matrix, from interleaved
// pairs (x0, x1), (x2, x3), ... to the evens followed by the odds.
std::vector<float> evens_then_odds(std::vector<float> w, int64_t cols, int64_t period,
                                   int64_t begin, int64_t dim) {
  const std::vector<float> original = w;
  for (int64_t start = begin; start < static_cast<int64_t>(w.size()) / cols; start += period)
    for (int64_t j = 0; j < dim; ++j) {
      const int64_t to = j % 2 == 0 ? j / 2 : dim / 2 + j / 2;
      std::copy_n(original.begin() + (start + j) * cols, cols, w.begin() + (start + to) * cols);
    }
  return w;
}

// rope_interleave false: transformers rotates the RoPE rows as they are (rotate-half). The
// fixture's weights with those rows put in that order, and the key false, give the reference
// logits; exported, they are interleaved again: the original fixture bit for bit. Without the
// reordering, the key alone misses the reference.
TEST(HfDeepseek, RopeInterleaveFalseReadsRotateHalfRows) {
  const SafetensorsFile file(hf_fixtures() + "/deepseek_v3/model.safetensors");
  std::map<std::string, NewTensor> reordered;
  for (const SafetensorsTensor& t : file.tensors()) {
    const bool query = t.name.ends_with("q_b_proj.weight");
    if (!query && !t.name.ends_with("kv_a_proj_with_mqa.weight")) continue;
    std::vector<float> values(t.numel);
    file.read_f32(t, values.data());
    // q_b_proj: per head 16 rows without RoPE, then 8 with; kv_a_proj_with_mqa: the latent's 32,
    // then the key's 8
    reordered[t.name] = {t.shape, query ? evens_then_odds(values, t.shape[1], 24, 16, 8)
                                        : evens_then_odds(values, t.shape[1], 40, 32, 8)};
  }
  ASSERT_EQ(reordered.size(), 6u);  // layers 0, 1 and the multi-token prediction module 2
  const std::string from = "\"rope_interleave\": true", to = "\"rope_interleave\": false";
  const std::string source = edited_fixture("deepseek_v3", from, to, "", reordered);
  EXPECT_TRUE(testing::matches_reference(imported_logits(source, "deepseek_v3")));
  const std::string step = hf_to_moeforge(source, temp_dir("deepseek_rotate_half"));
  const std::string exported = temp_dir("deepseek_rotate_half_exported");
  moeforge_to_hf(step, exported, "deepseek_v3", "f32", int64_t{1} << 40);
  testing::expect_same_tensors(hf_fixtures() + "/deepseek_v3", exported);

  const std::string key_only = edited_fixture("deepseek_v3", from, to, "");
  EXPECT_FALSE(testing::matches_reference(imported_logits(key_only, "deepseek_v3")));
}

// transformers keeps the correction bias in f32: a bf16 export writes it so, the rest in bf16.
TEST(HfDeepseek, ABf16ExportKeepsTheCorrectionBiasInF32) {
  const std::string step =
      hf_to_moeforge(hf_fixtures() + "/deepseek_v3", temp_dir("deepseek_bf16"));
  const std::string exported = temp_dir("deepseek_bf16_exported");
  moeforge_to_hf(step, exported, "", "bf16", int64_t{1} << 40);
  const SafetensorsFile file(exported + "/model.safetensors");
  for (const SafetensorsTensor& t : file.tensors())
    EXPECT_EQ(t.dtype, t.name.ends_with(".e_score_correction_bias") ? "F32" : "BF16") << t.name;
  EXPECT_EQ(file.at("model.layers.1.mlp.gate.e_score_correction_bias").shape,
            std::vector<int64_t>{8});
}

}  // namespace
}  // namespace moe
