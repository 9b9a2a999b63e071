// Hugging Face interop against the reference implementation: every fixture in tests/fixtures/hf
// (tiny random models that the transformers library built and scored, see its README) is
// imported, run through MoEForge's forward and compared with the logits transformers computed; it
// is then exported back and every tensor must equal the original bit for bit. Also: the q/k/v bias
// key of qwen2_moe (a fixture edited to have none) and of qwen2 (none in transformers), and that
// the rope scaling fixtures (llama3, qwen3_yarn, deepseek_v3_yarn) fail with another rope factor.
// The fused fixtures (transformers 5's fused expert tensors) give the reference logits, import to
// the parameters of their per-expert twins and export as those; swapped gate and up halves miss the
// logits, and a fused tensor of the wrong shape is an error naming it. The DeepSeek fixtures take
// part too, deepseek_v3's multi-token prediction module with them (their own tests:
// test_hf_deepseek.cpp, test_hf_mtp.cpp).
//
// Tolerance: both sides compute in fp32 (testing::matches_reference, hf_fixture.h): absolute 2e-4
// plus relative 1e-4.
#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/hf_convert.h"
#include "checkpoint/hf_model.h"
#include "checkpoint/safetensors.h"
#include "config/yaml_io.h"
#include "layers/model.h"
#include "tests/support/error_message.h"
#include "tests/unit/checkpoint/hf_fixture.h"
#include "upcycling/upcycle.h"

