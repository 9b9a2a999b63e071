// Memory and elementwise ops: fill, copy, copy_columns, convert, add, axpy, scale, sum_of_squares
// and gradient clipping, plus their argument errors; add, axpy, scale and sum_of_squares in bf16
// against the f64 reference (tolerance.h's bf16_tolerance) and at their rounding point.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

TEST(Elementwise, FillEveryDtype) {
  Stream stream;
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    Tensor t = Tensor::empty({3, 2}, dtype);
    ops::fill(t, 1.5, stream);
    Tensor as_f64 = Tensor::empty({3, 2}, DType::f64);
    if (is_floating(dtype)) {
      ops::convert(t, as_f64, stream);
      for (double v : as_f64.to_vector<double>()) EXPECT_EQ(v, 1.5) << dtype_name(dtype);
    } else {
      EXPECT_EQ(testing::element_as_double(t, 5), 1.0) << dtype_name(dtype);
    }
  }
}

TEST(Elementwise, ConvertRoundTripsThroughBf16WithinHalfAnUlp) {
  Stream stream;
  Tensor x = random_tensor({64}, DType::f32, 1, -100, 100);
  Tensor half = Tensor::empty({64}, DType::bf16), back = Tensor::empty({64}, DType::f32);
  ops::convert(x, half, stream);
  ops::convert(half, back, stream);
  EXPECT_TRUE(testing::all_close(back, x, 0, std::ldexp(1.0, -8)));
  for (int64_t i = 0; i < 64; ++i) {
    ASSERT_EQ(half.data<bf16_t>()[i].bits, float_to_bf16(x.data<float>()[i]).bits) << i;
    ASSERT_EQ(back.data<float>()[i], bf16_to_float(half.data<bf16_t>()[i])) << i;
  }
}

TEST(Elementwise, CopyAcrossNarrowedViews) {
  Stream stream;
  Tensor x = random_tensor({4, 3}, DType::f32, 2);
  Tensor y = Tensor::zeros({2, 3}, DType::f32);
  ops::copy(x.narrow(1, 2), y, stream);
  EXPECT_EQ(y.to_vector<float>()[0], x.to_vector<float>()[3]);
  EXPECT_EQ(y.to_vector<float>()[5], x.to_vector<float>()[8]);
  Tensor wrong = Tensor::zeros({5}, DType::f32);
  EXPECT_THROW(ops::copy(x, wrong, stream), InputError);
  Tensor other_dtype = Tensor::zeros({4, 3}, DType::f64);
  EXPECT_THROW(ops::copy(x, other_dtype, stream), InputError);
}

TEST(Elementwise, CopyColumnsWritesOnlyItsBlock) {
  Stream stream;
  const Tensor src = random_tensor({3, 5}, DType::f32, 20);
  Tensor dst = Tensor::from_vector<float>({3, 4}, std::vector<float>(12, 9.0f));
  ops::copy_columns(src, 1, dst, 2, 2, stream);
  const std::vector<float> s = src.to_vector<float>(), d = dst.to_vector<float>();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      EXPECT_EQ(d[r * 4 + c], c >= 2 ? s[r * 5 + c - 1] : 9.0f) << r << ", " << c;
}

// The adjoint of copying src's columns [1, 4) into dst's [2, 5) is the copy back: d/dsrc is the
// upstream gradient's block moved to src's columns, zero elsewhere.
TEST(Elementwise, CopyColumnsGradientIsTheCopyBack) {
  Stream stream;
  Tensor src = random_tensor({4, 6}, DType::f64, 21);
  Tensor dst = Tensor::zeros({4, 5}, DType::f64),
         projection = random_tensor({4, 5}, DType::f64, 22);
  auto loss = [&] {
    ops::copy_columns(src, 1, dst, 2, 3, stream);
    return testing::dot(dst, projection);
  };
  Tensor dsrc = zeros_like(src);
  ops::copy_columns(projection, 2, dsrc, 1, 3, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"src", src, dsrc}}));
}

