// exp, sigmoid and sums in f32 for the ops' f32 fast paths: plain branch-free arithmetic that the
// compiler vectorises inside a loop (a libm call would stop it, and std::exp(float) has no vector
// variant without -ffast-math). The f64 and bf16 paths keep libm and their sequential sums.
// exp_f32 itself is kernels/cpu/exp_f32.h (shared with the f32 attention).
#pragma once

#include <cstdint>

#include "kernels/cpu/exp_f32.h"

namespace moe::cpu {

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
