// Learning-rate schedules: warmup start and end, the landmarks of each decay (cosine midpoint, end
// at min_lr, wsd's stable region and its linear decay), monotonic decay after warmup, no warmup,
// steps past the end, and the errors.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/support/error_message.h"
#include "trainer/lr_schedule.h"

namespace moe {
namespace {

TrainConfig schedule(const std::string& name, int steps = 120, int warmup = 20) {
  TrainConfig t;
  EXPECT_TRUE(parse_word(name, t.schedule)) << name;
  t.steps = steps;
  t.warmup_steps = warmup;
  t.lr = 1e-3;
  t.min_lr = 1e-4;
  t.decay_fraction = 0.25;
  return t;
}

const char* const kAllSchedules[] = {"cosine", "linear", "constant", "wsd"};

TEST(LearningRate, WarmupIsLinearFromNearZeroToThePeak) {
  for (const char* name : kAllSchedules) {
    SCOPED_TRACE(name);
    const TrainConfig t = schedule(name);
    EXPECT_DOUBLE_EQ(learning_rate(t, 0), 1e-3 / 20);
    EXPECT_DOUBLE_EQ(learning_rate(t, 9), 1e-3 * 10 / 20);
    EXPECT_DOUBLE_EQ(learning_rate(t, 19), 1e-3);  // the last warmup step runs at the peak
    EXPECT_DOUBLE_EQ(learning_rate(t, 20), 1e-3);  // the decay starts from the peak
    for (int64_t s = 1; s < 20; ++s) {
      EXPECT_NEAR(learning_rate(t, s) - learning_rate(t, s - 1), 1e-3 / 20, 1e-15);
    }
  }
}

TEST(LearningRate, CosineMidpointAndEnd) {
  const TrainConfig t = schedule("cosine");
  EXPECT_DOUBLE_EQ(learning_rate(t, 70), (1e-3 + 1e-4) / 2);  // halfway from step 20 to 120
  // A quarter of the way: min + (lr - min) * (1 + cos(pi / 4)) / 2.
  EXPECT_DOUBLE_EQ(learning_rate(t, 45), 1e-4 + 9e-4 * (1 + std::sqrt(0.5)) / 2);
  EXPECT_DOUBLE_EQ(learning_rate(t, 120), 1e-4);
  EXPECT_GT(learning_rate(t, 119), 1e-4);  // the last update is still above min_lr
  EXPECT_LT(learning_rate(t, 119), 1e-4 + 1e-6);
}

TEST(LearningRate, LinearDecay) {
  const TrainConfig t = schedule("linear");
  EXPECT_DOUBLE_EQ(learning_rate(t, 70), (1e-3 + 1e-4) / 2);
  EXPECT_DOUBLE_EQ(learning_rate(t, 95), 1e-3 - 9e-4 * 0.75);
  EXPECT_DOUBLE_EQ(learning_rate(t, 120), 1e-4);
}

TEST(LearningRate, ConstantKeepsThePeak) {
  const TrainConfig t = schedule("constant");
  for (int64_t s : {20, 70, 119, 120, 500}) EXPECT_DOUBLE_EQ(learning_rate(t, s), 1e-3);
}

TEST(LearningRate, WsdIsStableThenDecaysLinearlyOverTheLastFraction) {
  const TrainConfig t = schedule("wsd");  // 120 steps, the last 25% (30 steps) decay
  for (int64_t s = 20; s <= 90; ++s) EXPECT_DOUBLE_EQ(learning_rate(t, s), 1e-3) << "step " << s;
  EXPECT_LT(learning_rate(t, 91), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(t, 105), (1e-3 + 1e-4) / 2);
  EXPECT_DOUBLE_EQ(learning_rate(t, 120), 1e-4);
  for (int64_t s = 92; s <= 120; ++s) {
    EXPECT_NEAR(learning_rate(t, s - 1) - learning_rate(t, s), 9e-4 / 30, 1e-15) << "step " << s;
  }
}

TEST(LearningRate, WsdDecayNeverStartsBeforeWarmupEnds) {
  TrainConfig t = schedule("wsd", 100, 40);
  t.decay_fraction = 0.9;  // would start at step 10, inside warmup
  EXPECT_DOUBLE_EQ(learning_rate(t, 39), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(t, 40), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(t, 70), (1e-3 + 1e-4) / 2);
  t.decay_fraction = 0.0;
  EXPECT_DOUBLE_EQ(learning_rate(t, 100), 1e-3);
}

TEST(LearningRate, MonotonicAfterWarmupAndMinLrPastTheEnd) {
  for (const char* name : kAllSchedules) {
    SCOPED_TRACE(name);
    const TrainConfig t = schedule(name);
    for (int64_t s = 21; s <= 130; ++s) EXPECT_LE(learning_rate(t, s), learning_rate(t, s - 1));
    for (int64_t s = 0; s <= 130; ++s) {
      EXPECT_GE(learning_rate(t, s), 0.0);
      EXPECT_LE(learning_rate(t, s), 1e-3);
    }
    const double after_end = std::string(name) == "constant" ? 1e-3 : 1e-4;
    EXPECT_DOUBLE_EQ(learning_rate(t, 121), after_end);
    EXPECT_DOUBLE_EQ(learning_rate(t, 10'000), after_end);
  }
}

TEST(LearningRate, NoWarmupStartsAtThePeak) {
  for (const char* name : kAllSchedules) {
    SCOPED_TRACE(name);
    const TrainConfig t = schedule(name, 100, 0);
    EXPECT_DOUBLE_EQ(learning_rate(t, 0), 1e-3);
  }
  EXPECT_DOUBLE_EQ(learning_rate(schedule("cosine", 100, 0), 50), (1e-3 + 1e-4) / 2);
  EXPECT_DOUBLE_EQ(learning_rate(schedule("linear", 100, 0), 25), 1e-3 - 9e-4 * 0.25);
}

TEST(LearningRate, AllWarmupNoDecay) {
  const TrainConfig t = schedule("cosine", 10, 10);
  EXPECT_DOUBLE_EQ(learning_rate(t, 0), 1e-4);
  EXPECT_DOUBLE_EQ(learning_rate(t, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(t, 10), 1e-4);
}

TEST(LearningRate, Errors) {
  using testing::input_error_message;
  using testing::mentions;
  EXPECT_TRUE(mentions(input_error_message([] { learning_rate(schedule("cosine"), -1); }),
                       "step -1 is negative"));
}

}  // namespace
}  // namespace moe
