// The rows of a DeepSeek attention weight that feed RoPE, and their order in a Hugging Face file.
//
// Decisions:
// - MoEForge rotates dimension j with j + dim/2 (rotate-half); DeepSeek's weights, and transformers
//   with rope_interleave true, rotate the pairs (2j, 2j+1). q.k is the same for either order as
//   long as the query's and the key's RoPE rows are ordered alike, so the import moves the rows
//   once (evens first, then odds) and the model keeps one RoPE; the export moves them back, an
//   exact permutation, so the round trip is bit for bit.
#pragma once

#include <cstdint>

namespace moe {

// In every `period` rows of a weight, the `dim` rows from `begin` feed RoPE (the query's per
// head, the shared key's once). dim 0: none.
struct RopeRows {
  int64_t period = 0, begin = 0, dim = 0;
  bool operator==(const RopeRows&) const = default;
};

// Reorders the RoPE rows of the row-major [rows, cols] matrix `values`: interleaved pairs to
// rotate-half order, or back (to_interleaved).
void reorder_rope_rows(float* values, int64_t rows, int64_t cols, const RopeRows& rope,
                       bool to_interleaved);

}  // namespace moe