TEST(Elementwise, CopyColumnsRejectsBadBlocks) {
  Stream stream;
  const Tensor src = random_tensor({3, 5}, DType::f32, 23);
  Tensor dst = Tensor::zeros({3, 4}, DType::f32), rows = Tensor::zeros({2, 4}, DType::f32);
  Tensor f64 = Tensor::zeros({3, 4}, DType::f64), flat = Tensor::zeros({12}, DType::f32);
  Tensor same = src.clone();
  auto message = [&](auto call) {
    try {
      call();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { ops::copy_columns(src, 3, dst, 0, 3, stream); }).find("outside src"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::copy_columns(src, 0, dst, 2, 3, stream); }).find("outside dst"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::copy_columns(src, 0, rows, 0, 1, stream); }).find("row counts"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::copy_columns(src, -1, dst, 0, 1, stream); }).find("outside src"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::copy_columns(same, 0, same, 2, 1, stream); }).find("same tensor"),
            std::string::npos);
  EXPECT_THROW(ops::copy_columns(src, 0, f64, 0, 1, stream), InputError);
  EXPECT_THROW(ops::copy_columns(src, 0, flat, 0, 1, stream), InputError);
}

TEST(Elementwise, AddAxpyScaleSumOfSquares) {
  Stream stream;
  Tensor a = random_tensor({10}, DType::f64, 3), b = random_tensor({10}, DType::f64, 4);
  Tensor out = zeros_like(a);
  ops::add(a, b, out, stream);
  Tensor y = b.clone();
  ops::axpy(-2.0f, a, y, stream);
  double expected_squares = 0;
  for (int i = 0; i < 10; ++i) {
    const double av = a.data<double>()[i], bv = b.data<double>()[i];
    EXPECT_DOUBLE_EQ(out.data<double>()[i], av + bv);
    EXPECT_DOUBLE_EQ(y.data<double>()[i], bv - 2 * av);
    expected_squares += av * av;
  }
  EXPECT_NEAR(ops::sum_of_squares(a, stream), expected_squares, 1e-12);
  ops::scale(a, 3.0f, stream);
  EXPECT_NEAR(ops::sum_of_squares(a, stream), 9 * expected_squares, 1e-11);
  Tensor c = random_tensor({11}, DType::f64, 5);
  EXPECT_THROW(ops::add(a, c, out, stream), InputError);
}

using testing::converted;

// Each output is one f32 operation (axpy: two) on bf16-exact inputs, rounded once.
TEST(Elementwise, Bf16AddAxpyScaleMatchTheF64Reference) {
  Stream stream;
  const Tensor a = random_tensor({257}, DType::bf16, 3, -4, 4);
  const Tensor b = random_tensor({257}, DType::bf16, 4, -4, 4);
  const Tensor a64 = converted(a, DType::f64), b64 = converted(b, DType::f64);
  Tensor out = Tensor::empty(a.shape(), DType::bf16), out64 = zeros_like(a64);
  ops::add(a, b, out, stream);
  ops::add(a64, b64, out64, stream);
  testing::Tolerance tol = testing::bf16_tolerance(1, 8);
  EXPECT_TRUE(testing::all_close(out, out64, tol.atol, tol.rtol));
  Tensor y = b.clone(), y64 = b64.clone();
  ops::axpy(-0.3f, a, y, stream);
  ops::axpy(-0.3f, a64, y64, stream);
  tol = testing::bf16_tolerance(2, 4 + 0.3 * 4);
  EXPECT_TRUE(testing::all_close(y, y64, tol.atol, tol.rtol));
  Tensor s = a.clone(), s64 = a64.clone();
  ops::scale(s, 0.7f, stream);
  ops::scale(s64, 0.7f, stream);
  tol = testing::bf16_tolerance(1, 0.7 * 4);
  EXPECT_TRUE(testing::all_close(s, s64, tol.atol, tol.rtol));
  // sum_of_squares widens exactly and accumulates in f64: no bf16 rounding at all.
  EXPECT_NEAR(ops::sum_of_squares(a, stream), ops::sum_of_squares(a64, stream), 1e-12);
}

