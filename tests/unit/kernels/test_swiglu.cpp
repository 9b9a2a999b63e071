// swiglu: values against the definition, fp64 gradients and argument errors.
// bf16 against the f64 reference, f32 (its own vectorised path) against f64 within the derived
// bounds (tests/support/bf16_check.h).
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

TEST(SwiGlu, MatchesDefinition) {
  Stream stream;
  Tensor gate = random_tensor({3, 5}, DType::f64, 1, -4, 4),
         up = random_tensor({3, 5}, DType::f64, 2);
  Tensor out = zeros_like(gate), expected = zeros_like(gate);
  ops::swiglu_forward(gate, up, out, stream);
  for (int64_t i = 0; i < gate.numel(); ++i) {
    const double g = gate.data<double>()[i];
    expected.data<double>()[i] = g / (1 + std::exp(-g)) * up.data<double>()[i];
  }
  EXPECT_TRUE(testing::all_close(out, expected, 1e-14, 1e-12));
}

TEST(SwiGlu, GradientMatchesFiniteDifferences) {
  Stream stream;
  Tensor gate = random_tensor({4, 6}, DType::f64, 3, -4, 4),
         up = random_tensor({4, 6}, DType::f64, 4);
  Tensor out = zeros_like(gate), projection = random_tensor(gate.shape(), DType::f64, 5);
  auto loss = [&] {
    ops::swiglu_forward(gate, up, out, stream);
    return testing::dot(out, projection);
  };
  Tensor dgate = zeros_like(gate), dup = zeros_like(up);
  ops::swiglu_backward(projection, gate, up, dgate, dup, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"gate", gate, dgate}, {"up", up, dup}}));
}

TEST(SwiGlu, RejectsMismatchedShapesAndIntegerTensors) {
  Stream stream;
  Tensor gate = Tensor::zeros({2, 4}, DType::f32), up = Tensor::zeros({2, 3}, DType::f32);
  Tensor out = Tensor::zeros({2, 4}, DType::f32);
  EXPECT_THROW(ops::swiglu_forward(gate, up, out, stream), InputError);
  Tensor gi = Tensor::zeros({2, 4}, DType::i32), ui = Tensor::zeros({2, 4}, DType::i32);
  Tensor oi = Tensor::zeros({2, 4}, DType::i32);
  try {
    ops::swiglu_forward(gi, ui, oi, stream);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("dtype i32 is not supported"), std::string::npos)
        << e.what();
  }
}

// out, dgate and dup of the inputs converted to a dtype, for the f64 comparisons below.
auto swiglu_in(const Tensor& gate, const Tensor& up, const Tensor& dout) {
  return [=](DType dtype) {
    Stream stream;
    const Tensor g = testing::converted(gate, dtype), u = testing::converted(up, dtype);
    Tensor out = Tensor::empty(gate.shape(), dtype), dgate = Tensor::empty(gate.shape(), dtype);
    Tensor dup = Tensor::empty(gate.shape(), dtype);
    ops::swiglu_forward(g, u, out, stream);
    ops::swiglu_backward(testing::converted(dout, dtype), g, u, dgate, dup, stream);
    return std::vector<Tensor>{out, dgate, dup};
  };
}

// f32 operations per output, all products of factors of magnitude <= 1 except 1 + g (1 - s) <= 2:
// sigmoid 3 (exp, add, divide); out = g s u: 2 more; dgate = d u s (1 + g (1 - s)): 6 more; dup =
// d g s: 2 more.
TEST(SwiGlu, Bf16MatchesF64) {
  const Tensor gate = random_tensor({6, 40}, DType::bf16, 10);
  const Tensor up = random_tensor({6, 40}, DType::bf16, 11);
  const Tensor dout = random_tensor({6, 40}, DType::bf16, 12);
  EXPECT_TRUE(testing::bf16_matches_f64(swiglu_in(gate, up, dout),
                                        {{"out", 5, 1}, {"dgate", 9, 2}, {"dup", 5, 1}}));
}

// The f32 path: the counts above with exp_f32 counted as 2, for g in [-6, 6]. out and dup are
// products, so their bound is relative to each element (magnitude 0: rtol only); dgate's terms
// are bounded by s (1 + |g|) <= 7.
TEST(SwiGlu, F32MatchesF64) {
  const Tensor gate = random_tensor({7, 37}, DType::f32, 13, -6, 6);
  const Tensor up = random_tensor({7, 37}, DType::f32, 14);
  const Tensor dout = random_tensor({7, 37}, DType::f32, 15);
  EXPECT_TRUE(testing::f32_matches_f64(swiglu_in(gate, up, dout),
                                       {{"out", 6, 0}, {"dgate", 10, 7}, {"dup", 6, 0}}));
}

}  // namespace
}  // namespace moe
