// exp, sigmoid and sums in f32 for the ops' f32 fast paths: plain branch-free arithmetic that the
// compiler vectorises inside a loop (a libm call would stop it, and std::exp(float) has no vector
// variant without -ffast-math). The f64 and bf16 paths keep libm and their sequential sums.
// exp_f32: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2 (ln2 split in two parts so r
// is exact to f32), e^r by its Taylor polynomial to degree 7 (truncation < 2^-27 relative), 2^n
// as 2^(n/2) 2^(n - n/2), two factors that stay normal f32 down to subnormal results. Within 2 ulp
// of e^x for normal results; 0 below -104 (e^x under half the smallest subnormal), +inf above
// ln(FLT_MAX), NaN stays NaN.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

namespace moe::cpu {

inline float exp_f32(float x) {
  constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693145752f, kLn2Lo = 1.42860677e-6f;
  constexpr float kLow = -104.0f, kHigh = 88.7228394f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float clamped = x >= kLow ? (x <= kHigh ? x : kHigh) : kLow;  // NaN too: no int overflow
  const float n = (clamped * kLog2e + kRound) - kRound;
  const float r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t half = static_cast<int32_t>(n) >> 1, rest = static_cast<int32_t>(n) - half;
  float y = p * std::bit_cast<float>((half + 127) << 23) * std::bit_cast<float>((rest + 127) << 23);
  y = x < kLow ? 0.0f : y;
  y = x > kHigh ? std::numeric_limits<float>::infinity() : y;
  return x == x ? y : x;
}

inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

// The sum of term(i) for i in [0, n), in Acc (f32, or f64 for a long sum of f32 terms) over
// kSumLanes partial sums (term i goes to lane i % kSumLanes) that are added in lane order at the
// end: vectorisable, and the same order for the same n wherever the values lie in memory and
// whichever thread sums them. Each partial sum adds about n / kSumLanes terms, so the error stays
// below that of a sequential sum.
inline constexpr int64_t kSumLanes = 8;

template <typename Acc = float, typename Term>
Acc lane_sum(int64_t n, Term&& term) {
  Acc lanes[kSumLanes] = {};
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (int64_t l = 0; l < kSumLanes; ++l) lanes[l] += term(i + l);
  for (int64_t l = 0; i + l < n; ++l) lanes[l] += term(i + l);
  Acc sum = 0;
  for (Acc lane : lanes) sum += lane;
  return sum;
}

}  // namespace moe::cpu
