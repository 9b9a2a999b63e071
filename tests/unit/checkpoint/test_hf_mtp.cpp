// DeepSeek-V3's multi-token prediction modules through moe-convert (checkpoint/hf_model.h) on the
// deepseek_v3 fixture, whose file holds one module as DeepSeek's checkpoints do (layer 2 of a
// 2-layer model: a full MoE block, enorm, hnorm, eh_proj, shared_head.norm and copies of the
// embedding and the LM head), scored by transformers' MtpModel (tests/fixtures/hf/README.md). Its
// bit-exact export is in test_hf_interop.cpp with the other fixtures; here: the depth read and
// written, the names of DeepSeek's file, refusals, a missing tensor, a copy that differs, a file
// without the module, and the imported model's MTP loss against transformers'.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/hf_convert.h"
#include "checkpoint/hf_model.h"
#include "checkpoint/safetensors.h"
#include "config/yaml_io.h"
#include "tests/support/error_message.h"
#include "tests/unit/checkpoint/hf_fixture.h"

namespace moe {
namespace {

using testing::edited_fixture;
using testing::hf_fixtures;
using testing::imported_mtp_loss;
using testing::MtpLoss;
using testing::NewTensor;
using testing::temp_dir;

// Both sides compute in fp32 and differ in summation order only: the mean cross-entropy (5.31)
// agrees to a few float roundings (1e-7 here; one f32 step at 5.3 is 4.8e-7), and 1e-5 leaves room
// for another BLAS. A swapped or missing tensor moves it by far more (eh_proj's halves swapped:
// 0.69; summary.json: the MTP logits move by 0.66 to 7.9 under the fixture's probes).
constexpr double kLossTolerance = 1e-5;

::testing::AssertionResult matches_reference(const MtpLoss& loss) {
  if (std::abs(loss.got - loss.expected) <= kLossTolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << std::setprecision(10) << "mtp_loss " << loss.got << ", transformers " << loss.expected;
}

// Tensor `name` of fixture `fixture`, its values read as f32 and changed by `change`.
template <class Change>
NewTensor changed(const std::string& fixture, const std::string& name, Change change) {
  const SafetensorsFile file(hf_fixtures() + "/" + fixture + "/model.safetensors");
  const SafetensorsTensor& t = file.at(name);
  NewTensor out{t.shape, std::vector<float>(t.numel)};
  file.read_f32(t, out.values.data());
  change(out.values);
  return out;
}

Config fixture_config(const std::string& name) {
  return config_from_hf(hf_fixtures() + "/" + name + "/config.json").config;
}

// num_nextn_predict_layers is model.mtp_depth, and export writes it back.
TEST(HfMtp, NumNextnPredictLayersIsTheDepthBothWays) {
  const Config v3 = fixture_config("deepseek_v3");
  EXPECT_EQ(v3.model.mtp_depth, 1);
  EXPECT_EQ(v3.model.mtp_loss_weight, ModelConfig{}.mtp_loss_weight);  // no such HF key
  EXPECT_EQ(fixture_config("deepseek_v3_yarn").model.mtp_depth, 0);
  Config deeper = v3;
  deeper.model.mtp_depth = 3;
  EXPECT_TRUE(testing::mentions(hf_config_json(deeper, "deepseek_v3", "float32"),
                                "\"num_nextn_predict_layers\": 3"));
}

// The names hf_tensors() gives a DeepSeek-V3 model with one module are those of DeepSeek's file,
// every one of them, with the module's own tensors, its block and the copies placed as DeepSeek
// numbers them (layer n_layers).
TEST(HfMtp, TheModuleIsLayerNLayersOfDeepSeeksFile) {
  const Config config = fixture_config("deepseek_v3");
  const std::vector<HfTensor> list = hf_tensors(config, "deepseek_v3");
  std::set<std::string> listed;
  for (const HfTensor& t : list) listed.insert(t.hf_name);
  std::set<std::string> in_file;
  const SafetensorsFile file(hf_fixtures() + "/deepseek_v3/model.safetensors");
  for (const SafetensorsTensor& t : file.tensors()) in_file.insert(t.name);
  EXPECT_EQ(listed, in_file);
  EXPECT_EQ(listed.size(), list.size());

  auto find = [&](const std::string& hf_name) {
    for (const HfTensor& t : list)
      if (t.hf_name == hf_name) return t;
    ADD_FAILURE() << hf_name << " is not listed";
    return HfTensor{};
  };
  EXPECT_EQ(find("model.layers.2.enorm.weight").parameter, "layers.2.enorm.weight");
  EXPECT_EQ(find("model.layers.2.hnorm.weight").parameter, "layers.2.hnorm.weight");
  EXPECT_EQ(find("model.layers.2.eh_proj.weight").parameter, "layers.2.eh_proj.weight");
  EXPECT_EQ(find("model.layers.2.shared_head.norm.weight").parameter, "layers.2.final_norm.weight");
  EXPECT_EQ(find("model.layers.2.input_layernorm.weight").parameter, "layers.2.attn_norm.weight");
  const HfTensor expert = find("model.layers.2.mlp.experts.5.down_proj.weight");
  EXPECT_EQ(expert.parameter, "layers.2.moe.experts.w_down");
  EXPECT_EQ(expert.expert, 5);
  const HfTensor bias = find("model.layers.2.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(bias.parameter, "layers.2.moe.router.expert_bias");
  EXPECT_TRUE(bias.keep_f32);
  // the module's RoPE rows are ordered as a main layer's
  EXPECT_EQ(find("model.layers.2.self_attn.kv_a_proj_with_mqa.weight").rope,
            find("model.layers.1.self_attn.kv_a_proj_with_mqa.weight").rope);
  EXPECT_EQ(find("model.layers.2.self_attn.q_b_proj.weight").rope,
            find("model.layers.1.self_attn.q_b_proj.weight").rope);
  const HfTensor embedding = find("model.layers.2.embed_tokens.weight");
  EXPECT_EQ(embedding.parameter, "embedding.weight");
  EXPECT_EQ(embedding.copy_of, "model.embed_tokens.weight");
  const HfTensor head = find("model.layers.2.shared_head.head.weight");
  EXPECT_EQ(head.parameter, "lm_head.weight");
  EXPECT_EQ(head.copy_of, "lm_head.weight");
  for (const HfTensor& t : list) {
    if (!t.hf_name.starts_with("model.layers.2.")) {
      EXPECT_TRUE(t.copy_of.empty()) << t.hf_name;
    }
  }
}

// Only deepseek_v3 has multi-token prediction: exporting a model with modules as another type
// is an error naming model.mtp_depth.
TEST(HfMtp, ExportRefusesModulesForOtherTypes) {
  Config v2 = fixture_config("deepseek_v2");
  v2.model.mtp_depth = 1;
  Config mixtral = fixture_config("mixtral");
  mixtral.model.mtp_depth = 2;
  for (const auto& [config, type] :
       {std::pair{v2, std::string("deepseek_v2")}, std::pair{mixtral, std::string("mixtral")}}) {
    SCOPED_TRACE(type);
    const std::string message =
        testing::input_error_message([&] { hf_config_json(config, type, "float32"); });
    EXPECT_TRUE(
        testing::mentions(message, "model.mtp_depth = " + std::to_string(config.model.mtp_depth)));
    EXPECT_TRUE(testing::mentions(message, "exists only in deepseek_v3"));
  }
}

// Without num_nextn_predict_layers the module's tensors are unknown ones.
TEST(HfMtp, WithoutTheKeyTheModuleIsUnknown) {
  const std::string source = edited_fixture("deepseek_v3", "\"num_nextn_predict_layers\": 1",
                                            "\"num_nextn_predict_layers\": 0", "");
  const std::string message =
      testing::input_error_message([&] { hf_to_moeforge(source, temp_dir("mtp_no_key")); });
  EXPECT_TRUE(testing::mentions(message, "not consumed, first 'model.layers.2."));
}

// transformers saves a DeepSeek-V3 without the layers it does not load, num_nextn_predict_layers
// kept: such a file imports without multi-token prediction and says so.
TEST(HfMtp, AFileWithoutTheModuleImportsWithoutIt) {
  const std::string source = edited_fixture("deepseek_v3_yarn", "\"num_nextn_predict_layers\": 0",
                                            "\"num_nextn_predict_layers\": 1", "");
  const std::string output = temp_dir("mtp_absent");
  ::testing::internal::CaptureStdout();
  hf_to_moeforge(source, output);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(testing::mentions(out, "no tensor of model.layers.2.* is in the files"));
  EXPECT_TRUE(testing::mentions(out, "imported without multi-token prediction"));
  EXPECT_EQ(load_config(output + "/config.yaml").model.mtp_depth, 0);
}

// The imported module gives transformers' multi-token prediction loss (MtpModel over the main
// model's final-normed output; tests/fixtures/hf/README.md), from the per-expert file and from the
// fused one.
TEST(HfMtp, TheImportedModelGivesTransformersMtpLoss) {
  for (const std::string name : {"deepseek_v3", "deepseek_v3_fused"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(matches_reference(imported_mtp_loss(hf_fixtures() + "/" + name, name)));
  }
}

// eh_proj with its halves exchanged (the hidden states' columns first, as some other checkpoints
// order them) imports, but misses the reference: the order is checked.
TEST(HfMtp, SwappedEhProjHalvesMissTheReference) {
  const std::string name = "model.layers.2.eh_proj.weight";
  const NewTensor swapped = changed("deepseek_v3", name, [](std::vector<float>& w) {
    for (size_t row = 0; row < w.size(); row += 128)
      std::swap_ranges(w.begin() + row, w.begin() + row + 64, w.begin() + row + 64);
  });
  const std::string source = edited_fixture("deepseek_v3", "", "", "", {{name, swapped}});
  EXPECT_FALSE(matches_reference(imported_mtp_loss(source, "deepseek_v3")));
}

// A tensor of the module that is missing, its own or its block's, is an error naming it.
TEST(HfMtp, AMissingModuleTensorIsAnErrorNamingIt) {
  for (const std::string name :
       {"model.layers.2.hnorm.weight", "model.layers.2.shared_head.norm.weight",
        "model.layers.2.mlp.experts.3.up_proj.weight"}) {
    SCOPED_TRACE(name);
    const std::string source = edited_fixture("deepseek_v3", "", "", name);
    const std::string message =
        testing::input_error_message([&] { hf_to_moeforge(source, temp_dir("mtp_missing")); });
    EXPECT_TRUE(testing::mentions(message, "tensor '" + name + "' is missing"));
  }
}

// The module's copies of the embedding and the LM head must equal the originals bit for bit
// (MoEForge keeps one): one value one float step away is an error naming both.
TEST(HfMtp, ACopyThatDiffersIsAnErrorNamingIt) {
  for (const auto& [copy, original] :
       {std::pair{std::string("model.layers.2.embed_tokens.weight"),
                  std::string("model.embed_tokens.weight")},
        std::pair{std::string("model.layers.2.shared_head.head.weight"),
                  std::string("lm_head.weight")}}) {
    SCOPED_TRACE(copy);
    const NewTensor nudged = changed(
        "deepseek_v3", copy, [](std::vector<float>& w) { w[77] = std::nextafter(w[77], 1.0f); });
    const std::string source = edited_fixture("deepseek_v3", "", "", "", {{copy, nudged}});
    const std::string message =
        testing::input_error_message([&] { hf_to_moeforge(source, temp_dir("mtp_copy")); });
    EXPECT_TRUE(testing::mentions(message, "'" + copy + "' differs from '" + original + "'"));
  }
}

// A file without the copies (transformers does not need them) imports; export writes them again,
// as DeepSeek's checkpoints hold them: the original file bit for bit.
TEST(HfMtp, AbsentCopiesImportAndExportWritesThem) {
  for (const std::string copy :
       {"model.layers.2.embed_tokens.weight", "model.layers.2.shared_head.head.weight"}) {
    SCOPED_TRACE(copy);
    const std::string source = edited_fixture("deepseek_v3", "", "", copy);
    const std::string step = hf_to_moeforge(source, temp_dir("mtp_no_copy"));
    const std::string exported = temp_dir("mtp_no_copy_exported");
    moeforge_to_hf(step, exported, "deepseek_v3", "f32", int64_t{1} << 40);
    testing::expect_same_tensors(hf_fixtures() + "/deepseek_v3", exported);
  }
}

}  // namespace
}  // namespace moe
