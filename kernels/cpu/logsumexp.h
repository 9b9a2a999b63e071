// log(sum_i exp(row[i])) in double, max-subtracted so that large logits do not overflow. Shared by
// the cross-entropy and the router's z-loss kernels.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

template <typename T>
double logsumexp(const T* row, int64_t n) {
  double max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::fmax(max, static_cast<double>(widen(row[i])));
  if (max == -INFINITY) return -INFINITY;  // every entry -inf: log(0), not inf - inf
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(widen(row[i])) - max);
  return max + std::log(sum);
}

}  // namespace moe::cpu
