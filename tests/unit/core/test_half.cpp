// bf16/f16 conversion: exact values, round-to-nearest-even on ties, overflow, subnormals, NaN.
// The f16 side is checked exhaustively against the definition: every f16 value converts to float
// and back unchanged, and every float halfway between two f16 neighbours rounds to the even one.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "core/half.h"

namespace moe {
namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(Bf16, ExactValuesAndTiesToEven) {
  EXPECT_EQ(float_to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f).bits, 0xc000);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -9)).bits, 0x3f81);  // above half: up
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.140625f)), 3.140625f);
}

TEST(Bf16, OverflowInfinityAndNaN) {
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffff)).bits, 0x7f80);  // max float rounds to +inf
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(INFINITY))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_TRUE(
      std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7f800001)))));  // payload below 16 bits
}

TEST(F16, EveryValueRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const f16_t h{static_cast<uint16_t>(bits)};
    const float f = f16_to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
      continue;
    }
    ASSERT_EQ(float_to_f16(f).bits, bits) << "f16 bits " << bits << " value " << f;
  }
}

TEST(F16, HalfwayPointsRoundToEven) {
  // Positive finite f16 values below the max: the midpoint to the next value rounds to the even
  // one.
  for (uint32_t bits = 0; bits < 0x7bff; ++bits) {
    const double lo = f16_to_float(f16_t{static_cast<uint16_t>(bits)});
    const double hi = f16_to_float(f16_t{static_cast<uint16_t>(bits + 1)});
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in float
    const uint16_t even = (bits % 2 == 0) ? bits : bits + 1;
    ASSERT_EQ(float_to_f16(mid).bits, even) << "between " << lo << " and " << hi;
  }
}

TEST(F16, OverflowAndUnderflow) {
  EXPECT_EQ(float_to_f16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(float_to_f16(65520.0f).bits, 0x7c00);  // halfway to the next binade: rounds to inf
  EXPECT_EQ(float_to_f16(-1e10f).bits, 0xfc00);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -26)).bits, 0x0000);  // below half of it
  EXPECT_EQ(float_to_f16(-0.0f).bits, 0x8000);
}

}  // namespace
}  // namespace moe
