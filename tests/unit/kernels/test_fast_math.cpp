// The f32 fast paths' building blocks (kernels/cpu/fast_math.h, exp_f32.h): exp_f32 within 2 ulp
// of e^x over every normal result, its limits (0, +inf, NaN), sigmoid_f32, and lane_sum's fixed
// order: the same bits wherever the values lie, within a sequential sum's bound of the exact sum.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/fast_math.h"

namespace moe::cpu {
namespace {

TEST(FastMath, ExpF32IsWithinTwoUlpOfExpForEveryNormalResult) {
  double worst = 0;
  for (float x = -87.3f; x < 88.7f; x += 0.000931f) {
    const double exact = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(exact)) - 23);
    worst = std::max(worst, std::fabs(exp_f32(x) - exact) / ulp);
  }
  EXPECT_LE(worst, 2.0);
}

TEST(FastMath, ExpF32LimitsAndSigmoid) {
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-105.0f), 0.0f);
  EXPECT_EQ(exp_f32(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(exp_f32(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_NEAR(exp_f32(-100.0f), std::exp(-100.0), 2e-45);  // subnormal: within one of its steps
  for (float x : {-30.0f, -3.0f, -0.5f, 0.0f, 0.25f, 4.0f, 30.0f})
    EXPECT_NEAR(sigmoid_f32(x), 1 / (1 + std::exp(-static_cast<double>(x))),
                4 * std::ldexp(1.0, -24) / (1 + std::exp(-static_cast<double>(x))))
        << x;
}

TEST(FastMath, LaneSumHasOneOrderWhereverTheValuesLie) {
  const int64_t n = 1001;
  std::vector<float> values(n + 3);
  for (int64_t i = 0; i < n; ++i) values[i] = std::sin(0.37 * i) * (1 + i % 7);
  std::vector<float> shifted(values.begin(), values.begin() + n);
  shifted.insert(shifted.begin(), 3, 0.0f);  // the same values 12 bytes further on
  const float at_start = lane_sum(n, [&](int64_t i) { return values[i]; });
  const float moved = lane_sum(n, [&](int64_t i) { return shifted[i + 3]; });
  EXPECT_EQ(at_start, moved);
  double exact = 0, magnitude = 0;
  for (int64_t i = 0; i < n; ++i) {
    exact += values[i];
    magnitude += std::fabs(values[i]);
  }
  EXPECT_NEAR(at_start, exact, 2 * n * std::ldexp(1.0, -24) * magnitude);
  EXPECT_EQ(lane_sum(0, [&](int64_t) { return 1.0f; }), 0.0f);
  EXPECT_EQ(lane_sum(5, [&](int64_t i) { return static_cast<float>(i); }), 10.0f);
}

}  // namespace
}  // namespace moe::cpu