// The rounding point: the f32 result of the whole elementwise expression, rounded once.
TEST(Elementwise, Bf16RoundsOnceAfterTheF32Arithmetic) {
  Stream stream;
  const Tensor a = random_tensor({64}, DType::bf16, 5), b = random_tensor({64}, DType::bf16, 6);
  Tensor out = Tensor::empty(a.shape(), DType::bf16), y = b.clone();
  ops::add(a, b, out, stream);
  ops::axpy(0.1f, a, y, stream);
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float av = bf16_to_float(a.data<bf16_t>()[i]), bv = bf16_to_float(b.data<bf16_t>()[i]);
    EXPECT_EQ(out.data<bf16_t>()[i].bits, float_to_bf16(av + bv).bits) << i;
    EXPECT_EQ(y.data<bf16_t>()[i].bits, float_to_bf16(bv + 0.1f * av).bits) << i;
  }
}

TEST(Elementwise, SumOfSquaresIntoAddsToATotalAndChecksIt) {
  Stream stream;
  const Tensor a = random_tensor({10}, DType::f32, 3), b = random_tensor({7}, DType::f32, 4);
  Tensor total = Tensor::from_vector<double>({1}, {0.5});
  ops::sum_of_squares_into(a, total, stream);
  ops::sum_of_squares_into(b, total, stream);
  EXPECT_EQ(total.data<double>()[0],
            0.5 + ops::sum_of_squares(a, stream) + ops::sum_of_squares(b, stream));
  Tensor f32_total = Tensor::zeros({1}, DType::f32), two = Tensor::zeros({2}, DType::f64);
  EXPECT_THROW(ops::sum_of_squares_into(a, f32_total, stream), InputError);
  EXPECT_THROW(ops::sum_of_squares_into(a, two, stream), InputError);
}

TEST(Elementwise, AddIsItsOwnGradient) {
  Stream stream;
  Tensor a = random_tensor({3, 4}, DType::f64, 6), b = random_tensor({3, 4}, DType::f64, 7);
  Tensor out = zeros_like(a), projection = random_tensor({3, 4}, DType::f64, 8);
  auto loss = [&] {
    ops::add(a, b, out, stream);
    return testing::dot(out, projection);
  };
  // d(a + b)/da = d(a + b)/db = identity: both gradients are the upstream gradient itself.
  EXPECT_TRUE(testing::gradients_match(loss, {{"a", a, projection}, {"b", b, projection}}));
}

TEST(Elementwise, ClipGradNormScalesOnlyAboveTheLimit) {
  Stream stream;
  Tensor g1 = Tensor::from_vector<float>({2}, {3, 0}), g2 = Tensor::from_vector<float>({1}, {4});
  EXPECT_NEAR(ops::clip_grad_norm({g1, g2}, 10.0, stream), 5.0, 1e-6);
  EXPECT_FLOAT_EQ(g1.data<float>()[0], 3.0f);
  EXPECT_NEAR(ops::clip_grad_norm({g1, g2}, 1.0, stream), 5.0, 1e-6);
  EXPECT_NEAR(std::sqrt(ops::sum_of_squares(g1, stream) + ops::sum_of_squares(g2, stream)), 1.0,
              1e-5);
  EXPECT_NEAR(g1.data<float>()[0] / g2.data<float>()[0], 0.75, 1e-6);
}

TEST(Elementwise, DeviceTensorsWithoutARegisteredBackendAreAClearError) {
  try {
    Tensor t = Tensor::empty({4}, DType::f32, Device::cuda(0));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA allocator"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
