// Rotary position embedding through the public op API: hand-computed rotations, invariants
// (position 0, pair norms, inverse), the cos/sin scale, in-place use, fp64 gradients (also with
// scaled frequencies and a scale other than 1) and argument errors.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h).
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/rope_table.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;

using testing::all_close;
using testing::random_tensor;
using testing::rope_table;

constexpr float kTheta = 10000.0f;

Tensor positions_of(const std::vector<int32_t>& values) {
  return Tensor::from_vector<int32_t>({static_cast<int64_t>(values.size())}, values);
}

Tensor rope(const Tensor& x, const Tensor& positions, float theta = kTheta, float scale = 1) {
  Stream stream;
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  ops::rope_forward(x, positions, rope_table(theta, x.dim(2)), scale, out, stream);
  return out;
}

Tensor rope_inverse(const Tensor& dout, const Tensor& positions, float theta = kTheta,
                    float scale = 1) {
  Stream stream;
  Tensor dx = Tensor::empty(dout.shape(), dout.dtype());
  ops::rope_backward(dout, positions, rope_table(theta, dout.dim(2)), scale, dx, stream);
  return dx;
}

// One head of dim 4 with its pairs (0, 2) and (1, 3) turned by angle0 and angle1, as [1, 1, 4].
Tensor rotated_by_hand(const std::vector<double>& x, double angle0, double angle1) {
  const double c0 = std::cos(angle0), s0 = std::sin(angle0), c1 = std::cos(angle1),
               s1 = std::sin(angle1);
  return Tensor::from_vector<double>({1, 1, 4}, {x[0] * c0 - x[2] * s0, x[1] * c1 - x[3] * s1,
                                                 x[2] * c0 + x[0] * s0, x[3] * c1 + x[1] * s1});
}

TEST(Rope, MatchesHandRotation) {
  // One token, one head of dim 4, position 3, theta 100: pairs (0, 2) and (1, 3) turn by
  // 3 * 100^0 = 3 and 3 * 100^(-1/2) = 0.3 radians.
  const std::vector<double> x = {0.5, -1.0, 2.0, 0.25};
  const Tensor out = rope(Tensor::from_vector<double>({1, 1, 4}, x), positions_of({3}), 100.0f);
  EXPECT_TRUE(all_close(out, rotated_by_hand(x, 3.0, 0.3), 1e-12, 1e-12));
}

// Pairs turn by position * inv_freq[i], whatever the table holds (here not a power series).
TEST(Rope, TurnsEachPairByItsTableEntry) {
  Stream stream;
  const std::vector<double> x = {0.5, -1.0, 2.0, 0.25};
  const Tensor table = Tensor::from_vector<double>({2}, {0.7, 0.02});
  Tensor out = Tensor::empty({1, 1, 4}, DType::f64);
  ops::rope_forward(Tensor::from_vector<double>({1, 1, 4}, x), positions_of({5}), table, 1.0f, out,
                    stream);
  EXPECT_TRUE(all_close(out, rotated_by_hand(x, 3.5, 0.1), 1e-12, 1e-12));
}

// cos and sin are multiplied by scale, so forward and backward are scaled copies of scale 1.
TEST(Rope, ScaleMultipliesTheRotation) {
  const Tensor positions = positions_of({0, 3, 40});
  const Tensor x = random_tensor({3, 2, 8}, DType::f64, 13);
  const std::vector<double> plain = rope(x, positions).to_vector<double>();
  const std::vector<double> scaled = rope(x, positions, kTheta, 1.25f).to_vector<double>();
  const std::vector<double> plain_back = rope_inverse(x, positions).to_vector<double>();
  const std::vector<double> scaled_back =
      rope_inverse(x, positions, kTheta, 1.25f).to_vector<double>();
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(scaled[i], 1.25 * plain[i], 1e-12) << i;
    EXPECT_NEAR(scaled_back[i], 1.25 * plain_back[i], 1e-12) << i;
  }
}

TEST(Rope, PositionZeroIsIdentity) {
  const Tensor x = random_tensor({3, 2, 8}, DType::f64, 1);
  EXPECT_EQ(rope(x, positions_of({0, 0, 0})).to_vector<double>(), x.to_vector<double>());
}

