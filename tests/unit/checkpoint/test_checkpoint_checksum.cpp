// block_checksum (checkpoint/checkpoint.h) against the definition of docs/checkpoints.md computed
// element by element here, on blocks of several shapes, offsets and dtypes; blocks that partition a
// tensor add up to the whole tensor's checksum; and fixed values, so that a change to the hash or
// the index definition (which would fail every checkpoint already written) shows.
#include <gtest/gtest.h>

#include <cstring>

#include "checkpoint/checkpoint.h"

namespace moe {
namespace {

uint64_t mix(uint64_t x) {  // docs/checkpoints.md
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Sum over the block's elements of mix(mix(i) ^ bits), i the element's row-major flat index in the
// global tensor: its block coordinates (row-major in the block) plus the offset.
uint64_t reference_checksum(const Tensor& block, const Shape& global,
                            const std::vector<int64_t>& offset) {
  const int n = block.ndim();
  const size_t width = dtype_size(block.dtype());
  uint64_t sum = 0;
  for (int64_t e = 0; e < block.numel(); ++e) {
    std::vector<int64_t> coordinate(n);
    int64_t rest = e;
    for (int d = n - 1; d >= 0; --d) {
      coordinate[d] = rest % block.shape()[d];
      rest /= block.shape()[d];
    }
    uint64_t index = 0;
    for (int d = 0; d < n; ++d) index = index * global[d] + coordinate[d] + offset[d];
    uint64_t bits = 0;
    std::memcpy(&bits, static_cast<const char*>(block.raw()) + e * width, width);
    sum += mix(mix(index) ^ bits);
  }
  return sum;
}

// A block of arbitrary bit patterns (every byte set from a counter-based generator).
Tensor filled(const Shape& shape, DType dtype, uint64_t seed = 1) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* bytes = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.numel() * dtype_size(dtype); ++i)
    bytes[i] = static_cast<unsigned char>(mix(seed * 1000003 + i));
  return t;
}

struct Case {
  Shape block, global;
  std::vector<int64_t> offset;
};

TEST(BlockChecksum, MatchesThePerElementDefinition) {
  const std::vector<Case> cases = {
      {Shape(), Shape(), {}},                           // a scalar
      {Shape({7}), Shape({7}), {0}},                    // 1-D, whole
      {Shape({3}), Shape({10}), {5}},                   // 1-D, inside
      {Shape({2, 3}), Shape({6, 8}), {4, 3}},           // 2-D box
      {Shape({2, 3, 4}), Shape({2, 3, 4}), {0, 0, 0}},  // 3-D, whole
      {Shape({2, 3, 4}), Shape({5, 7, 9}), {1, 2, 3}},  // 3-D box at a non-zero offset
      {Shape({1, 1, 5}), Shape({4, 4, 5}), {3, 2, 0}},  // one row
      {Shape({3, 1, 2}), Shape({3, 6, 8}), {0, 5, 6}},  // box ending at the far corner
      {Shape({2, 2, 2, 3}), Shape({3, 4, 5, 6}), {1, 2, 3, 3}},
      {Shape({0}), Shape({4}), {2}},  // empty blocks
      {Shape({2, 0, 3}), Shape({4, 5, 6}), {1, 2, 3}},
      {Shape({0, 4}), Shape({3, 4}), {3, 0}},
  };
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64})
    for (const Case& c : cases) {
      const Tensor block = filled(c.block, dtype);
      EXPECT_EQ(block_checksum(block, c.global, c.offset),
                reference_checksum(block, c.global, c.offset))
          << dtype_name(dtype) << " block " << c.block.str() << " of " << c.global.str();
    }
  EXPECT_EQ(block_checksum(Tensor::empty({0, 4}, DType::f32), Shape({3, 4}), {3, 0}), 0u);
}

// A 3-D tensor cut into 2 x 3 x 2 boxes at uneven points: their checksums add up to the whole's.
TEST(BlockChecksum, BlocksThatPartitionATensorAddUpToTheWhole) {
  const Shape global({5, 7, 6});
  const Tensor whole = filled(global, DType::f32, 7);
  const float* values = whole.data<float>();
  const std::vector<std::vector<int64_t>> cuts = {{0, 2, 5}, {0, 1, 4, 7}, {0, 6, 6}};
  uint64_t sum = 0;
  for (size_t a = 0; a + 1 < cuts[0].size(); ++a)
    for (size_t b = 0; b + 1 < cuts[1].size(); ++b)
      for (size_t c = 0; c + 1 < cuts[2].size(); ++c) {
        const std::vector<int64_t> at = {cuts[0][a], cuts[1][b], cuts[2][c]};
        const Shape shape({cuts[0][a + 1] - at[0], cuts[1][b + 1] - at[1], cuts[2][c + 1] - at[2]});
        Tensor box = Tensor::empty(shape, DType::f32);
        float* out = box.data<float>();
        for (int64_t i = 0; i < shape[0]; ++i)
          for (int64_t j = 0; j < shape[1]; ++j)
            for (int64_t k = 0; k < shape[2]; ++k)
              *out++ = values[((at[0] + i) * global[1] + at[1] + j) * global[2] + at[2] + k];
        sum += block_checksum(box, global, at);
      }
  EXPECT_EQ(sum, block_checksum(whole, global, {0, 0, 0}));
  EXPECT_EQ(sum, reference_checksum(whole, global, {0, 0, 0}));
}

// Checksums as the checkpoints written so far store them (computed by the block_checksum that wrote
// them; the first also by hand from docs/checkpoints.md): they must never change.
TEST(BlockChecksum, KeepsTheValuesOfWrittenCheckpoints) {
  EXPECT_EQ(block_checksum(Tensor::from_vector<float>({2, 2}, {1.0f, -2.5f, 0.0f, 3.0f}),
                           Shape({2, 2}), {0, 0}),
            0xed8f0e9b3e56346aull);
  EXPECT_EQ(block_checksum(filled(Shape({2, 3, 4}), DType::f32), Shape({5, 7, 9}), {1, 2, 3}),
            0x691acac927cd0ab4ull);
  EXPECT_EQ(block_checksum(filled(Shape({6}), DType::bf16), Shape({16}), {9}),
            0x4b4d930f3eb9c602ull);
}

}  // namespace
}  // namespace moe
