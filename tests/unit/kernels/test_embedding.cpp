// embedding: gather values, fp64 gradients with repeated ids (scatter-add), vocabulary shards (the
// shards' outputs sum to the full lookup, each shard's gradient is its rows of the full one), and
// the argument errors.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h).
#include <string>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;
using testing::random_tensor;
using testing::zeros_like;

TEST(Embedding, GathersRows) {
  Stream stream;
  Tensor table = random_tensor({5, 3}, DType::f64, 1);
  Tensor ids = Tensor::from_vector<int32_t>({3}, {4, 0, 4});
  Tensor out = Tensor::zeros({3, 3}, DType::f64);
  ops::embedding_forward(ids, table, 0, out, stream);
  for (int n = 0; n < 3; ++n)
    for (int d = 0; d < 3; ++d)
      EXPECT_EQ(out.data<double>()[n * 3 + d],
                table.data<double>()[ids.data<int32_t>()[n] * 3 + d]);
}

// On the whole table (vocab_start 0) and on a shard holding ids [2, 8), where ids 0, 1 fall
// outside.
TEST(Embedding, GradientMatchesFiniteDifferencesWithRepeatedIds) {
  for (int64_t vocab_start : {0, 2}) {
    Stream stream;
    Tensor table = random_tensor({6, 4}, DType::f64, 2);
    Tensor ids = Tensor::from_vector<int32_t>({6}, {1, 5, 1, 0, 7, 5});
    Tensor out = Tensor::zeros({6, 4}, DType::f64);
    const Tensor projection = random_tensor({6, 4}, DType::f64, 3);
    auto loss = [&] {
      ops::embedding_forward(ids, table, vocab_start, out, stream);
      return testing::dot(out, projection);
    };
    Tensor dtable = zeros_like(table);
    ops::embedding_backward(ids, projection, vocab_start, dtable, stream);
    EXPECT_TRUE(testing::gradients_match(loss, {{"table", table, dtable}}))
        << "vocab_start " << vocab_start;
  }
}

// Rows [0, split) and [split, 7) of one table, as two ranks of a vocab-parallel embedding hold
// them.
TEST(Embedding, ShardOutputsSumToUnshardedForward) {
  Stream stream;
  const Tensor table = random_tensor({7, 3}, DType::f32, 4);
  const Tensor ids = Tensor::from_vector<int32_t>({8}, {6, 0, 3, 2, 3, 4, 1, 6});
  Tensor full = Tensor::zeros({8, 3}, DType::f32);
  ops::embedding_forward(ids, table, 0, full, stream);
  for (int64_t split : {1, 3, 4, 6}) {
    Tensor low = Tensor::empty({8, 3}, DType::f32), high = Tensor::empty({8, 3}, DType::f32);
    ops::fill(low, 123.0, stream);  // a row the kernel forgot to write cannot pass
    ops::fill(high, 123.0, stream);
    ops::embedding_forward(ids, table.narrow(0, split), 0, low, stream);
    ops::embedding_forward(ids, table.narrow(split, 7 - split), split, high, stream);
    for (int64_t i = 0; i < full.numel(); ++i)
      EXPECT_EQ(low.data<float>()[i] + high.data<float>()[i], full.data<float>()[i])
          << "split " << split << " index " << i;
  }
}

TEST(Embedding, IdsOutsideTheShardGiveZeroRows) {
  Stream stream;
  const Tensor shard = random_tensor({3, 2}, DType::f64, 5, 1.0, 2.0);  // ids [4, 7)
  const Tensor ids = Tensor::from_vector<int32_t>({5}, {3, 4, 7, 6, 100});
  Tensor out = Tensor::empty({5, 2}, DType::f64);
  ops::fill(out, 9.0, stream);
  ops::embedding_forward(ids, shard, 4, out, stream);
  const double* o = out.data<double>();
  const double* t = shard.data<double>();
  for (int64_t n : {0, 2, 4})
    for (int d = 0; d < 2; ++d) EXPECT_EQ(o[n * 2 + d], 0.0) << "position " << n;
  for (int d = 0; d < 2; ++d) {
    EXPECT_EQ(o[1 * 2 + d], t[0 * 2 + d]);  // id 4: the shard's row 0
    EXPECT_EQ(o[3 * 2 + d], t[2 * 2 + d]);  // id 6: the shard's row 2
  }
}