TEST(Rope, PreservesTheNormOfEveryPair) {
  const int64_t rows = 4, heads = 3, head_dim = 6, half = head_dim / 2;
  const Tensor x = random_tensor({rows, heads, head_dim}, DType::f64, 2);
  const Tensor out = rope(x, positions_of({0, 1, 57, 4095}));
  const double* px = x.data<double>();
  const double* po = out.data<double>();
  for (int64_t row = 0; row < rows * heads; ++row)
    for (int64_t i = 0; i < half; ++i) {
      const int64_t lo = row * head_dim + i, hi = lo + half;
      EXPECT_NEAR(std::hypot(po[lo], po[hi]), std::hypot(px[lo], px[hi]), 1e-12)
          << "row " << row << " pair " << i;
    }
}

TEST(Rope, HeadsOfOneTokenTurnAlike) {
  const Tensor one_head = random_tensor({1, 1, 8}, DType::f64, 3);
  std::vector<double> values = one_head.to_vector<double>();
  values.insert(values.end(), values.begin(), values.end());
  const Tensor out = rope(Tensor::from_vector<double>({1, 2, 8}, values), positions_of({9}));
  const Tensor second_head = out.view({2, 8}).narrow(1, 1);
  EXPECT_EQ(second_head.to_vector<double>(), rope(one_head, positions_of({9})).to_vector<double>());
}

TEST(Rope, BackwardInvertsForward) {
  const Tensor positions = positions_of({0, 3, 100, 2047, 5});
  const Tensor x64 = random_tensor({5, 2, 16}, DType::f64, 4);
  EXPECT_TRUE(all_close(rope_inverse(rope(x64, positions), positions), x64, 1e-12, 0));
  const Tensor x32 = random_tensor({5, 2, 16}, DType::f32, 4);
  EXPECT_TRUE(all_close(rope_inverse(rope(x32, positions), positions), x32, 1e-6, 0));
}

TEST(Rope, Float32MatchesFloat64) {
  const Tensor positions = positions_of({1, 700, 31});
  EXPECT_TRUE(all_close(rope(random_tensor({3, 4, 32}, DType::f32, 5), positions),
                        rope(random_tensor({3, 4, 32}, DType::f64, 5), positions), 1e-6, 1e-6));
}

TEST(Rope, RunsInPlace) {
  Stream stream;
  const Tensor positions = positions_of({2, 11});
  const Tensor x = random_tensor({2, 3, 4}, DType::f64, 6);
  const Tensor table = rope_table(kTheta, 4);
  Tensor y = x.clone();
  ops::rope_forward(y, positions, table, 1.0f, y, stream);
  EXPECT_EQ(y.to_vector<double>(), rope(x, positions).to_vector<double>());
  ops::rope_backward(y, positions, table, 1.0f, y, stream);
  EXPECT_TRUE(all_close(y, x, 1e-12, 0));
}

// With an arbitrary (scaled) table and a scale other than 1, as rope scaling gives.
TEST(Rope, GradientMatchesFiniteDifferences) {
  Stream stream;
  const Tensor positions = positions_of({0, 5, 17});
  const Tensor table = Tensor::from_vector<double>({3}, {1.0, 0.13, 0.004});
  for (const float scale : {1.0f, 1.3f}) {
    SCOPED_TRACE(scale);
    Tensor x = random_tensor({3, 2, 6}, DType::f64, 7);
    const Tensor projection = random_tensor({3, 2, 6}, DType::f64, 8);
    Tensor dx = Tensor::empty(x.shape(), DType::f64);
    ops::rope_backward(projection, positions, table, scale, dx, stream);
    const auto loss = [&] {
      Tensor out = Tensor::empty(x.shape(), DType::f64);
      ops::rope_forward(x, positions, table, scale, out, stream);
      return testing::dot(out, projection);
    };
    EXPECT_TRUE(testing::gradients_match(loss, {{"x", x, dx}}));
  }
}

TEST(Rope, RejectsOddHeadDim) {
  const Tensor x = random_tensor({2, 1, 5}, DType::f32, 9);
  const std::string message = input_error_message([&] { rope(x, positions_of({0, 1})); });
  EXPECT_NE(message.find("head_dim"), std::string::npos) << message;
  EXPECT_NE(message.find("got 5"), std::string::npos) << message;
  EXPECT_THROW(rope_inverse(x, positions_of({0, 1})), InputError);
}

TEST(Rope, RejectsNegativePosition) {
  const Tensor x = random_tensor({3, 1, 4}, DType::f32, 10);
  const std::string message = input_error_message([&] { rope(x, positions_of({0, 4, -2})); });
  EXPECT_NE(message.find("rope_forward"), std::string::npos) << message;
  EXPECT_NE(message.find("positions[2]"), std::string::npos) << message;
  EXPECT_NE(message.find("-2"), std::string::npos) << message;
  EXPECT_THROW(rope_inverse(x, positions_of({-1, 0, 0})), InputError);
}

