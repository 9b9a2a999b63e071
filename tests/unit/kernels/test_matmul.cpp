// matmul: values against a naive triple loop, every transpose combination and batching, and fp64
// finite-difference gradients of matmul_backward.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::gradients_match;
using testing::random_tensor;
using testing::zeros_like;

// Element (i, j) of op(t) for a 2-D slice starting at `base`.
double op_at(const Tensor& t, int64_t base, int64_t cols, bool trans, int64_t i, int64_t j) {
  const double* p = t.data<double>() + base;
  return trans ? p[j * cols + i] : p[i * cols + j];
}

Tensor naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int r = a.ndim() - 2;
  const int64_t batch = r ? a.dim(0) : 1;
  const int64_t m = ta ? a.dim(r + 1) : a.dim(r), k = ta ? a.dim(r) : a.dim(r + 1);
  const int64_t n = tb ? b.dim(r) : b.dim(r + 1);
  Tensor c = r ? Tensor::zeros({batch, m, n}, DType::f64) : Tensor::zeros({m, n}, DType::f64);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t l = 0; l < k; ++l)
          sum += op_at(a, z * m * k, a.dim(r + 1), ta, i, l) *
                 op_at(b, z * k * n, b.dim(r + 1), tb, l, j);
        c.data<double>()[(z * m + i) * n + j] = sum;
      }
  return c;
}

struct Case {
  bool trans_a, trans_b, batched;
};

class MatmulTest : public ::testing::TestWithParam<Case> {};

Tensor operand(bool batched, int64_t rows, int64_t cols, bool trans, uint64_t seed) {
  if (batched)
    return trans ? random_tensor({2, cols, rows}, DType::f64, seed)
                 : random_tensor({2, rows, cols}, DType::f64, seed);
  return trans ? random_tensor({cols, rows}, DType::f64, seed)
               : random_tensor({rows, cols}, DType::f64, seed);
}

TEST_P(MatmulTest, MatchesNaiveLoopAndAddsBetaC) {
  const Case c = GetParam();
  Stream stream;
  Tensor a = operand(c.batched, 3, 5, c.trans_a, 1), b = operand(c.batched, 5, 4, c.trans_b, 2);
  Tensor expected = naive_matmul(a, b, c.trans_a, c.trans_b);
  Tensor out = random_tensor(expected.shape(), DType::f64, 3);
  Tensor before = out.clone();
  ops::matmul(a, b, out, c.trans_a, c.trans_b, 2.0f, 0.5f, stream);
  for (int64_t i = 0; i < expected.numel(); ++i)
    expected.data<double>()[i] = 2.0 * expected.data<double>()[i] + 0.5 * before.data<double>()[i];
  EXPECT_TRUE(testing::all_close(out, expected, 1e-12, 1e-12));
}

TEST_P(MatmulTest, GradientMatchesFiniteDifferences) {
  const Case c = GetParam();
  Stream stream;
  Tensor a = operand(c.batched, 3, 5, c.trans_a, 4), b = operand(c.batched, 5, 4, c.trans_b, 5);
  Tensor out = naive_matmul(a, b, c.trans_a, c.trans_b);
  Tensor projection = random_tensor(out.shape(), DType::f64, 6);
  auto loss = [&] {
    ops::matmul(a, b, out, c.trans_a, c.trans_b, 1.0f, 0.0f, stream);
    return testing::dot(out, projection);
  };
  Tensor da = zeros_like(a), db = zeros_like(b);
  ops::matmul_backward(a, b, projection, &da, &db, c.trans_a, c.trans_b, stream);
  EXPECT_TRUE(gradients_match(loss, {{"a", a, da}, {"b", b, db}}));
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, MatmulTest,
                         ::testing::Values(Case{false, false, false}, Case{false, true, false},
                                           Case{true, false, false}, Case{true, true, false},
                                           Case{false, true, true}, Case{true, false, true}));

TEST(Matmul, BackwardAccumulatesIntoGradients) {
  Stream stream;
  Tensor a = random_tensor({2, 3}, DType::f64, 7), b = random_tensor({3, 2}, DType::f64, 8);
  Tensor dc = random_tensor({2, 2}, DType::f64, 9);
  Tensor da_once = zeros_like(a);
  ops::matmul_backward(a, b, dc, &da_once, nullptr, false, false, stream);
  Tensor da_twice = zeros_like(a);
  ops::matmul_backward(a, b, dc, &da_twice, nullptr, false, false, stream);
  ops::matmul_backward(a, b, dc, &da_twice, nullptr, false, false, stream);
  ops::scale(da_once, 2.0f, stream);
  EXPECT_TRUE(testing::all_close(da_twice, da_once, 1e-12, 1e-12));
}

TEST(Matmul, F32MatchesF64) {
  Stream stream;
  Tensor a64 = random_tensor({17, 33}, DType::f64, 10),
         b64 = random_tensor({33, 9}, DType::f64, 11);
  Tensor a32 = Tensor::empty(a64.shape(), DType::f32), b32 = Tensor::empty(b64.shape(), DType::f32);
  ops::convert(a64, a32, stream);
  ops::convert(b64, b32, stream);
  Tensor c32 = Tensor::empty({17, 9}, DType::f32), c64 = Tensor::empty({17, 9}, DType::f64);
  ops::matmul(a32, b32, c32, false, false, 1.0f, 0.0f, stream);
  ops::matmul(a64, b64, c64, false, false, 1.0f, 0.0f, stream);
  EXPECT_TRUE(testing::all_close(c32, c64, 1e-5, 1e-5));
}

TEST(Matmul, InnerDimensionMismatchNamesBothShapes) {
  Stream stream;
  Tensor a = Tensor::zeros({2, 3}, DType::f32), b = Tensor::zeros({4, 5}, DType::f32);
  Tensor c = Tensor::zeros({2, 5}, DType::f32);
  try {
    ops::matmul(a, b, c, false, false, 1.0f, 0.0f, stream);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("inner dims differ"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 5]"), std::string::npos) << e.what();
  }
}

TEST(Matmul, RejectsWrongOutputShapeMixedDtypesAndRank) {
  Stream stream;
  Tensor a = Tensor::zeros({2, 3}, DType::f32), b = Tensor::zeros({3, 5}, DType::f32);
  Tensor wrong = Tensor::zeros({5, 2}, DType::f32);
  EXPECT_THROW(ops::matmul(a, b, wrong, false, false, 1.0f, 0.0f, stream), InputError);
  Tensor c64 = Tensor::zeros({2, 5}, DType::f64);
  EXPECT_THROW(ops::matmul(a, b, c64, false, false, 1.0f, 0.0f, stream), InputError);
  Tensor b3 = Tensor::zeros({1, 3, 5}, DType::f32);
  EXPECT_THROW(ops::matmul(a, b3, wrong, false, false, 1.0f, 0.0f, stream), InputError);
  Tensor bad_da = Tensor::zeros({3, 2}, DType::f32), dc = Tensor::zeros({2, 5}, DType::f32);
  EXPECT_THROW(ops::matmul_backward(a, b, dc, &bad_da, nullptr, false, false, stream), InputError);
}

}  // namespace
}  // namespace moe
