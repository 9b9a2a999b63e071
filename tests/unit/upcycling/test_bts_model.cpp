// The BTS model on one rank: it starts as the seed (logits), its stitch gradients match finite
// differences in fp64 through frozen decoders and several stitches of both kinds, the decoders get
// no gradients and do not change, and bad configurations are clear errors.
#include <filesystem>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "config/yaml_io.h"
#include "kernels/ops.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random_parameters.h"
#include "tests/support/tolerance.h"
#include "tests/support/upcycle_models.h"
#include "trainer/optimizer.h"
#include "upcycling/bts_model.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// Four layers, so that stitching after every layer alternates hub_into_experts and
// experts_into_hub twice and gradients cross frozen layers between stitches.
Config decoder_config() {
  Config c = testing::small_dense_config(16, 2);
  c.model.n_layers = 4;
  c.moe.first_k_dense = 4;
  return c;
}

// Saves a decoder initialized from `seed` under root/name and returns the run directory.
std::string save_decoder(const fs::path& root, const std::string& name, uint64_t seed, DType dtype,
                         const Config& config = decoder_config()) {
  ParameterStore store(dtype);
  Model model(config.model, config.moe, store);
  store.allocate(seed);
  CheckpointMeta meta;
  meta.config_yaml = to_yaml(config);
  const std::string dir = (root / name).string();
  save_checkpoint(dir, {&store, false, {}}, meta, {});
  return dir;
}

class BtsModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("bts_model_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  Config bts_config(DType dtype, int stitch_every = 1) {
    Config c = decoder_config();
    c.model.kind = ModelKind::bts;
    c.bts.seed = save_decoder(root_, "seed", 1, dtype);
    c.bts.experts = {save_decoder(root_, "code", 2, dtype), save_decoder(root_, "bible", 3, dtype)};
    c.bts.stitch_every = stitch_every;
    return c;
  }

  fs::path root_;
};

const std::vector<int32_t> kIds = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};

TEST_F(BtsModelTest, StitchedLogitsEqualTheSeedsBeforeTraining) {
  for (int stitch_every : {1, 2, 4}) {
    const Config config = bts_config(DType::f32, stitch_every);
    ParameterStore stitches(DType::f32);
    BtsModel bts(config, stitches, {});
    stitches.allocate(0);
    ParameterStore seed_store(DType::f32);
    const Config seed_config = decoder_config();  // Model keeps a reference
    Model seed(seed_config.model, seed_config.moe, seed_store);
    seed_store.allocate(0);
    load_checkpoint(config.bts.seed + "/step_00000000", {&seed_store, false, {}}, {});
    Stream stream;
    const Tensor inputs = Tensor::from_vector<int32_t>({2, 8}, kIds);
    const ModelOutput want = seed.forward(inputs, inputs, false, stream);
    const ModelOutput got = bts.forward(inputs, inputs, false, stream);
    EXPECT_TRUE(testing::all_close(got.logits, want.logits, 0, 0))
        << "stitch_every " << stitch_every;
    EXPECT_EQ(got.lm_loss, want.lm_loss);
    fs::remove_all(root_);
  }
}

TEST_F(BtsModelTest, StitchGradientsMatchFiniteDifferences) {
  const Config config = bts_config(DType::f64);
  ParameterStore stitches(DType::f64);
  BtsModel bts(config, stitches, {});
  stitches.allocate(0);
  ASSERT_EQ(bts.num_stitches(), 4);
  const std::vector<testing::GradInput> inputs =
      testing::randomize_parameters(stitches, 10, -0.5, 0.5);
  Stream stream;
  const Tensor tokens = Tensor::from_vector<int32_t>({2, 8}, kIds);
  auto loss = [&] { return bts.forward(tokens, tokens, false, stream).lm_loss; };
  stitches.zero_grads(stream);
  bts.forward(tokens, tokens, true, stream);
  bts.backward(1.0, stream);
  EXPECT_TRUE(testing::gradients_match(loss, inputs));
}

