// The unscaled RoPE frequency table theta^(-2i/hd), i < hd/2, as f64 [hd/2] on the host: what the
// rope op tests pass as inv_freq (layers/rope_frequencies.h makes the model's, scaled ones).
#pragma once

#include <cmath>
#include <vector>

#include "core/tensor.h"

namespace moe::testing {

inline Tensor rope_table(double theta, int64_t head_dim) {
  std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i)
    inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  return Tensor::from_vector<double>({head_dim / 2}, inv_freq);
}

}  // namespace moe::testing
