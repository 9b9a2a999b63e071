#include "checkpoint/hf_rope_rows.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace moe {

void reorder_rope_rows(float* values, int64_t rows, int64_t cols, const RopeRows& rope,
                       bool to_interleaved) {
  if (rope.dim == 0) return;
  MOE_ASSERT(rope.period > 0 && rows % rope.period == 0 && rope.dim % 2 == 0 &&
                 rope.begin + rope.dim <= rope.period,
             "RoPE rows do not fit the weight");
  const int64_t half = rope.dim / 2;
  std::vector<float> block(rope.dim * cols);
  for (int64_t start = rope.begin; start < rows; start += rope.period) {
    float* rope_rows = values + start * cols;
    std::copy_n(rope_rows, block.size(), block.begin());
    for (int64_t j = 0; j < rope.dim; ++j) {
      // interleaved row j is pair j / 2's first (even j) or second member
      const int64_t split = (j % 2) * half + j / 2;
      const int64_t from = to_interleaved ? split : j, to = to_interleaved ? j : split;
      std::copy_n(block.begin() + from * cols, cols, rope_rows + to * cols);
    }
  }
}

}  // namespace moe