TEST_F(BtsModelTest, DecodersGetNoGradientsAndDoNotChange) {
  const Config config = bts_config(DType::f32);
  ParameterStore stitches(DType::f32);
  BtsModel bts(config, stitches, {});
  stitches.allocate(0);
  std::vector<Tensor> before;
  for (int t = 0; t < 3; ++t) {
    for (const Parameter& p : bts.decoder_store(t).parameters()) {
      EXPECT_FALSE(p.grad.defined()) << p.name;
      before.push_back(p.value.clone());
    }
  }
  AdamW optimizer(stitches, config.train, {}, false);
  Stream stream;
  const Tensor tokens = Tensor::from_vector<int32_t>({2, 8}, kIds);
  for (int step = 0; step < 3; ++step) {
    stitches.zero_grads(stream);
    bts.forward(tokens, tokens, true, stream);
    bts.backward(1.0, stream);
    EXPECT_GT(ops::sum_of_squares(stitches.grads(), stream), 0.0);
    optimizer.step(1e-2, stream);
  }
  size_t i = 0;
  for (int t = 0; t < 3; ++t)
    for (const Parameter& p : bts.decoder_store(t).parameters())
      EXPECT_TRUE(testing::all_close(p.value, before[i++], 0, 0)) << p.name;
}

TEST_F(BtsModelTest, BadConfigurationsAreClearErrors) {
  Config config = bts_config(DType::f32);
  auto error = [&](const Config& c) {
    ParameterStore stitches(DType::f32);
    return testing::input_error_message([&] { BtsModel bts(c, stitches, {}); });
  };
  Config c = config;
  c.bts.stitch_every = 3;
  EXPECT_TRUE(
      testing::mentions(error(c), "bts.stitch_every = 3 must divide the decoders' n_layers = 4"));
  c = config;
  c.bts.drop = {"math"};
  EXPECT_TRUE(testing::mentions(
      error(c), "bts.drop names 'math', which is not one of bts.experts' names [code, bible]"));
  c.bts.drop = {"code", "bible"};
  EXPECT_TRUE(testing::mentions(error(c), "bts.drop leaves no expert"));
  c = config;
  c.bts.experts.push_back(config.bts.experts[0] + "/step_00000000");
  EXPECT_TRUE(testing::mentions(error(c), "two of bts.experts are named 'code'"));
  c = config;
  fs::create_directories(root_ / "empty");
  c.bts.seed = (root_ / "empty").string();
  EXPECT_TRUE(testing::mentions(error(c), "holds no committed checkpoint"));
  c = config;
  Config wide = decoder_config();
  wide.model.d_model = 32;
  c.bts.experts = {save_decoder(root_, "wide", 4, DType::f32, wide)};
  EXPECT_TRUE(testing::mentions(error(c), "expert 'wide'"));
  EXPECT_TRUE(testing::mentions(error(c), "BTS needs branches of the seed"));
}

TEST(BtsNames, ExpertsAreNamedByTheirRunDirectory) {
  EXPECT_EQ(bts_decoder_name("runs/bts/code"), "code");
  EXPECT_EQ(bts_decoder_name("runs/bts/code/"), "code");
  EXPECT_EQ(bts_decoder_name("runs/bts/code/step_00000300"), "code");
  BtsConfig bts;
  bts.experts = {"a/bible", "a/austen/step_00000001", "a/code"};
  bts.drop = {"austen"};
  EXPECT_EQ(bts_expert_names(bts), (std::vector<std::string>{"bible", "code"}));
}

TEST(BtsNames, ChangedExpertsSelectOnlyTheirStitchParameters) {
  BtsConfig saved, now;
  saved.experts = {"r/bible", "r/austen", "r/code"};
  now.experts = {"r/bible", "r/code", "r/math"};
  EXPECT_FALSE(bts_changed_parameters(saved, saved));
  const auto changed = bts_changed_parameters(saved, now);
  ASSERT_TRUE(changed);
  EXPECT_TRUE(changed("stitch.0.austen.gate.weight"));
  EXPECT_TRUE(changed("stitch.3.math.proj.weight"));
  EXPECT_FALSE(changed("stitch.0.bible.gate.weight"));
  EXPECT_FALSE(changed("stitch.1.hub.gate.bias"));
  EXPECT_FALSE(changed("embedding.weight"));
}

}  // namespace
}  // namespace moe