TEST(Rope, RejectsWrongPositionsShapeOrDtype) {
  const Tensor x = random_tensor({3, 1, 4}, DType::f32, 11);
  std::string message = input_error_message([&] { rope(x, positions_of({0, 1})); });
  EXPECT_NE(message.find("positions"), std::string::npos) << message;
  const Tensor float_positions = Tensor::from_vector<float>({3}, {0, 1, 2});
  message = input_error_message([&] { rope(x, float_positions); });
  EXPECT_NE(message.find("positions"), std::string::npos) << message;
}

TEST(Rope, RejectsWrongOutShape) {
  Stream stream;
  const Tensor x = random_tensor({3, 1, 4}, DType::f32, 12);
  Tensor out = Tensor::empty({3, 4}, DType::f32);
  const std::string message = input_error_message([&] {
    ops::rope_forward(x, positions_of({0, 1, 2}), rope_table(kTheta, 4), 1.0f, out, stream);
  });
  EXPECT_NE(message.find("'out'"), std::string::npos) << message;
}

TEST(Rope, RejectsAWrongTableOrScale) {
  Stream stream;
  const Tensor x = random_tensor({3, 1, 4}, DType::f32, 14);
  const Tensor positions = positions_of({0, 1, 2});
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  std::string message = input_error_message(
      [&] { ops::rope_forward(x, positions, rope_table(kTheta, 6), 1.0f, out, stream); });
  EXPECT_NE(message.find("'inv_freq'"), std::string::npos) << message;
  const Tensor f32_table = Tensor::from_vector<float>({2}, {1.0f, 0.01f});
  message =
      input_error_message([&] { ops::rope_forward(x, positions, f32_table, 1.0f, out, stream); });
  EXPECT_NE(message.find("'inv_freq'"), std::string::npos) << message;
  message = input_error_message(
      [&] { ops::rope_backward(x, positions, rope_table(kTheta, 4), 0.0f, out, stream); });
  EXPECT_NE(message.find("scale must be > 0"), std::string::npos) << message;
}

// The rotation runs in f64 and narrows through f32 (one f32 rounding), |a c - b s| <= 2.
TEST(Rope, Bf16MatchesF64) {
  const Tensor x = random_tensor({5, 3, 8}, DType::bf16, 30);
  const Tensor positions = Tensor::from_vector<int32_t>({5}, {0, 1, 7, 300, 4096});
  auto run = [&](DType dtype) {
    Stream stream;
    const Tensor xd = testing::converted(x, dtype);
    Tensor out = Tensor::empty(x.shape(), dtype), back = Tensor::empty(x.shape(), dtype);
    ops::rope_forward(xd, positions, rope_table(kTheta, x.dim(2)), 1.0f, out, stream);
    ops::rope_backward(xd, positions, rope_table(kTheta, x.dim(2)), 1.0f, back, stream);
    return std::vector<Tensor>{out, back};
  };
  EXPECT_TRUE(testing::bf16_matches_f64(run, {{"out", 1, 2}, {"dx", 1, 2}}));
}

// The f32 path, head_dim 14 (7 pairs: not a multiple of the vector width): cos and sin round to
// f32 (1), then a c - b s (3): 4 operations, |a c| + |b s| <= 2.
TEST(Rope, F32MatchesF64) {
  const Tensor x = random_tensor({5, 3, 14}, DType::f32, 31);
  const Tensor positions = Tensor::from_vector<int32_t>({5}, {0, 1, 7, 300, 4096});
  auto run = [&](DType dtype) {
    Stream stream;
    const Tensor xd = testing::converted(x, dtype);
    Tensor out = Tensor::empty(x.shape(), dtype), back = Tensor::empty(x.shape(), dtype);
    ops::rope_forward(xd, positions, rope_table(kTheta, x.dim(2)), 1.0f, out, stream);
    ops::rope_backward(xd, positions, rope_table(kTheta, x.dim(2)), 1.0f, back, stream);
    return std::vector<Tensor>{out, back};
  };
  EXPECT_TRUE(testing::f32_matches_f64(run, {{"out", 4, 2}, {"dx", 4, 2}}));
}

}  // namespace
}  // namespace moe
