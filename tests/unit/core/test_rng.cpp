// Philox: the published known-answer vectors, determinism, independence of streams, and the
// distribution moments of uniform and normal draws.
#include <cmath>

#include <gtest/gtest.h>

#include "core/rng.h"

namespace moe {
namespace {

// Known-answer tests of Philox-4x32-10 from the Random123 distribution (kat_vectors): counter and
// key given as 32-bit words, counter = (ctr0, ctr1, ctr2, ctr3), key = (key0, key1).
TEST(Philox, KnownAnswerVectors) {
  auto r = philox4x32(0, 0, 0);
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
  const uint64_t all_ones = ~0ull;
  r = philox4x32(all_ones, all_ones, all_ones);
  EXPECT_EQ(r[0], 0x408f276du);
  EXPECT_EQ(r[1], 0x41c83b0eu);
  EXPECT_EQ(r[2], 0xa20bc7c6u);
  EXPECT_EQ(r[3], 0x6d5451fdu);
}

TEST(Philox, SameInputsSameDrawsOtherStreamsDiffer) {
  Philox a(7, stream_id("layers.0.w")), b(7, stream_id("layers.0.w")),
      c(7, stream_id("layers.1.w"));
  int same_as_other_stream = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(a.bits(i), b.bits(i));
    same_as_other_stream += a.bits(i) == c.bits(i);
  }
  EXPECT_LT(same_as_other_stream, 3);
}

TEST(Philox, UniformAndNormalMoments) {
  Philox rng(1234, 1);
  const int n = 200000;
  double u_sum = 0, n_sum = 0, n_sq = 0;
  for (int i = 0; i < n; ++i) {
    const float u = rng.uniform(i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    u_sum += u;
    const double z = rng.normal(i);
    n_sum += z;
    n_sq += z * z;
  }
  // Standard errors: uniform mean 1/sqrt(12n) ~ 6.5e-4, normal mean 1/sqrt(n) ~ 2.2e-3,
  // normal variance sqrt(2/n) ~ 3.2e-3. Bounds are five standard errors.
  EXPECT_NEAR(u_sum / n, 0.5, 5 * 6.5e-4);
  EXPECT_NEAR(n_sum / n, 0.0, 5 * 2.2e-3);
  EXPECT_NEAR(n_sq / n, 1.0, 5 * 3.2e-3);
}

}  // namespace
}  // namespace moe
