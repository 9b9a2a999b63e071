// Multi-token prediction's targets: module k at position i predicts the token k + 1 ahead, the
// target of position i + k, so the target of position j reaches the modules k <= j only; a module
// without any target has no loss, and the mean runs over the modules. Parameters are initialized
// by name, so models one and two modules deep share their main weights and module 1. The
// gradients are checked with the whole model's (test_model_gradients.cpp).
#include <gtest/gtest.h>

#include "layers/model.h"
#include "tests/unit/layers/tiny_config.h"

namespace moe {
namespace {

// The losses of a model `depth` modules deep when only position j of each sequence has a target.
ModelOutput with_one_target(int depth, int64_t j) {
  Config c = testing::tiny_moe_config();
  c.model.mtp_depth = depth;
  ParameterStore store(DType::f64);
  Model model(c.model, c.moe, store);
  store.allocate(3);
  const testing::TinyBatch batch = testing::tiny_batch(c);
  Tensor targets = batch.targets.clone();
  for (int64_t n = 0; n < targets.numel(); ++n)
    targets.data<int32_t>()[n] = n % c.data.seq_len == j ? (3 * static_cast<int32_t>(n) + 1) % 11
                                                         : LanguageModel::ignore_index;
  Stream stream;
  return model.forward(batch.inputs, targets, false, stream);
}

TEST(MultiTokenPrediction, ModuleKPredictsTheTargetKPositionsAhead) {
  // Position 0's target reaches no module.
  const ModelOutput one0 = with_one_target(1, 0), two0 = with_one_target(2, 0);
  EXPECT_GT(one0.lm_loss, 0);
  EXPECT_EQ(one0.mtp_loss, 0);
  EXPECT_EQ(two0.mtp_loss, 0);
  // Position 1's reaches module 1 alone: the two-module mean is half the one-module loss.
  const ModelOutput one1 = with_one_target(1, 1), two1 = with_one_target(2, 1);
  EXPECT_GT(one1.mtp_loss, 0);
  EXPECT_EQ(two1.lm_loss, one1.lm_loss);
  EXPECT_NEAR(two1.mtp_loss, one1.mtp_loss / 2, 1e-12);
  // Position 2's reaches module 2 as well, which adds its own cross-entropy.
  const ModelOutput one2 = with_one_target(1, 2), two2 = with_one_target(2, 2);
  EXPECT_GT(2 * two2.mtp_loss - one2.mtp_loss, 0.1);
}

}  // namespace
}  // namespace moe
