// exp(x) for f32, written so that a loop calling it auto-vectorises (no branches, no libm call):
// the softmax of the f32 attention path evaluates one per score.
// - Range reduction: n = round(x log2 e) by adding and subtracting 1.5 * 2^23 (round to nearest
//   without SSE4.1's roundps), r = x - n ln2 with ln2 split Cody-Waite style into a high part of 9
//   significant bits (n * ln2_hi is exact for |n| < 2^15) and a low part; |r| <= ln2 / 2.
// - exp(r) by its Taylor polynomial to degree 7 in Horner form: the truncation error is below
//   0.04 ulp on |r| <= ln2 / 2, so the result is within ~1 ulp (tests/unit/kernels/test_exp_f32).
// - 2^n is applied as two factors 2^(n/2) 2^(n - n/2), both normal floats, so results that are
//   subnormal round once, correctly, and n = 128 still gives a finite value near FLT_MAX.
// - x is clamped to [-104, 89] first: exp(-104) is below half the smallest subnormal (rounds to
//   0, as does -inf), exp(89) overflows to inf (as does +inf). NaN passes the clamp and stays NaN.
//   The clamp is a bitwise select, not ?: — GCC gives a ?: with a constant arm its own folded
//   path, and under -ftrapping-math (the default) then cannot if-convert the other path's
//   float-to-int conversion, so the loop would stay scalar.
#pragma once

#include <bit>
#include <cstdint>

namespace moe::cpu {

// c ? a : b without a branch.
inline float select_f32(bool c, float a, float b) {
  const int32_t mask = -static_cast<int32_t>(c);
  return std::bit_cast<float>((std::bit_cast<int32_t>(a) & mask) |
                              (std::bit_cast<int32_t>(b) & ~mask));
}

inline float exp_f32(float x) {
  x = select_f32(x < -104.0f, -104.0f, x);
  x = select_f32(x > 89.0f, 89.0f, x);
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t k = static_cast<int32_t>(n), k1 = k >> 1, k2 = k - k1;
  const float scale1 = std::bit_cast<float>((k1 + 127) << 23);
  const float scale2 = std::bit_cast<float>((k2 + 127) << 23);
  return p * scale1 * scale2;
}

}  // namespace moe::cpu