namespace moe {
namespace {

using testing::edited_fixture;
using testing::expect_same_tensors;
using testing::hf_fixtures;
using testing::imported_logits;
using testing::Logits;
using testing::NewTensor;
using testing::temp_dir;

class HfFixture : public ::testing::TestWithParam<std::string> {};

// The config an import makes is the one its checkpoints save: it prints and reads back unchanged.
TEST_P(HfFixture, ImportedConfigRoundTripsThroughYaml) {
  const Config config = config_from_hf(hf_fixtures() + "/" + GetParam() + "/config.json").config;
  EXPECT_EQ(parse_config(to_yaml(config), "printed"), config);
}

TEST_P(HfFixture, ImportedModelGivesTheReferenceLogits) {
  const Logits logits = imported_logits(hf_fixtures() + "/" + GetParam(), GetParam());
  EXPECT_TRUE(testing::matches_reference(logits));
}

TEST_P(HfFixture, ExportingTheImportGivesTheOriginalTensorsBitForBit) {
  const std::string source = hf_fixtures() + "/" + GetParam();
  const std::string step = hf_to_moeforge(source, temp_dir(GetParam() + "_roundtrip"));
  const std::string exported = temp_dir(GetParam() + "_exported");
  const HfImport hf = config_from_hf(source + "/config.json");
  const bool bf16 = GetParam().find("bf16") != std::string::npos;
  moeforge_to_hf(step, exported, hf.model_type, bf16 ? "bf16" : "f32", int64_t{1} << 40);
  expect_same_tensors(source, exported);
  const HfImport again = config_from_hf(exported + "/config.json");
  EXPECT_EQ(again.config.model, hf.config.model);
  EXPECT_EQ(again.config.moe, hf.config.moe);
}

// The fused fixtures (`<type>_fused`) hold the weights of `<type>` in transformers 5's fused expert
// tensors, written by transformers itself (save_original_format=False;
// tests/fixtures/hf/README.md).
class HfFusedFixture : public ::testing::TestWithParam<std::string> {};

// The parameters of the checkpoint imported from fixture `name`, by global name.
std::map<std::string, std::vector<float>> imported_parameters(const std::string& name) {
  const std::string source = hf_fixtures() + "/" + name;
  const std::string step = hf_to_moeforge(source, temp_dir(name + "_parameters"));
  const HfImport hf = config_from_hf(source + "/config.json");
  ParameterStore store(DType::f32);
  Model model(hf.config.model, hf.config.moe, store);
  store.allocate(0);
  load_checkpoint(step, {&store, false, {}}, {});
  std::map<std::string, std::vector<float>> out;
  for (const Parameter& p : store.parameters())
    out[p.name].assign(p.value.data<float>(), p.value.data<float>() + p.value.numel());
  return out;
}

TEST_P(HfFusedFixture, ImportedModelGivesTheReferenceLogits) {
  const std::string name = GetParam() + "_fused";
  const Logits logits = imported_logits(hf_fixtures() + "/" + name, name);
  EXPECT_TRUE(testing::matches_reference(logits));
}

TEST_P(HfFusedFixture, ImportsToTheParametersOfThePerExpertCheckpoint) {
  EXPECT_EQ(config_from_hf(hf_fixtures() + "/" + GetParam() + "_fused/config.json").config,
            config_from_hf(hf_fixtures() + "/" + GetParam() + "/config.json").config);
  const auto fused = imported_parameters(GetParam() + "_fused");
  const auto per_expert = imported_parameters(GetParam());
  ASSERT_EQ(fused.size(), per_expert.size());
  for (const auto& [name, values] : per_expert) {
    ASSERT_TRUE(fused.count(name)) << name;
    EXPECT_TRUE(fused.at(name) == values) << name << " differs";
  }
}

// Export writes the per-expert form: the fused import exports as the per-expert fixture, bit for
// bit.
TEST_P(HfFusedFixture, ExportsAsThePerExpertFixtureBitForBit) {
  const std::string name = GetParam() + "_fused";
  const std::string step =
      hf_to_moeforge(hf_fixtures() + "/" + name, temp_dir(name + "_roundtrip"));
  const std::string exported = temp_dir(name + "_exported");
  moeforge_to_hf(step, exported, GetParam(), "f32", int64_t{1} << 40);
  expect_same_tensors(hf_fixtures() + "/" + GetParam(), exported);
}

// gate_up_proj with each expert's up rows before its gate rows imports (nothing tells the halves
// apart) but misses the reference logits: the order of the halves is checked.
TEST_P(HfFusedFixture, SwappedGateAndUpHalvesMissTheReferenceLogits) {
  const std::string name = GetParam() + "_fused";
  const SafetensorsFile file(hf_fixtures() + "/" + name + "/model.safetensors");
  std::map<std::string, NewTensor> swapped;
  for (const SafetensorsTensor& t : file.tensors()) {
    if (!t.name.ends_with(".experts.gate_up_proj")) continue;
    std::vector<float> values(t.numel);
    file.read_f32(t, values.data());
    const int64_t half = t.numel / t.shape[0] / 2;  // one expert's gate (or up) matrix
    for (int64_t e = 0; e < t.shape[0]; ++e)
      std::swap_ranges(values.begin() + 2 * e * half, values.begin() + (2 * e + 1) * half,
                       values.begin() + (2 * e + 1) * half);
    swapped[t.name] = {t.shape, values};
  }
  ASSERT_FALSE(swapped.empty());
  const Logits logits = imported_logits(edited_fixture(name, "", "", "", swapped), name);
  EXPECT_FALSE(testing::matches_reference(logits));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfFusedFixture,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe",
                                           "deepseek_v3"));

// A fused tensor of another shape (here: down_proj transposed, gate_up_proj holding only the gates)
// is an error naming the tensor, its shape and the shape config.json implies.
TEST(HfFused, AWrongShapeIsAnErrorNamingTheTensorAndTheExpectedShape) {
  const std::string down = "model.layers.1.mlp.experts.down_proj";
  const std::string gate_up = "model.layers.1.mlp.experts.gate_up_proj";
  for (const auto& [tensor, shape, expected] :
       {std::tuple{down, std::vector<int64_t>{4, 32, 64}, std::string("[4, 64, 32]")},
        std::tuple{gate_up, std::vector<int64_t>{4, 32, 64}, std::string("[4, 64, 64]")}}) {
    SCOPED_TRACE(tensor);
    const NewTensor wrong{shape, std::vector<float>(4 * 32 * 64)};
    const std::string source = edited_fixture("qwen3_moe_fused", "", "", "", {{tensor, wrong}});
    const std::string message = testing::input_error_message(
        [&] { hf_to_moeforge(source, temp_dir("fused_wrong_shape")); });
    EXPECT_TRUE(testing::mentions(message, "'" + tensor + "' has shape [4, 32, 64]"));
    EXPECT_TRUE(testing::mentions(message, "config.json makes it " + expected));
  }
}

// A fused tensor that is absent is named as the alternative to the per-expert tensors it holds.
TEST(HfFused, AMissingFusedTensorIsNamed) {
  const std::string source = edited_fixture("qwen3_moe_fused", "", "", ".experts.down_proj");
  const std::string message =
      testing::input_error_message([&] { hf_to_moeforge(source, temp_dir("fused_missing")); });
  EXPECT_TRUE(
      testing::mentions(message, "'model.layers.1.mlp.experts.0.down_proj.weight' is missing"));
  EXPECT_TRUE(testing::mentions(message, "or the fused 'model.layers.1.mlp.experts.down_proj'"));
}

// transformers 5 writes qwen3_moe's expert count as num_local_experts (the fixture's config) and
// reads num_experts as the same key: two different counts are refused.
TEST(HfFused, DifferentNumExpertsAndNumLocalExpertsAreRefused) {
  const std::string source = edited_fixture("qwen3_moe_fused", "\"num_local_experts\": 4",
                                            "\"num_local_experts\": 4, \"num_experts\": 2", "");
  const std::string message =
      testing::input_error_message([&] { config_from_hf(source + "/config.json"); });
  EXPECT_TRUE(testing::mentions(message, "num_experts and num_local_experts differ"));
}

// The worked example of docs/interop.md on a fixture: a dense Llama imported, copy-upcycled into a
// 4-expert top-2 MoE, exported as Mixtral and imported again still computes the dense function:
// its logits are transformers' Llama logits. Also for the Llama-3.2-style fixture: the rope
// scaling and the tied embeddings survive the way.
TEST(HfWorkflow, ImportUpcycleExportKeepsTheDenseFunction) {
  for (const std::string name : {"llama", "llama3"}) {
    SCOPED_TRACE(name);
    const std::string source = hf_fixtures() + "/" + name;
    const std::string dense = hf_to_moeforge(source, temp_dir("workflow_dense"));
    Config moe = config_from_hf(source + "/config.json").config;
    moe.moe.first_k_dense = 0;
    moe.moe.num_experts = 4;
    moe.moe.top_k = 2;
    moe.moe.expert_hidden = moe.model.ffn_hidden;
    const std::string upcycled = upcycle({dense}, moe, {}, temp_dir("workflow_moe"));
    const std::string exported = temp_dir("workflow_hf");
    moeforge_to_hf(upcycled, exported, "", "f32", int64_t{1} << 40);
    const HfImport again = config_from_hf(exported + "/config.json");
    ASSERT_EQ(again.model_type, "mixtral");
    EXPECT_EQ(again.config.model.rope_scaling, moe.model.rope_scaling);
    const Logits logits = imported_logits(exported, name);
    EXPECT_TRUE(testing::matches_reference(logits));
  }
}

// transformers' Qwen2MoeConfig has qkv_bias (default true): a qwen2_moe without q/k/v biases
// imports, and exports back (its default model_type) with the key false and the same tensors.
TEST(HfQkvBias, Qwen2MoeWithoutBiasesImportsAndExportsBack) {
  const std::string source =
      edited_fixture("qwen2_moe", "\"qkv_bias\": true", "\"qkv_bias\": false", ".bias");
  const HfImport hf = config_from_hf(source + "/config.json");
  EXPECT_FALSE(hf.config.model.qkv_bias);
  const std::string step = hf_to_moeforge(source, temp_dir("qwen2_moe_no_bias"));
  const std::string exported = temp_dir("qwen2_moe_no_bias_exported");
  moeforge_to_hf(step, exported, "", "f32", int64_t{1} << 40);
  expect_same_tensors(source, exported);
  const HfImport again = config_from_hf(exported + "/config.json");
  EXPECT_EQ(again.model_type, "qwen2_moe");
  EXPECT_EQ(again.config.model, hf.config.model);
  EXPECT_EQ(again.config.moe, hf.config.moe);
}

// transformers' Qwen2Config has no qkv_bias: a qwen2's q/k/v have biases whatever config.json says.
TEST(HfQkvBias, Qwen2IgnoresTheKeyAsTransformersDoes) {
  const std::string source =
      edited_fixture("qwen2", "\"model_type\"", "\"qkv_bias\": false,\n  \"model_type\"", "");
  EXPECT_TRUE(config_from_hf(source + "/config.json").config.model.qkv_bias);
  hf_to_moeforge(source, temp_dir("qwen2_key_ignored"));
}

// The rope scaling fixtures fail with another factor: the logits move by far more than the
// tolerance (tests/fixtures/hf/summary.json: 0.09, 0.76 and 0.43 for a doubled factor).
TEST(HfRopeScaling, AnotherFactorMissesTheReferenceLogits) {
  for (const auto& [name, factor] : {std::pair{"llama3", std::string("4.0")},
                                     {"qwen3_yarn", std::string("4.0")},
                                     {"deepseek_v3_yarn", std::string("4.0")}}) {
    SCOPED_TRACE(name);
    const std::string source = edited_fixture(name, "\"factor\": " + factor, "\"factor\": 5.0", "");
    EXPECT_EQ(config_from_hf(source + "/config.json").config.model.rope_scaling.factor, 5.0);
    const Logits logits = imported_logits(source, name);
    EXPECT_FALSE(testing::matches_reference(logits));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfFixture,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3", "mixtral", "olmoe",
                                           "qwen2_moe", "qwen3_moe", "llama_bf16",
                                           "mixtral_sharded", "llama3", "qwen3_yarn", "deepseek_v3",
                                           "deepseek_v3_yarn", "deepseek_v2"));

}  // namespace
}  // namespace moe
