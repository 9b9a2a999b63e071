// matmul: values against a naive triple loop, every transpose combination and batching, and fp64
// finite-difference gradients of matmul_backward; bf16 operands with a bf16 or an f32 output
// against the f64 loop (bf16_tolerance: k + 2 f32 operations per element, magnitude the same
// product of absolute values), and bit for bit at the rounding point.
#include <gtest/gtest.h>

#include "core/half.h"
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

Tensor operand(bool batched, int64_t rows, int64_t cols, bool trans, uint64_t seed,
               DType dtype = DType::f64) {
  if (batched)
    return trans ? random_tensor({2, cols, rows}, dtype, seed)
                 : random_tensor({2, rows, cols}, dtype, seed);
  return trans ? random_tensor({cols, rows}, dtype, seed)
               : random_tensor({rows, cols}, dtype, seed);
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

// c = 2 op(a) op(b) + beta c0 in bf16 (beta 0.5) and f32 (beta 1, a weight gradient's
// accumulation) against the f64 loop on the same bf16 values.
TEST_P(MatmulTest, Bf16MatchesTheF64Reference) {
  const Case c = GetParam();
  Stream stream;
  const int64_t k = 67;
  const Tensor a = operand(c.batched, 9, k, c.trans_a, 12, DType::bf16);
  const Tensor b = operand(c.batched, k, 7, c.trans_b, 13, DType::bf16);
  const Tensor a64 = testing::converted(a, DType::f64), b64 = testing::converted(b, DType::f64);
  const Tensor product = naive_matmul(a64, b64, c.trans_a, c.trans_b);
  const Tensor bound =
      naive_matmul(testing::absolute(a64), testing::absolute(b64), c.trans_a, c.trans_b);
  for (const auto& [out_dtype, beta] : {std::pair{DType::bf16, 0.5f}, {DType::f32, 1.0f}}) {
    const Tensor c0 = random_tensor(product.shape(), out_dtype, 14);
    Tensor out = c0.clone(), expected = testing::converted(c0, DType::f64);
    ops::matmul(a, b, out, c.trans_a, c.trans_b, 2.0f, beta, stream);
    for (int64_t i = 0; i < expected.numel(); ++i) {
      double& e = expected.data<double>()[i];
      e = 2 * product.data<double>()[i] + beta * e;
    }
    // |beta c0| <= 1: the magnitude of the last term.
    const auto tol = testing::bf16_tolerance(k + 2, 2 * testing::max_element(bound) + 1);
    EXPECT_TRUE(testing::all_close(out, expected, tol.atol, out_dtype == DType::f32 ? 0 : tol.rtol))
        << dtype_name(out_dtype);
  }
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

// bf16 operands are widened exactly and run through the f32 GEMM: an f32 c is the f32 GEMM's result
// bit for bit, a bf16 c that result rounded once.
TEST(Matmul, Bf16RoundsOnlyTheOutput) {
  Stream stream;
  const Tensor a = random_tensor({13, 40}, DType::bf16, 15),
               b = random_tensor({40, 6}, DType::bf16, 16);
  const Tensor a32 = testing::converted(a, DType::f32), b32 = testing::converted(b, DType::f32);
  Tensor c32 = Tensor::empty({13, 6}, DType::f32), c_f32 = Tensor::empty({13, 6}, DType::f32);
  Tensor c_bf16 = Tensor::empty({13, 6}, DType::bf16);
  ops::matmul(a32, b32, c32, false, false, 1.0f, 0.0f, stream);
  ops::matmul(a, b, c_f32, false, false, 1.0f, 0.0f, stream);
  ops::matmul(a, b, c_bf16, false, false, 1.0f, 0.0f, stream);
  for (int64_t i = 0; i < c32.numel(); ++i) {
    EXPECT_EQ(c_f32.data<float>()[i], c32.data<float>()[i]) << i;
    EXPECT_EQ(c_bf16.data<bf16_t>()[i].bits, float_to_bf16(c32.data<float>()[i]).bits) << i;
  }
}

// A linear layer's backward under bf16 activations: dx stays bf16, dW accumulates into f32.
TEST(Matmul, Bf16BackwardAccumulatesAWeightGradientInF32) {
  Stream stream;
  const int64_t rows = 24, in = 10, out = 6;
  const Tensor x = random_tensor({rows, in}, DType::bf16, 17),
               w = random_tensor({out, in}, DType::bf16, 18);
  const Tensor dy = random_tensor({rows, out}, DType::bf16, 19);
  Tensor dx = Tensor::zeros({rows, in}, DType::bf16), dw = random_tensor({out, in}, DType::f32, 20);
  const Tensor x64 = testing::converted(x, DType::f64), w64 = testing::converted(w, DType::f64);
  const Tensor dy64 = testing::converted(dy, DType::f64);
  Tensor dx64 = Tensor::zeros({rows, in}, DType::f64), dw64 = testing::converted(dw, DType::f64);
  ops::matmul_backward(x, w, dy, &dx, &dw, false, true, stream);
  ops::matmul_backward(x64, w64, dy64, &dx64, &dw64, false, true, stream);
  // dx: out terms of |dy||w| <= 1 each; dw: rows terms of |dy||x| <= 1 plus |dw0| <= 1.
  const auto dx_tol = testing::bf16_tolerance(out + 1, out);
  EXPECT_TRUE(testing::all_close(dx, dx64, dx_tol.atol, dx_tol.rtol));
  const auto dw_tol = testing::bf16_tolerance(rows + 1, rows + 1);
  EXPECT_TRUE(testing::all_close(dw, dw64, dw_tol.atol, 0));
}

// TF32 is a CUDA setting (off by default): the CPU's f32 GEMM gives the same bits with it on.
TEST(Matmul, Tf32SettingLeavesTheCpuUnchanged) {
  Stream stream;
  const Tensor a = random_tensor({13, 40}, DType::f32, 30);
  const Tensor b = random_tensor({40, 7}, DType::f32, 31);
  Tensor off = Tensor::zeros({13, 7}, DType::f32), on = Tensor::zeros({13, 7}, DType::f32);
  EXPECT_FALSE(ops::matmul_tf32());
  ops::matmul(a, b, off, false, false, 1.0f, 0.0f, stream);
  ops::set_matmul_tf32(true);
  EXPECT_TRUE(ops::matmul_tf32());
  ops::matmul(a, b, on, false, false, 1.0f, 0.0f, stream);
  ops::set_matmul_tf32(false);
  EXPECT_FALSE(ops::matmul_tf32());
  EXPECT_TRUE(testing::all_close(on, off, 0, 0));
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
