// RoPE in config.json (checkpoint/hf_rope.h): transformers' own tables (rope_tables.json, made by
// tests/fixtures/hf/rope_tables.py with transformers' rope init functions) come out of the importer
// and layers/rope_frequencies; transformers 4's rope_scaling and 5's rope_parameters read alike;
// what export writes imports back unchanged; unimplemented types and missing numbers are refused by
// name.
//
// Tolerance: transformers computes the tables in f32 (a few roundings, relative 1e-6), MoEForge in
// f64; the attention factor is a Python double on both sides.
#include <string>

#include <gtest/gtest.h>

#include "checkpoint/hf_rope.h"
#include "layers/rope_frequencies.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

const std::string kFixtures = MOE_HF_FIXTURES;

ModelConfig import(const std::string& json) {
  const JsonValue document = parse_json(json, "config.json");
  const JsonNode root(document, "config.json", "");
  ModelConfig m;
  m.max_seq_len = 256;
  rope_from_hf(root, m);
  return m;
}

TEST(HfRope, TransformersTablesComeOutOfTheImport) {
  const std::string path = kFixtures + "/rope_tables.json";
  const JsonValue document = read_json_file(path);
  const JsonNode cases = JsonNode(document, path, "").at("cases");
  ASSERT_EQ(cases.as_array().size(), 7u);
  for (size_t i = 0; i < cases.as_array().size(); ++i) {
    const JsonNode c = cases.element(i);
    SCOPED_TRACE(c.at("name").as_string());
    const JsonNode config = c.at("config");
    ModelConfig m;
    m.n_heads = static_cast<int>(config.at("num_attention_heads").as_int());
    m.d_model = static_cast<int>(config.at("hidden_size").as_int());
    m.head_dim = static_cast<int>(config.at("head_dim").as_int());
    m.max_seq_len = static_cast<int>(config.at("max_position_embeddings").as_int());
    rope_from_hf(config, m);
    const RopeFrequencies f = rope_frequencies(m);
    const JsonNode expected = c.at("inv_freq");
    ASSERT_EQ(f.inv_freq.size(), expected.as_array().size());
    for (size_t j = 0; j < f.inv_freq.size(); ++j) {
      const double want = expected.element(j).as_number();
      EXPECT_NEAR(f.inv_freq[j], want, 1e-6 * want) << "pair " << j;
    }
    EXPECT_NEAR(f.attention_factor, c.at("attention_factor").as_number(), 1e-12);
  }
}

TEST(HfRope, RopeScalingAndRopeParametersReadAlike) {
  const ModelConfig v4 = import(
      R"({"rope_theta": 500000.0, "rope_scaling": {"type": "llama3", "factor": 8.0,
          "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})");
  const ModelConfig v5 = import(
      R"({"rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0,
          "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})");
  EXPECT_EQ(v4, v5);
  EXPECT_EQ(v5.rope_theta, 500000.0);
  EXPECT_EQ(v5.rope_scaling.type, RopeScalingType::llama3);
  EXPECT_EQ(v5.rope_scaling.original_max_seq_len, 64);
  EXPECT_EQ(import(R"({"rope_parameters": {"rope_theta": 5.0, "rope_type": "default"}})"),
            import(R"({"rope_theta": 5.0, "rope_scaling": null})"));
}

// transformers' defaults: the original context is max_position_embeddings, a yarn factor of null
// is max_position_embeddings / original, and beta 0 falls back to 32 and 1.
TEST(HfRope, ImportResolvesTransformersDefaults) {
  const ModelConfig yarn = import(
      R"({"rope_scaling": {"rope_type": "yarn", "original_max_position_embeddings": 64,
          "beta_fast": 0}})");
  EXPECT_EQ(yarn.rope_scaling.factor, 4.0);
  EXPECT_EQ(yarn.rope_scaling.beta_fast, 32.0);
  EXPECT_EQ(yarn.rope_scaling.beta_slow, 1.0);
  const ModelConfig llama3 = import(
      R"({"rope_scaling": {"rope_type": "llama3", "factor": 2, "low_freq_factor": 1,
          "high_freq_factor": 2}})");
  EXPECT_EQ(llama3.rope_scaling.original_max_seq_len, 256);
}

TEST(HfRope, ExportImportsBackUnchanged) {
  std::vector<RopeScaling> scalings = {
      {},
      {.type = RopeScalingType::linear, .factor = 2.5},
      {.type = RopeScalingType::llama3,
       .factor = 8,
       .original_max_seq_len = 64,
       .low_freq_factor = 1,
       .high_freq_factor = 4},
      {.type = RopeScalingType::yarn, .factor = 4, .original_max_seq_len = 64},
      {.type = RopeScalingType::yarn,
       .factor = 40,
       .original_max_seq_len = 64,
       .beta_fast = 16,
       .beta_slow = 2,
       .mscale = 1,
       .mscale_all_dim = 0.8,
       .attention_factor = 1.25}};
  for (const RopeScaling& scaling : scalings) {
    SCOPED_TRACE(word_of(scaling.type));
    ModelConfig m;
    m.max_seq_len = 256;
    m.rope_theta = 123456.5;
    m.rope_scaling = scaling;
    std::string members = rope_to_hf(m);
    members.resize(members.size() - 2);  // the last ",\n"
    EXPECT_EQ(import("{\n" + members + "\n}"), m);
  }
}

TEST(HfRope, RefusesWhatItDoesNotImplementByName) {
  std::string message =
      testing::input_error_message([] { import(R"({"rope_scaling": {"type": "dynamic"}})"); });
  EXPECT_NE(message.find("rope_scaling has rope type 'dynamic', which MoEForge does not implement "
                         "(implemented: default, linear, llama3, yarn)"),
            std::string::npos)
      << message;
  message = testing::input_error_message(
      [] { import(R"({"rope_parameters": {"rope_type": "longrope", "factor": 2}})"); });
  EXPECT_NE(message.find("rope_parameters has rope type 'longrope'"), std::string::npos) << message;
  message = testing::input_error_message([] {
    import(R"({"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1}})");
  });
  EXPECT_NE(message.find("rope_scaling has rope type 'llama3' but no high_freq_factor"),
            std::string::npos)
      << message;
  message =
      testing::input_error_message([] { import(R"({"rope_scaling": {"rope_type": "linear"}})"); });
  EXPECT_NE(message.find("but no factor"), std::string::npos) << message;
  message = testing::input_error_message([] {
    import(R"({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}})");
  });
  EXPECT_NE(message.find("partial_rotary_factor"), std::string::npos) << message;
  message = testing::input_error_message(
      [] { import(R"({"rope_scaling": {"rope_type": "yarn", "factor": 4, "truncate": false}})"); });
  EXPECT_NE(message.find("truncate false"), std::string::npos) << message;
  message = testing::input_error_message(
      [] { import(R"({"rope_parameters": {"full_attention": {"rope_type": "default"}}})"); });
  EXPECT_NE(message.find("per layer type ('full_attention')"), std::string::npos) << message;
}

}  // namespace
}  // namespace moe
