// AdamW over the parameter store: weight decay reaches only the parameters declared with it,
// clipping scales every gradient by one factor, a step matches the AdamW formula, and a
// non-finite gradient norm changes nothing.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "trainer/optimizer.h"

namespace moe {
namespace {

struct Fixture {
  ParameterStore store{DType::f64};
  Parameter& decayed = store.add("w", {3}, Init::ones, 0.0, true);
  Parameter& exempt = store.add("norm", {2}, Init::ones, 0.0, false);
  TrainConfig train;
  Fixture() {
    train.weight_decay = 0.5;
    train.grad_clip = 0.0;
    store.allocate(1);
  }
};

TEST(AdamW, WeightDecayOnlyWhereDeclared) {
  Fixture f;
  AdamW adamw(f.store, f.train);
  Stream stream;
  adamw.step(0.1, stream);  // zero gradients: only the decay moves anything
  // lr and the decay reach the kernel as floats, hence 1e-8.
  for (double v : f.decayed.value.to_vector<double>()) EXPECT_NEAR(v, 1.0 - 0.1 * 0.5, 1e-8);
  for (double v : f.exempt.value.to_vector<double>()) EXPECT_EQ(v, 1.0);
}

TEST(AdamW, FirstStepMovesEachWeightByLrTimesTheGradientSign) {
  Fixture f;
  f.train.weight_decay = 0;
  AdamW adamw(f.store, f.train);
  Stream stream;
  const std::vector<double> grads = {0.3, -2.0, 1e-3, 4.0, -0.5};
  std::copy(grads.begin(), grads.end(), f.store.grads().data<double>());
  const double norm = adamw.step(0.01, stream);
  double expected_norm = 0;
  for (double g : grads) expected_norm += g * g;
  EXPECT_DOUBLE_EQ(norm, std::sqrt(expected_norm));
  // After one step the bias-corrected moments are g and g^2: the update is lr * g / (|g| + eps).
  const std::vector<double> values = f.store.values().to_vector<double>();
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_NEAR(values[i], 1.0 - 0.01 * grads[i] / (std::abs(grads[i]) + f.train.eps), 1e-9) << i;
}

TEST(AdamW, ClippingScalesAllGradientsToTheLimit) {
  Fixture f;
  f.train.grad_clip = 1.0;
  AdamW adamw(f.store, f.train);
  Stream stream;
  const std::vector<double> grads = {3, 0, 0, 4, 0};  // norm 5
  std::copy(grads.begin(), grads.end(), f.store.grads().data<double>());
  EXPECT_DOUBLE_EQ(adamw.step(0.01, stream), 5.0);
  const std::vector<double> clipped = f.store.grads().to_vector<double>();
  EXPECT_NEAR(clipped[0], 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(clipped[3], 4.0 / 5.0, 1e-6);
}

TEST(AdamW, ANonFiniteGradientNormSkipsTheUpdate) {
  Fixture f;
  AdamW adamw(f.store, f.train);
  Stream stream;
  std::vector<double> grads = {0.3, -2.0, 1e-3, 4.0, -0.5};
  std::copy(grads.begin(), grads.end(), f.store.grads().data<double>());
  adamw.step(0.01, stream);
  const std::vector<double> before = f.store.values().to_vector<double>();
  const std::vector<MomentRun> runs = adamw.moment_runs();
  const std::vector<double> m_before = runs[0].exp_avg.to_vector<double>();
  grads[1] = INFINITY;
  std::copy(grads.begin(), grads.end(), f.store.grads().data<double>());
  EXPECT_FALSE(std::isfinite(adamw.step(0.01, stream)));
  EXPECT_EQ(f.store.values().to_vector<double>(), before);
  EXPECT_EQ(runs[0].exp_avg.to_vector<double>(), m_before);
  EXPECT_EQ(adamw.steps_taken(), 1);
}

}  // namespace
}  // namespace moe
