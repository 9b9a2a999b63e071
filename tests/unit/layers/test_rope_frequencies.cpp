// layers/rope_frequencies against numbers published for real models (METHODS.md §7.2: the bands of
// Llama 3.1, DeepSeek-V3's yarn table) and the properties each scaling type promises. The tables
// transformers itself computes are checked in tests/unit/checkpoint/test_hf_rope.cpp.
#include <cmath>

#include <gtest/gtest.h>

#include "layers/rope_frequencies.h"

namespace moe {
namespace {

ModelConfig with_head_dim(int head_dim, double theta) {
  ModelConfig m;
  m.n_heads = 2;
  m.d_model = 2 * head_dim;
  m.rope_theta = theta;
  return m;
}

double unscaled(const ModelConfig& m, int j) {
  return std::pow(m.rope_theta, -2.0 * j / m.effective_head_dim());
}

TEST(RopeFrequencies, NoneIsThePowerSeriesOfTheta) {
  const ModelConfig m = with_head_dim(16, 10000.0);
  const RopeFrequencies f = rope_frequencies(m);
  ASSERT_EQ(f.inv_freq.size(), 8u);
  for (int j = 0; j < 8; ++j) EXPECT_DOUBLE_EQ(f.inv_freq[j], unscaled(m, j)) << j;
  EXPECT_EQ(f.attention_factor, 1.0);
}

// Llama 3.1 8B (factor 8, low 1, high 4, original 8192, theta 5e5, head 128): 29 pairs keep their
// frequency, 6 are smoothed between, 29 are divided by 8.
TEST(RopeFrequencies, Llama31HasTwentyNineKeptSixSmoothedTwentyNineDivided) {
  ModelConfig m = with_head_dim(128, 500000.0);
  m.max_seq_len = 131072;
  m.rope_scaling = {.type = RopeScalingType::llama3,
                    .factor = 8,
                    .original_max_seq_len = 8192,
                    .low_freq_factor = 1,
                    .high_freq_factor = 4};
  const RopeFrequencies f = rope_frequencies(m);
  int kept = 0, divided = 0, between = 0;
  for (int j = 0; j < 64; ++j) {
    const double base = unscaled(m, j), got = f.inv_freq[j];
    if (got == base)
      ++kept;
    else if (std::abs(got - base / 8) <= 1e-15 * base)
      ++divided;
    else if (got < base && got > base / 8)
      ++between;
  }
  EXPECT_EQ(kept, 29);
  EXPECT_EQ(between, 6);
  EXPECT_EQ(divided, 29);
  EXPECT_EQ(f.attention_factor, 1.0);
}

// DeepSeek-V3's rope part (head 64, theta 1e4, factor 40, original 4096, beta 32/1, mscale =
// mscale_all_dim = 1): pairs up to 10 extrapolated, from 23 interpolated, inv_freq[16] = 0.0055,
// attention factor 1.
TEST(RopeFrequencies, DeepSeekV3Yarn) {
  ModelConfig m = with_head_dim(64, 10000.0);
  m.max_seq_len = 163840;
  m.rope_scaling = {.type = RopeScalingType::yarn,
                    .factor = 40,
                    .original_max_seq_len = 4096,
                    .mscale = 1,
                    .mscale_all_dim = 1};
  const RopeFrequencies f = rope_frequencies(m);
  for (int j = 0; j <= 10; ++j) EXPECT_DOUBLE_EQ(f.inv_freq[j], unscaled(m, j)) << j;
  for (int j = 23; j < 32; ++j) EXPECT_DOUBLE_EQ(f.inv_freq[j], unscaled(m, j) / 40) << j;
  EXPECT_NEAR(f.inv_freq[16], 0.0055, 5e-5);
  EXPECT_DOUBLE_EQ(f.attention_factor, 1.0);
  m.rope_scaling.mscale = m.rope_scaling.mscale_all_dim = 0;  // then m(40) = 0.1 ln 40 + 1
  EXPECT_NEAR(rope_frequencies(m).attention_factor, 1.368888, 1e-6);
}

// Every scaling type reads its factor: another factor gives other frequencies.
TEST(RopeFrequencies, AChangedFactorChangesTheResult) {
  for (const RopeScalingType type :
       {RopeScalingType::linear, RopeScalingType::llama3, RopeScalingType::yarn}) {
    SCOPED_TRACE(word_of(type));
    ModelConfig m = with_head_dim(32, 10000.0);
    m.max_seq_len = 256;
    m.rope_scaling = {.type = type,
                      .factor = 4,
                      .original_max_seq_len = 64,
                      .low_freq_factor = 1,
                      .high_freq_factor = 4};
    const RopeFrequencies four = rope_frequencies(m);
    m.rope_scaling.factor = 4.5;
    const RopeFrequencies other = rope_frequencies(m);
    EXPECT_NE(four.inv_freq, other.inv_freq);
    if (type == RopeScalingType::yarn) {
      EXPECT_NE(four.attention_factor, other.attention_factor);
    }
  }
}

}  // namespace
}  // namespace moe
