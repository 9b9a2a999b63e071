// exp_f32 (kernels/cpu/exp_f32.h), the vectorisable exp of the f32 attention path, against
// std::exp in double rounded to f32 (correctly rounded but for rare near-ties): within 2 ulp over
// the whole finite range, exactly 0 where exp underflows and inf where it overflows, subnormal
// results included.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/exp_f32.h"

namespace moe {
namespace {

using cpu::exp_f32;

float reference_exp(float x) { return static_cast<float>(std::exp(static_cast<double>(x))); }

// Distance in representable floats between two finite non-negative floats.
int64_t ulps(float a, float b) {
  return std::llabs(static_cast<int64_t>(std::bit_cast<int32_t>(a)) - std::bit_cast<int32_t>(b));
}

// The largest ulp distance over xs, each evaluated in one loop as the attention kernel does.
int64_t worst_ulps(const std::vector<float>& xs) {
  std::vector<float> ys(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) ys[i] = exp_f32(xs[i]);
  int64_t worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const int64_t d = ulps(ys[i], reference_exp(xs[i]));
    EXPECT_LE(d, 2) << "x = " << xs[i] << ": " << ys[i] << " vs " << reference_exp(xs[i]);
    if (d > 2) break;
    worst = std::max(worst, d);
  }
  return worst;
}

std::vector<float> evenly_spaced(float lo, float hi, int64_t count) {
  std::vector<float> xs;
  for (int64_t i = 0; i < count; ++i) xs.push_back(lo + (hi - lo) * static_cast<float>(i) / count);
  return xs;
}

TEST(ExpF32, WithinTwoUlpOverTheFiniteRange) {
  // -103.9 .. 88.7: results from the smallest subnormals to near FLT_MAX.
  EXPECT_LE(worst_ulps(evenly_spaced(-103.9f, 88.72f, 2'000'000)), 2);
}

TEST(ExpF32, WithinTwoUlpNearZeroAndOnSoftmaxInputs) {
  EXPECT_LE(worst_ulps(evenly_spaced(-1e-3f, 1e-3f, 100'000)), 2);
  EXPECT_LE(worst_ulps(evenly_spaced(-20.0f, 0.0f, 1'000'000)), 2);
}

TEST(ExpF32, SubnormalResults) {
  // exp(-100) ~ 3.7e-44: a subnormal float with few significant bits, still exact to the ulp.
  for (float x : {-88.0f, -95.5f, -100.0f, -103.0f}) {
    EXPECT_LT(exp_f32(x), std::numeric_limits<float>::min()) << x;
    EXPECT_LE(ulps(exp_f32(x), reference_exp(x)), 1) << x;
  }
}

TEST(ExpF32, UnderflowsToZeroAndOverflowsToInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {-104.0f, -110.0f, -1e30f, -std::numeric_limits<float>::max(), -inf})
    EXPECT_EQ(exp_f32(x), 0.0f) << x;
  for (float x : {88.73f, 89.0f, 100.0f, 1e30f, inf}) EXPECT_EQ(exp_f32(x), inf) << x;
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace moe
