// bf16 mixed precision trains as well as f32: the quickstart recipe (configs/quickstart.yaml, its
// three-domain blend) on the same data and seed, in f32 and in bf16. Both validation losses go to
// the test log.
//
// - The dense variant (every layer a dense MLP), 150 steps: bf16 within 2% of f32. bf16 rounds
// activations
//   and weight copies to 8 significant bits, which moves single steps but not where 300 steps of
//   AdamW on f32 masters arrive (measured: 0.4% apart at step 80); a missing compute-copy refresh
//   (bf16 weights frozen at init), an f32 statistic computed in bf16 or a broken bf16 op misses
//   it by far.
// - The quickstart MoE itself, 300 steps: bf16 no more than 2% worse than f32. Here the two runs do
// not stay
//   together: routing decisions of near-tied experts flip early, and from then on the runs differ
//   as two seeds do; measured, bf16 ended 6% *below* f32 (2.085 against 2.216), and the
//   bf16-trained weights score the same in an f32 evaluation, so it is how the run went, not how
//   it was measured (with seed 7 the two end 0.02% apart: docs/results/precision.md). So the
//   check is one-sided: bf16 must not train worse.
#include <cstdio>
#include <filesystem>

#include <gtest/gtest.h>

#include "config/yaml_io.h"
#include "trainer/training_loop.h"

namespace moe {
namespace {

Config quickstart_for(int steps) {
  const std::string corpora = MOE_CORPORA;
  const std::string n = std::to_string(steps);
  Config c = load_config(
      std::string(MOE_SOURCE_DIR) + "/configs/quickstart.yaml",
      {"train.steps=" + n, "train.warmup_steps=30", "train.eval_interval=" + n, "log.interval=50"});
  c.data.train = corpora + "/bible_train 0.6, " + corpora + "/austen_train 0.2, " + corpora +
                 "/code_train 0.2";
  c.data.valid = corpora + "/bible_val, " + corpora + "/austen_val, " + corpora + "/code_val";
  return c;
}

struct Pair {
  double f32, bf16;
};

// The final validation loss in f32 and in bf16.
Pair train_both(Config c, const char* name) {
  c.validate();
  const TrainingSummary f32 = train_model(c, {});
  c.train.precision = Precision::bf16;
  const TrainingSummary bf16 = train_model(c, {});
  std::printf(
      "[bf16 %s] %d steps: val loss %.4f (bf16) vs %.4f (f32), %+.2f%%; %.0f vs %.0f "
      "tok/s\n",
      name, c.train.steps, bf16.val_loss, f32.val_loss, 100 * (bf16.val_loss / f32.val_loss - 1),
      bf16.tokens_per_s, f32.tokens_per_s);
  EXPECT_LT(f32.val_loss, 3.0) << "the f32 run did not train";
  return {f32.val_loss, bf16.val_loss};
}

class Bf16Quickstart : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(std::string(MOE_CORPORA) + "/code_val.idx"))
        << MOE_CORPORA << " is missing the quickstart corpora; run launch/prepare_corpora.sh";
  }
};

TEST_F(Bf16Quickstart, DenseValidationLossIsWithinTwoPercentOfF32After150Steps) {
  Config c = quickstart_for(150);
  c.moe.first_k_dense = c.model.n_layers;
  const Pair loss = train_both(c, "quickstart, dense");
  EXPECT_NEAR(loss.bf16, loss.f32, 0.02 * loss.f32);
}

TEST_F(Bf16Quickstart, MoeValidationLossIsNoMoreThanTwoPercentAboveF32After300Steps) {
  const Pair loss = train_both(quickstart_for(300), "quickstart");
  EXPECT_LE(loss.bf16, 1.02 * loss.f32);
}

}  // namespace
}  // namespace moe