// Each shard's gradient, accumulated onto a non-zero dtable, equals the matching rows of the
// unsharded gradient accumulated onto the same values.
TEST(Embedding, ShardBackwardEqualsRowsOfUnshardedBackward) {
  Stream stream;
  const Tensor ids = Tensor::from_vector<int32_t>({7}, {2, 5, 2, 0, 6, 5, 2});
  const Tensor dout = random_tensor({7, 3}, DType::f64, 6);
  const Tensor initial = random_tensor({7, 3}, DType::f64, 7);
  Tensor full = initial.clone();
  ops::embedding_backward(ids, dout, 0, full, stream);
  const int64_t split = 3;
  Tensor low = initial.narrow(0, split).clone(), high = initial.narrow(split, 7 - split).clone();
  ops::embedding_backward(ids, dout, 0, low, stream);
  ops::embedding_backward(ids, dout, split, high, stream);
  EXPECT_TRUE(testing::all_close(low, full.narrow(0, split), 0.0, 0.0));
  EXPECT_TRUE(testing::all_close(high, full.narrow(split, 7 - split), 0.0, 0.0));
  // Row 1 (no token) keeps its initial value, row 2 (three tokens) gains all three.
  for (int d = 0; d < 3; ++d) {
    EXPECT_EQ(low.data<double>()[1 * 3 + d], initial.data<double>()[1 * 3 + d]);
    const double* g = dout.data<double>();
    EXPECT_NEAR(low.data<double>()[2 * 3 + d],
                initial.data<double>()[2 * 3 + d] + g[0 * 3 + d] + g[2 * 3 + d] + g[6 * 3 + d],
                1e-15);
  }
}

TEST(Embedding, NegativeIdNamesIdAndPosition) {
  Stream stream;
  Tensor table = Tensor::zeros({5, 3}, DType::f32);
  Tensor ids = Tensor::from_vector<int32_t>({3}, {0, -7, 1});
  Tensor out = Tensor::zeros({3, 3}, DType::f32), dtable = Tensor::zeros({5, 3}, DType::f32);
  for (int64_t vocab_start : {0, 2}) {
    EXPECT_TRUE(mentions(
        input_error_message([&] { ops::embedding_forward(ids, table, vocab_start, out, stream); }),
        "token id -7 at position 1"));
    EXPECT_TRUE(mentions(input_error_message([&] {
                           ops::embedding_backward(ids, out, vocab_start, dtable, stream);
                         }),
                         "token id -7 at position 1"));
  }
}

TEST(Embedding, RejectsNegativeVocabStart) {
  Stream stream;
  Tensor table = Tensor::zeros({5, 3}, DType::f32), out = Tensor::zeros({2, 3}, DType::f32);
  Tensor ids = Tensor::zeros({2}, DType::i32);
  EXPECT_TRUE(
      mentions(input_error_message([&] { ops::embedding_forward(ids, table, -1, out, stream); }),
               "vocab_start must be >= 0, got -1"));
  EXPECT_THROW(ops::embedding_backward(ids, out, -3, table, stream), InputError);
}

TEST(Embedding, RejectsNonI32IdsAndWrongOutputWidth) {
  Stream stream;
  Tensor table = Tensor::zeros({5, 3}, DType::f32), out = Tensor::zeros({2, 3}, DType::f32);
  Tensor ids64 = Tensor::zeros({2}, DType::i64);
  EXPECT_THROW(ops::embedding_forward(ids64, table, 0, out, stream), InputError);
  Tensor ids = Tensor::zeros({2}, DType::i32), narrow = Tensor::zeros({2, 2}, DType::f32);
  EXPECT_THROW(ops::embedding_forward(ids, table, 0, narrow, stream), InputError);
}

// Forward copies (exact). Backward adds each of the 7 tokens' rows (values <= 1) to an initial
// dtable (<= 1) in f32: at most 8 f32 additions, magnitude 8; dtable f32, then bf16 (rounded once).
TEST(Embedding, Bf16RoundsTheF32ResultAndMatchesF64) {
  const Tensor table = random_tensor({6, 5}, DType::bf16, 40);
  const Tensor dout = random_tensor({7, 5}, DType::bf16, 41);
  const Tensor ids = Tensor::from_vector<int32_t>({7}, {1, 5, 1, 0, 7, 1, 5});
  for (bool f32_dtable : {true, false}) {
    auto run = [&](DType dtype) {
      Stream stream;
      Tensor out = Tensor::empty({7, 5}, dtype);
      ops::embedding_forward(ids, testing::converted(table, dtype), 0, out, stream);
      Tensor dtable =
          testing::converted(table, f32_dtable ? testing::statistics_dtype(dtype) : dtype);
      ops::embedding_backward(ids, testing::converted(dout, dtype), 0, dtable, stream);
      return std::vector<Tensor>{out, dtable};
    };
    EXPECT_TRUE(testing::bf16_rounds_f32_and_matches_f64(run, {{"out", 0, 1}, {"dtable", 8, 8}}))
        << (f32_dtable ? "f32 dtable" : "bf16 dtable");
  }
}

}  // namespace
}  // namespace moe
