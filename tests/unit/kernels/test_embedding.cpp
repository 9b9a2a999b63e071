// embedding: gather values, fp64 gradients with repeated ids (scatter-add), and id range errors.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

TEST(Embedding, GathersRows) {
  Stream stream;
  Tensor table = random_tensor({5, 3}, DType::f64, 1);
  Tensor ids = Tensor::from_vector<int32_t>({3}, {4, 0, 4});
  Tensor out = Tensor::zeros({3, 3}, DType::f64);
  ops::embedding_forward(ids, table, out, stream);
  for (int n = 0; n < 3; ++n)
    for (int d = 0; d < 3; ++d)
      EXPECT_EQ(out.data<double>()[n * 3 + d],
                table.data<double>()[ids.data<int32_t>()[n] * 3 + d]);
}

TEST(Embedding, GradientMatchesFiniteDifferencesWithRepeatedIds) {
  Stream stream;
  Tensor table = random_tensor({6, 4}, DType::f64, 2);
  Tensor ids = Tensor::from_vector<int32_t>({5}, {1, 5, 1, 0, 1});
  Tensor out = Tensor::zeros({5, 4}, DType::f64), projection = random_tensor({5, 4}, DType::f64, 3);
  auto loss = [&] {
    ops::embedding_forward(ids, table, out, stream);
    return testing::dot(out, projection);
  };
  Tensor dtable = zeros_like(table);
  ops::embedding_backward(ids, projection, dtable, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"table", table, dtable}}));
}

TEST(Embedding, OutOfRangeIdNamesPositionAndVocabulary) {
  Stream stream;
  Tensor table = Tensor::zeros({5, 3}, DType::f32);
  Tensor ids = Tensor::from_vector<int32_t>({3}, {0, 7, 1});
  Tensor out = Tensor::zeros({3, 3}, DType::f32);
  try {
    ops::embedding_forward(ids, table, out, stream);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(
        std::string(e.what()).find("token id 7 at position 1 is outside the vocabulary [0, 5)"),
        std::string::npos)
        << e.what();
  }
  Tensor negative = Tensor::from_vector<int32_t>({3}, {0, -1, 1});
  Tensor dtable = Tensor::zeros({5, 3}, DType::f32);
  EXPECT_THROW(ops::embedding_backward(negative, out, dtable, stream), InputError);
}

TEST(Embedding, RejectsNonI32IdsAndWrongOutputWidth) {
  Stream stream;
  Tensor table = Tensor::zeros({5, 3}, DType::f32), out = Tensor::zeros({2, 3}, DType::f32);
  Tensor ids64 = Tensor::zeros({2}, DType::i64);
  EXPECT_THROW(ops::embedding_forward(ids64, table, out, stream), InputError);
  Tensor ids = Tensor::zeros({2}, DType::i32), narrow = Tensor::zeros({2, 2}, DType::f32);
  EXPECT_THROW(ops::embedding_forward(ids, table, narrow, stream), InputError);
}

}  // namespace
}  // namespace moe
