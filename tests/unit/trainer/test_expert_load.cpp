// Expert load summaries against hand-computed values.
#include <cmath>

#include <gtest/gtest.h>

#include "trainer/expert_load.h"

namespace moe {
namespace {

TEST(ExpertLoad, BalancedLoad) {
  const LoadSummary s = summarize_load({5, 5, 5, 5});
  EXPECT_DOUBLE_EQ(s.max_over_mean, 1.0);
  EXPECT_DOUBLE_EQ(s.cv, 0.0);
  EXPECT_EQ(s.idle_experts, 0);
}

TEST(ExpertLoad, SkewedLoadWithIdleExperts) {
  // mean 2, max 6, deviations 4, -2, -2, 0: variance (16 + 4 + 4 + 0) / 4 = 6.
  const LoadSummary s = summarize_load({6, 0, 0, 2});
  EXPECT_DOUBLE_EQ(s.max_over_mean, 3.0);
  EXPECT_DOUBLE_EQ(s.cv, std::sqrt(6.0) / 2.0);
  EXPECT_EQ(s.idle_experts, 2);
}

TEST(ExpertLoad, EmptyAndAllZeroLoads) {
  for (const auto& load : {std::vector<int64_t>{}, std::vector<int64_t>{0, 0, 0}}) {
    const LoadSummary s = summarize_load(load);
    EXPECT_EQ(s.max_over_mean, 0.0);
    EXPECT_EQ(s.cv, 0.0);
    EXPECT_EQ(s.idle_experts, 0);
  }
}

}  // namespace
}  // namespace moe
